"""Training throughput: earmark's on-device input pipeline vs a tutorial-style DataLoader, same model, one run.

Both loops train the same MelCNN (or M5) with the same optimiser and batch size on the same synthetic
WAV files (written to a temporary folder):

* **earmark**: every WAV decoded once into an int16 array (cached), moved to the device; batches are
  drawn by index; time shift, background noise, log-mel and SpecAugment run on the device.
* **tutorial**: a ``torch.utils.data.DataLoader`` whose ``Dataset`` decodes one WAV file per item,
  pads it, shifts it, mixes noise and computes its log-mel on the CPU (as the PyTorch Speech Commands
  tutorial does), then the batch is copied to the device.

Reports clips/s for each, the speed-up, the projected time of one epoch over 85k clips, and on CUDA
the model FLOPs utilisation (MFU; bf16 dense peak from --peak-tflops). Runs on CPU and CUDA.

    python bench/train.py --clips 3000 --steps 30            # CPU
    python bench/train.py --clips 20000 --steps 200 --batch-size 512   # GPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.config import TrainConfig  # noqa: E402
from ml.data import Augmenter, DeviceWaves, load_waveforms  # noqa: E402
from ml.device import pick_device  # noqa: E402
from ml.infer import autocast_for  # noqa: E402
from ml.models import build_model  # noqa: E402

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}  # bf16 dense


def make_wavs(root: Path, n: int, n_classes: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``n`` one-second 16 kHz WAVs (a tone per class plus noise), and 60 s of background noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    paths, labels = [], []
    for i in range(n):
        c = i % n_classes
        x = 0.3 * np.sin(2 * np.pi * (200 + 50 * c) * t) * (t > rng.uniform(0, 0.3)) + rng.normal(0, 0.01, 16000)
        rel = f"c{c:02d}/s{i:06d}_nohash_0.wav"
        (root / f"c{c:02d}").mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), x.astype(np.float32), 16000, subtype="PCM_16")
        paths.append(rel)
        labels.append(c)
    noise = rng.normal(0, 0.1, 16000 * 60).astype(np.float32)
    return paths, np.array(labels), noise


class WavDataset(torch.utils.data.Dataset):
    """Tutorial style: decode one file per item and transform it on the CPU."""

    def __init__(self, root: Path, paths: list[str], labels: np.ndarray, noise: np.ndarray, cfg: TrainConfig):
        from ml.features import LogMel

        self.root, self.paths, self.labels, self.noise, self.cfg = root, paths, labels, noise, cfg
        self.logmel = LogMel(cfg.sample_rate, cfg.n_mels, cfg.win_samples, cfg.hop_samples, cfg.n_fft)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        x, _ = sf.read(str(self.root / self.paths[i]), dtype="float32")
        x = np.pad(x, (0, max(0, 16000 - len(x))))[:16000]
        x = np.roll(x, np.random.randint(-1600, 1601))
        if np.random.rand() < self.cfg.noise_prob:
            s = np.random.randint(0, len(self.noise) - 16000)
            x = x + 0.1 * self.noise[s:s + 16000]
        wave = torch.from_numpy(x.astype(np.float32))
        if self.cfg.model == "m5":
            return wave, int(self.labels[i])
        with torch.no_grad():
            return self.logmel(wave.unsqueeze(0))[0], int(self.labels[i])  # (n_mels, frames) on the CPU


def logits_from_input(model, inp: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The model's layers after its front end (the tutorial loop computed the front end on the CPU)."""
    if cfg.model == "m5":
        return model(inp)
    mel = (inp - inp.mean(dim=(1, 2), keepdim=True)) / (inp.std(dim=(1, 2), keepdim=True) + 1e-5)
    h = model.blocks(model.stem(model.input_norm(mel.unsqueeze(1))))
    return model.head(model.dropout(h.mean(dim=(2, 3))))


