"""Input pipeline that keeps an accelerator busy: one decoded int16 array, on the device, batched by index.

1. ``load_waveforms`` decodes every clip once into an int16 array (N, clip_samples) and caches it
   on disk next to the data set (``<root>/.earmark-cache/waveforms-<hash>.npy``, or a fallback folder
   when the root is read-only); later runs memory-map it instead of decoding.
2. ``DeviceWaves`` moves that array to the training device once; a batch is ``waves[idx]``.
3. ``Augmenter`` does the augmentation there, vectorised over the batch: random time shift,
   background noise at a random SNR, optional speed/pitch change. (SpecAugment lives in the model's
   front end, see ``ml.features.spec_augment``.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ml.audio import AudioError, decode, fix_length, resample

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".earmark-cache"
CACHE_VERSION = 1  # bump when the cache layout changes


class DataError(Exception):
    """A clip listed in the store that cannot be decoded (moved, deleted, damaged since ingest)."""


def cache_key(paths: Sequence[str], sample_rate: int, clip_samples: int) -> str:
    """Stable hash of the clip list and the decoded shape: the cache's identity."""
    h = hashlib.sha1(f"v{CACHE_VERSION}|{sample_rate}|{clip_samples}|".encode())
    for p in paths:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            return True
    except OSError:
        return False


def _read_only_bits(folder: Path) -> bool:
    """True when ``folder`` has no write permission bits at all (``chmod a-w``)."""
    try:
        return not (folder.stat().st_mode & 0o222)
    except OSError:
        return False


def cache_file(root: Path, paths: Sequence[str], sample_rate: int, clip_samples: int,
               fallback_dir: Path | None = None) -> Path:
    """Where the cache for this clip list lives (existing file first; else a writable location)."""
    name = f"waveforms-{cache_key(paths, sample_rate, clip_samples)}.npy"
    candidates = [Path(root) / CACHE_DIRNAME]
    if fallback_dir is not None:
        candidates.append(Path(fallback_dir))
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    for folder in candidates:
        if folder.parent == Path(root) and _read_only_bits(Path(root)):
            continue  # a data set folder marked read-only (shared data) is not written to, even by root
        if _writable(folder):
            return folder / name
    raise DataError(f"no writable place for the waveform cache (tried {', '.join(map(str, candidates))})")


def decode_clip(path: Path, sample_rate: int, clip_samples: int) -> np.ndarray:
    """One file -> int16 (clip_samples,), resampled if needed, zero-padded or trimmed at the end."""
    try:
        dec = decode(path, sample_rate=None, max_samples=None)
    except AudioError as exc:
        raise DataError(f"{path}: {exc}") from None
    x = dec.samples
    if dec.sample_rate != sample_rate:
        x = np.clip(np.round(resample(dec.as_float(), dec.sample_rate, sample_rate) * 32768), -32768, 32767)
        x = x.astype(np.int16)
    return fix_length(x, clip_samples)


def load_waveforms(root: Path, paths: Sequence[str], sample_rate: int = 16000, clip_samples: int = 16000,
                   fallback_dir: Path | None = None, progress: Callable[[int, int], None] | None = None,
                   workers: int = 4) -> tuple[np.ndarray, Path, bool]:
    """All clips as one int16 array (N, clip_samples), from the disk cache or decoded now.

    Returns (array, cache path, whether the cache was hit). ``progress(done, total)`` is called
    while decoding. The cache is written atomically, so a killed run never leaves half a file.
    """
    root = Path(root)
    target = cache_file(root, paths, sample_rate, clip_samples, fallback_dir)
    if target.is_file():
        try:
            arr = np.load(target, mmap_mode="r")
            if arr.shape == (len(paths), clip_samples) and arr.dtype == np.int16:
                return arr, target, True
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable waveform cache %s: %s", target, exc)
    out = np.zeros((len(paths), clip_samples), dtype=np.int16)
    chunk = 512
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # libsndfile releases the GIL
        for start in range(0, len(paths), chunk):
            part = paths[start:start + chunk]
            for i, x in enumerate(pool.map(lambda p: decode_clip(root / p, sample_rate, clip_samples), part)):
                out[start + i] = x
            if progress:
                progress(min(start + chunk, len(paths)), len(paths))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, out)
    os.replace(tmp, target)
    log.info("cached %d waveforms in %s", len(paths), target)
    return out, target, False


def load_noise(root: Path, rel_paths: Sequence[str], sample_rate: int = 16000) -> np.ndarray | None:
    """Background-noise files concatenated into one float32 array (M,), or None when there are none."""
    parts = []
    for rel in rel_paths:
        try:
            dec = decode(Path(root) / rel, sample_rate=None, max_samples=None, require_mono=False)
        except AudioError as exc:
            log.warning("skipping background noise %s: %s", rel, exc)
            continue
        x = dec.as_float()
        parts.append(resample(x, dec.sample_rate, sample_rate) if dec.sample_rate != sample_rate else x)
    if not parts:
        return None
    return np.concatenate(parts).astype(np.float32)


