"""The training config: one dataclass, a comment per field, saved on the run and in every checkpoint.

Everything a prediction depends on is here, so any prediction can be traced back to the
hyperparameters that made it (``Run.config`` and ``checkpoint["config"]`` hold ``asdict(cfg)``).
What the app does around training (flags, folds) is not here: see ``app.pipeline.run_spec``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODELS = ("melcnn", "m5")
CLASS_SETS = ("all", "v1-12")
SCHEDULES = ("onecycle", "cosine")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (defaults are the ones the demo uses)."""

    # --- task ---
    model: str = "melcnn"  # melcnn (log-mel residual CNN) | m5 (raw-waveform 1-D CNN, 8 kHz)
    classes: str = "all"  # all = the data set's labels | v1-12 = 10 keywords + _unknown_ + _silence_
    silence_frac: float = 0.1  # v1-12 only: synthetic _silence_ examples, as a fraction of the training clips

    # --- optimisation ---
    epochs: int = 25  # passes over the training split
    batch_size: int = 64  # clips per optimiser step (per process under DDP)
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    schedule: str = "onecycle"  # onecycle | cosine (per-step learning-rate schedule)
    warmup_frac: float = 0.1  # onecycle: fraction of steps spent warming up
    label_smoothing: float = 0.1  # cross-entropy label smoothing (helps with noisy labels)
    seed: int = 0  # seeds init, shuffling, augmentation and dropout (per epoch, so --resume is exact)

    # --- features (the log-mel front end runs on the training device) ---
    sample_rate: int = 16000  # Hz of the stored waveforms
    clip_samples: int = 16000  # every clip is padded/trimmed to this many samples (1 s)
    n_mels: int = 40  # mel bins
    win_ms: float = 30.0  # STFT window length
    hop_ms: float = 10.0  # STFT hop
    n_fft: int = 512  # FFT size (>= window length in samples)
    m5_sample_rate: int = 8000  # m5 consumes audio resampled on the device to this rate

    # --- model size ---
    width: int = 32  # melcnn: channels of the first stage (stages use 1x, 1.5x, 2x, 3x)
    stem_stride: int = 2  # melcnn: stride of the first convolution (1 keeps full resolution, ~2x the compute)
    dropout: float = 0.1  # dropout before the classifier

    # --- augmentation (all on the device, training batches only) ---
    time_shift_ms: float = 100.0  # random shift of up to +-this, zero filled
    noise_prob: float = 0.5  # probability of mixing in background noise (when the data set has some)
    snr_db_min: float = 10.0  # lowest signal-to-noise ratio of mixed-in noise
    snr_db_max: float = 30.0  # highest signal-to-noise ratio of mixed-in noise
    freq_masks: int = 2  # SpecAugment frequency masks per clip
    freq_mask_width: int = 8  # widest frequency mask, in mel bins
    time_masks: int = 2  # SpecAugment time masks per clip
    time_mask_width: int = 10  # widest time mask, in frames
    speed_perturb: float = 0.15  # random speed (and pitch) change of up to +-this fraction; 0 = off

    # --- execution ---
    compile: bool = False  # torch.compile the model
    channels_last: bool = True  # channels_last memory format for the 2-D CNN on CUDA
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    eval_batch_size: int = 512  # clips per batch for validation and inference
    dry_run: bool = False  # run a single training batch and stop (smoke test)

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the first bad field; returns self."""
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.classes not in CLASS_SETS:
            raise ValueError(f"classes must be one of {', '.join(CLASS_SETS)}, not {self.classes!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.n_fft < self.win_samples:
            raise ValueError(f"n_fft ({self.n_fft}) must be at least the window ({self.win_samples} samples)")
        return self

    @property
    def win_samples(self) -> int:
        """STFT window length in samples."""
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_samples(self) -> int:
        """STFT hop in samples."""
        return int(round(self.sample_rate * self.hop_ms / 1000))

    def to_dict(self) -> dict:
        """JSON-safe dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild from ``to_dict`` output; unknown keys (from newer versions) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
