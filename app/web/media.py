"""Audio with HTTP Range support, and spectrogram / waveform images rendered without torch.

Files are found by clip id only: the path comes from the store (data set root + the clip's
relative path) and must resolve inside the data set root. Images are computed with numpy (STFT,
mel filterbank, log power) and Pillow, and cached on disk under ``settings.cache_dir / "img"``,
keyed by the clip's content hash and the front end, so they are rendered once.

Two spectrograms, and the page says which is which (``FrontEnd.label``):

- ``DISPLAY`` (the default): 64 mel bands, 32 ms window, 10 ms hop, in dB: made for people's eyes;
  it is **not** what the model hears.
- ``model_front_end(run.config)``: the run's own log-mel front end (``ml.features.LogMel``, e.g.
  40 mel bands, 30 ms window, 10 ms hop, natural log), recomputed here in numpy from the settings
  stored with the run. A raw-waveform model (m5) has no spectrogram front end, so it has none.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from app.errors import EarmarkError, NotFound
from app.store.models import Clip, Dataset

SIZES = {"small": (120, 40), "large": (760, 240)}
WAVE_SIZE = (760, 120)
TOP_DB = 80.0
LOG_EPS = 1e-6  # ml.features.LOG_EPS: the floor inside the model's log()


@dataclass(frozen=True)
class FrontEnd:
    """How a spectrogram is computed: STFT sizes in samples, mel bands, and its honest caption."""

    name: str  # "display" | "model"
    n_fft: int
    win: int  # window length (a Hann window, zero-padded to n_fft)
    hop: int
    n_mels: int
    f_min: float
    log: str  # "db": 10 log10, clamped TOP_DB below the peak | "ln": natural log of (mel + LOG_EPS)
    label: str
    sample_rate: int | None = None  # resample the file to this rate first (the model's); None: its own rate
    samples: int | None = None  # then pad or crop to this many samples (the model's window); None: as is

    @property
    def key(self) -> str:
        """What the image cache keys on."""
        return (f"{self.name}-{self.n_fft}-{self.win}-{self.hop}-{self.n_mels}-{self.f_min:g}-{self.log}"
                f"-{self.sample_rate or 'native'}-{self.samples or 'all'}")


DISPLAY = FrontEnd("display", 512, 512, 160, 64, 20.0, "db",
                   "display spectrogram: 64 mel bands, 32 ms window, 10 ms hop, dB; not the model's input")


def model_front_end(config: dict | None) -> FrontEnd | None:
    """The front end a run's model hears, from its stored training config; None for a raw-waveform model."""
    from ml.config import TrainConfig  # no torch: a dataclass of settings

    try:
        cfg = TrainConfig.from_dict(config or {})
    except (TypeError, ValueError):
        return None
    if cfg.model != "melcnn":
        return None
    sr = cfg.sample_rate
    return FrontEnd("model", cfg.n_fft, cfg.win_samples, cfg.hop_samples, cfg.n_mels, 0.0, "ln",
                    f"what the model hears: {cfg.n_mels} mel bands, {1000 * cfg.win_samples / sr:g} ms window, "
                    f"{1000 * cfg.hop_samples / sr:g} ms hop, natural log (its own front end), at {sr:,} Hz, "
                    f"padded or cropped to {cfg.clip_samples / sr:g} s", sr, cfg.clip_samples)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

# magma-like colour map anchors (value in [0, 1] -> RGB), interpolated to 256 entries
_ANCHORS = [(0.0, (0, 0, 4)), (0.13, (28, 16, 68)), (0.25, (79, 18, 123)), (0.38, (129, 37, 129)),
            (0.5, (181, 54, 122)), (0.63, (229, 80, 100)), (0.75, (251, 135, 97)), (0.88, (254, 194, 135)),
            (1.0, (252, 253, 191))]


@lru_cache(maxsize=1)
def colormap() -> np.ndarray:
    """(256, 3) uint8 lookup table."""
    pos = np.array([a[0] for a in _ANCHORS])
    rgb = np.array([a[1] for a in _ANCHORS], dtype=float)
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, pos, rgb[:, c]) for c in range(3)], axis=1).astype(np.uint8)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 20.0) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters from ``f_min`` to Nyquist."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(sample_rate / 2), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)), dtype=np.float32)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[m] = np.maximum(0, np.minimum(up, down))
    return fb


def log_mel(samples: np.ndarray, sample_rate: int, fe: FrontEnd = DISPLAY) -> np.ndarray:
    """(n_mels, frames) log-mel power of ``samples`` under front end ``fe``."""
    x = samples.astype(np.float32)
    n_fft, hop = fe.n_fft, fe.hop
    if fe.name == "display":
        if len(x) < n_fft:
            x = np.pad(x, (0, n_fft - len(x)))
        x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
        window = np.hanning(n_fft).astype(np.float32)
    else:  # as torch.stft(center=True, pad_mode="constant") with a periodic Hann window of ``win``
        x = np.pad(x, (n_fft // 2, n_fft // 2))
        hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fe.win) / fe.win)).astype(np.float32)
        left = (n_fft - fe.win) // 2
        window = np.zeros(n_fft, np.float32)
        window[left:left + fe.win] = hann
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]  # (frames, n_fft)
    power = np.abs(np.fft.rfft(x[idx] * window, axis=1)) ** 2  # (frames, n_fft/2+1)
    mel = mel_filterbank(sample_rate, n_fft, fe.n_mels, fe.f_min) @ power.T  # (n_mels, frames)
    if fe.log == "ln":
        return np.log(mel + LOG_EPS)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db, db.max() - TOP_DB)