def flops_per_clip(model, cfg: TrainConfig, device: torch.device) -> float:
    """Training FLOPs per clip (forward + backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(8, cfg.clip_samples, device=device) * 0.1
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 8


def timed_steps(step, n: int, device: torch.device, warmup: int = 3) -> float:
    """Seconds for ``n`` calls of ``step`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=3000, help="synthetic clips to write (default 3000)")
    ap.add_argument("--classes", type=int, default=35, help="classes (default 35)")
    ap.add_argument("--model", default="melcnn", help="melcnn or m5 (default melcnn)")
    ap.add_argument("--batch-size", type=int, default=128, help="batch size (default 128; use 512+ on a GPU)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per loop (default 20)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers for the tutorial loop (default 2)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the earmark loop's model")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="accelerator bf16 peak for MFU (default: "
                    "looked up from the GPU name)")
    args = ap.parse_args()
    device = pick_device(args.device)
    cfg = TrainConfig(model=args.model, batch_size=args.batch_size, compile=args.compile)
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="earmark-bench-train-") as tmp:
        root = Path(tmp) / "ds"
        t0 = time.perf_counter()
        paths, labels, noise = make_wavs(root, args.clips, args.classes)
        t_write = time.perf_counter() - t0

        # --- earmark: decode once (cached), array on the device, everything else on the device ---
        t0 = time.perf_counter()
        waves_np, _, _ = load_waveforms(root, paths, fallback_dir=Path(tmp) / "cache")
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_waveforms(root, paths, fallback_dir=Path(tmp) / "cache")
        t_cached = time.perf_counter() - t0
        waves = DeviceWaves(waves_np, device)
        y_all = torch.from_numpy(labels).to(device)
        aug = Augmenter(16000, cfg.time_shift_ms, torch.from_numpy(noise).to(device), cfg.noise_prob)
        model = build_model(cfg, args.classes).to(device).train()
        if device.type == "cuda" and cfg.model == "melcnn":
            model = model.to(memory_format=torch.channels_last)
            model.channels_last = True
        net = torch.compile(model) if args.compile else model
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        gen = torch.Generator(device=device).manual_seed(0)

        def earmark_step():
            idx = torch.randint(0, len(waves), (cfg.batch_size,), device=device, generator=gen)
            x = aug(waves.batch(idx), gen)
            with autocast_for(device, cfg.amp):
                loss = F.cross_entropy(net(x).float(), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t_e = timed_steps(earmark_step, args.steps, device)
        ours = args.steps * cfg.batch_size / t_e

        # --- tutorial: DataLoader decoding and transforming per item on the CPU ---
        ds = WavDataset(root, paths, labels, noise, cfg)
        loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=args.workers,
                                             pin_memory=device.type == "cuda", drop_last=True,
                                             persistent_workers=args.workers > 0)
        it = iter(loader)

        def tutorial_step():
            nonlocal it
            try:
                inp, y = next(it)
            except StopIteration:
                it = iter(loader)
                inp, y = next(it)
            inp, y = inp.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast_for(device, cfg.amp):
                loss = F.cross_entropy(logits_from_input(model, inp, cfg).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t_t = timed_steps(tutorial_step, args.steps, device)
        theirs = args.steps * cfg.batch_size / t_t
        mfu = ""
        if device.type == "cuda":
            name = torch.cuda.get_device_name(device)
            peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), 0.0)
            fpc = flops_per_clip(model, cfg, device)
            if peak:
                mfu = f"{100 * ours * fpc / (peak * 1e12):.2f}%"
        rows.append(("earmark (on-device)", ours, 85_000 / ours, mfu))
        rows.append((f"tutorial DataLoader ({args.workers} workers)", theirs, 85_000 / theirs, ""))

    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"\n### Training throughput: {cfg.model}, batch {cfg.batch_size}, {args.clips} synthetic clips, {dev_name}\n")
    print("| loop | clips/s | epoch of 85k clips (s) | MFU |")
    print("|---|---:|---:|---:|")
    for name, rate, epoch_s, m in rows:
        print(f"| {name} | {rate:,.0f} | {epoch_s:,.1f} | {m or 'n/a'} |")
    print(f"\nspeed-up: **{ours / theirs:.1f}x**; writing WAVs {t_write:.1f} s; first decode into the int16 cache "
          f"{t_decode:.2f} s ({args.clips / t_decode:,.0f} clips/s); cached reload {t_cached * 1000:.0f} ms")


if __name__ == "__main__":
    main()