def make_silence(n: int, clip_samples: int, noise: np.ndarray | None, seed: int) -> np.ndarray:
    """``n`` synthetic ``_silence_`` clips, int16 (n, clip_samples): background noise at a random volume.

    As in the Speech Commands literature, silence is one-second pieces of ``_background_noise_``
    scaled by a random gain in [0, 1]; without noise files it is faint random hiss.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n, clip_samples), dtype=np.float32)
    for i in range(n):
        gain = rng.uniform(0.0, 1.0)
        if noise is not None and noise.shape[0] > clip_samples:
            start = rng.integers(0, noise.shape[0] - clip_samples)
            out[i] = noise[start:start + clip_samples] * gain
        else:
            out[i] = rng.normal(0.0, 0.003 * gain, clip_samples)
    return np.clip(np.round(out * 32768), -32768, 32767).astype(np.int16)


class DeviceWaves:
    """The int16 waveform array resident on the device; ``batch(idx)`` -> float (B, L) in [-1, 1)."""

    def __init__(self, waves: np.ndarray, device: torch.device):
        self.waves = torch.from_numpy(np.array(waves)).to(device)  # (N, L) int16; copied off the memory map
        self.device = device

    def __len__(self) -> int:
        return int(self.waves.shape[0])

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` as float32 (B, L)."""
        return self.waves[idx.to(self.device)].float().mul_(1.0 / 32768.0)


class Augmenter:
    """On-device waveform augmentation of a batch (B, L), reproducible through a ``torch.Generator``."""

    def __init__(self, sample_rate: int, time_shift_ms: float = 100.0, noise: torch.Tensor | None = None,
                 noise_prob: float = 0.8, snr_db: tuple[float, float] = (5.0, 30.0), speed_perturb: float = 0.0):
        self.max_shift = int(sample_rate * time_shift_ms / 1000)
        self.noise = noise  # (M,) float32 on the device, or None
        self.noise_prob, self.snr_db, self.speed = noise_prob, snr_db, speed_perturb

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        b, length = x.shape
        dev = x.device
        pos = torch.arange(length, device=dev).view(1, length)  # (1, L)
        if self.speed > 0:
            # Resample each clip by its own factor (speed and pitch together), linear interpolation.
            factor = 1.0 + (torch.rand(b, 1, device=dev, generator=gen) * 2 - 1) * self.speed  # (B, 1)
            src = pos * factor  # (B, L) fractional source positions
            lo = src.floor().long()
            frac = src - lo
            valid = (lo + 1 < length).float()
            lo = lo.clamp(max=length - 2)
            x = (x.gather(1, lo) * (1 - frac) + x.gather(1, lo + 1) * frac) * valid
        if self.max_shift > 0:
            shift = torch.randint(-self.max_shift, self.max_shift + 1, (b, 1), device=dev, generator=gen)
            src = pos - shift  # (B, L)
            valid = (src >= 0) & (src < length)
            x = x.gather(1, src.clamp(0, length - 1)) * valid
        if self.noise is not None and self.noise_prob > 0 and self.noise.shape[0] > length:
            start = torch.randint(0, self.noise.shape[0] - length, (b, 1), device=dev, generator=gen)
            seg = self.noise[start + pos]  # (B, L)
            lo, hi = self.snr_db
            snr = lo + torch.rand(b, 1, device=dev, generator=gen) * (hi - lo)  # (B, 1) dB
            sig_pow = x.square().mean(1, keepdim=True)
            noise_pow = seg.square().mean(1, keepdim=True).clamp(min=1e-10)
            scale = torch.sqrt(sig_pow / (noise_pow * torch.pow(10.0, snr / 10)))
            use = (torch.rand(b, 1, device=dev, generator=gen) < self.noise_prob).float()
            x = x + use * scale * seg
        return x


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This process's shuffled positions for one epoch: same permutation on every rank, strided by rank.

    Seeded by (seed, epoch) alone, so a resumed run draws exactly the batches it would have drawn.
    Every rank gets the same count (the tail that does not divide evenly is dropped under DDP).
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g)
    if world_size > 1:
        per = n // world_size
        perm = perm[rank::world_size][:per]
    return perm


def batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Split an index order into batches; a trailing batch of one is merged (BatchNorm needs two)."""
    out = list(torch.split(order, batch_size))
    if len(out) > 1 and out[-1].numel() < 2:
        last = out.pop()
        out[-1] = torch.cat([out[-1], last])
    return out
