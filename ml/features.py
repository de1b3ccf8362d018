"""Features computed on the model's device: log-mel spectrograms (torch.stft), SpecAugment, resampling.

Nothing here runs per clip on the CPU: every function takes a batch tensor ``(B, T)`` on whatever
device the model lives on. The mel filterbank follows the HTK mel scale with triangular filters
and no area normalisation (the same convention as ``torchaudio.transforms.MelSpectrogram``'s
defaults), so values can be checked against a few lines of numpy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_EPS = 1e-6  # floor inside log() so digital silence stays finite


def hz_to_mel(f):
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m):
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters, shape (n_fft // 2 + 1, n_mels), float32."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    m_pts = torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    f_pts = mel_to_hz(m_pts)  # (n_mels + 2,) filter edges and centres in Hz
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts.unsqueeze(0) - freqs.unsqueeze(1)  # (F, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]  # rising edge
    up = slopes[:, 2:] / f_diff[1:]  # falling edge
    return torch.clamp(torch.minimum(down, up), min=0.0).to(torch.float32)


class LogMel(nn.Module):
    """Waveform batch (B, T) float in [-1, 1] -> log-mel (B, n_mels, frames)."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, win_length: int = 480, hop_length: int = 160,
                 n_fft: int = 512):
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        # Buffers, not parameters: they follow .to(device) and are saved with the checkpoint.
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_fft, n_mels, sample_rate), persistent=False)

    def power_spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """|STFT|^2, (B, n_fft // 2 + 1, frames); centred frames with zero padding."""
        spec = torch.stft(x.float(), n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=True, pad_mode="constant", return_complex=True)
        return spec.real.square() + spec.imag.square()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        power = self.power_spectrogram(x)  # (B, F, frames)
        mel = torch.matmul(power.transpose(1, 2), self.fb).transpose(1, 2)  # (B, n_mels, frames)
        return torch.log(mel + LOG_EPS)


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames a centred STFT yields for ``n_samples``."""
    return n_samples // hop_length + 1


def spec_augment(spec: torch.Tensor, freq_masks: int = 2, freq_width: int = 5, time_masks: int = 2,
                 time_width: int = 10, generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment masks on (B, n_mels, frames), vectorised over the batch; masked cells get the clip's mean.

    Each mask has a width drawn uniformly from [0, width] and a random start; ``generator``
    (on the same device as ``spec``) makes the masks reproducible.
    """
    b, n_mels, frames = spec.shape
    dev = spec.device
    keep = torch.ones(b, n_mels, frames, dtype=torch.bool, device=dev)

    def _masks(count: int, width: int, size: int) -> torch.Tensor:
        # (B, size) True where masked, the union of `count` random bands.
        if count <= 0 or width <= 0:
            return torch.zeros(b, size, dtype=torch.bool, device=dev)
        w = torch.randint(0, width + 1, (b, count), device=dev, generator=generator)
        start = (torch.rand(b, count, device=dev, generator=generator) * (size - w).clamp(min=1)).long()
        pos = torch.arange(size, device=dev).view(1, 1, size)
        inside = (pos >= start.unsqueeze(-1)) & (pos < (start + w).unsqueeze(-1))  # (B, count, size)
        return inside.any(1)

    keep &= ~_masks(freq_masks, freq_width, n_mels).unsqueeze(2)
    keep &= ~_masks(time_masks, time_width, frames).unsqueeze(1)
    fill = spec.mean(dim=(1, 2), keepdim=True)
    return torch.where(keep, spec, fill)


def _sinc_kernel(orig: int, new: int, lowpass_width: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """Polyphase windowed-sinc kernel (new, 1, K) for resampling ``orig`` -> ``new`` (reduced by gcd)."""
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_width * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64) / orig  # (K,)
    t = (-torch.arange(0, new, dtype=torch.float64).view(-1, 1) / new + idx.view(1, -1)) * base  # (new, K)
    t = t.clamp(-lowpass_width, lowpass_width)
    window = torch.cos(t * math.pi / lowpass_width / 2) ** 2  # Hann window
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t) * window * (base / orig)
    return kernel.unsqueeze(1).to(torch.float32), width


def resample(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited resampling of (B, T) on its own device; output length ceil(T * new / orig)."""
    if orig == new:
        return x
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    kernel, width = _sinc_kernel(o, n)
    kernel = kernel.to(x.device, x.dtype)
    b, length = x.shape
    padded = F.pad(x.unsqueeze(1), (width, width + o))  # (B, 1, T + 2w + o)
    y = F.conv1d(padded, kernel, stride=o)  # (B, n, frames)
    y = y.transpose(1, 2).reshape(b, -1)
    return y[:, : math.ceil(n * length / o)]