def clip_file(dataset: Dataset, clip: Clip) -> Path:
    """The clip's file on disk; 404 when it is missing or would lie outside the data set root."""
    root = Path(dataset.root).resolve()
    path = (root / clip.path).resolve()
    if not path.is_relative_to(root):
        raise NotFound(f"clip {clip.id} has no playable file", detail="its stored path leaves the data set folder")
    if not path.is_file():
        raise NotFound(f"the audio of clip {clip.id} is missing", detail=f"expected at {clip.path} in the data set",
                       hint="the data set folder may have moved; re-ingest it from its new place")
    return path


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range; None for no header; 416 problem if unusable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise RangeNotSatisfiable(size)
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if start >= size or (last and int(last) < start):
            raise RangeNotSatisfiable(size)
    else:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(size)
        start, end = max(0, size - n), size - 1
    return start, end


class RangeNotSatisfiable(EarmarkError):
    """A Range header this file cannot satisfy (416)."""

    status = 416

    def __init__(self, size: int):
        super().__init__("range not satisfiable", detail=f"the file has {size} bytes",
                         hint="ask for a single range such as bytes=0-1023")
        self.size = size


def read_range(path: Path, start: int, end: int) -> bytes:
    """Bytes ``start..end`` (inclusive) of a file."""
    with open(path, "rb") as fh:
        fh.seek(start)
        return fh.read(end - start + 1)


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise EarmarkError("cannot decode this clip's audio", detail=str(exc), status=422) from None
    return data.mean(axis=1), sr


def _cached(cache_dir: Path, key: str, render) -> bytes:
    target = cache_dir / "img" / key[:2] / f"{key}.png"
    if target.is_file():
        return target.read_bytes()
    png = render()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(png)
    os.replace(tmp, target)  # atomic: a concurrent reader never sees half a file
    return png


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def spectrogram_png(path: Path, content_hash: str, size: str, cache_dir: Path, fe: FrontEnd = DISPLAY) -> bytes:
    """The clip's log-mel spectrogram under front end ``fe`` as a PNG of ``SIZES[size]`` (cached)."""
    w, h = SIZES[size]

    def render() -> bytes:
        x, sr = _read_mono(path)
        if fe.sample_rate and sr != fe.sample_rate:  # the model hears the clip resampled to its rate
            from ml.audio import resample

            x, sr = resample(x, sr, fe.sample_rate), fe.sample_rate
        if fe.samples:  # ... and padded or cropped to its window
            x = np.pad(x[:fe.samples], (0, max(0, fe.samples - len(x))))
        db = log_mel(x, sr, fe)
        norm = (db - db.min()) / max(float(db.max() - db.min()), 1e-6)
        pixels = colormap()[np.round(norm[::-1] * 255).astype(np.uint8)]  # low frequencies at the bottom
        img = Image.fromarray(pixels, "RGB").resize((w, h), Image.Resampling.BILINEAR)
        return _png(img)

    key = f"{content_hash}-mel-{size}" if fe == DISPLAY else f"{content_hash}-{fe.key}-{size}"
    return _cached(cache_dir, key, render)


def waveform_png(path: Path, content_hash: str, cache_dir: Path) -> bytes:
    """The waveform (min/max per pixel column) as a PNG (cached)."""
    w, h = WAVE_SIZE

    def render() -> bytes:
        x, _ = _read_mono(path)
        img = Image.new("RGB", (w, h), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        mid = h / 2
        draw.line([(0, mid), (w, mid)], fill=(226, 230, 236))
        if len(x):
            cols = np.array_split(x, w) if len(x) >= w else [x[int(i * len(x) / w):int(i * len(x) / w) + 1]
                                                             for i in range(w)]
            scale = (h / 2 - 4) / max(float(np.abs(x).max()), 1e-3)
            for i, col in enumerate(cols):
                if len(col):
                    lo, hi = float(col.min()), float(col.max())
                    draw.line([(i, mid - hi * scale), (i, mid - lo * scale)], fill=(59, 91, 219))
        return _png(img)

    return _cached(cache_dir, f"{content_hash}-wave", render)


def signal_stats(clip: Clip) -> dict:
    """The clip's stored signal statistics, for display (the audio-quality ones None when not measured)."""
    return dict(rms_dbfs=clip.rms_dbfs, peak=clip.peak, clipped_frac=clip.clipped_frac,
                lead_silence_ms=clip.lead_silence_ms, trail_silence_ms=clip.trail_silence_ms,
                end_energy_db=clip.end_energy_db, cutoff_signal=clip.cutoff_signal,
                plateau_share=clip.plateau_share, dc_offset=clip.dc_offset, band_step_db=clip.band_step_db)
