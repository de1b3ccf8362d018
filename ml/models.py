"""The two classifiers: ``MelCNN`` (log-mel residual 2-D CNN) and ``M5`` (raw-waveform 1-D CNN baseline).

Both take a raw waveform batch ``(B, clip_samples)`` float at the data set's sample rate, compute
their own front end on the device (log-mel, or resampling to 8 kHz for M5), and expose
``embed(x) -> (B, embedding_dim)`` (the penultimate layer) and ``forward(x) -> (B, n_classes)``
logits. ``build_model(cfg, n_classes)`` builds either from a ``TrainConfig``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ml.config import TrainConfig
from ml.features import LogMel, resample, spec_augment


class ResBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a projection shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = None
        if c_in != c_out or stride != (1, 1):
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class MelCNN(nn.Module):
    """Log-mel front end + a 4-stage residual CNN; about 270k parameters at width 32.

    Shapes at the defaults (40 mels, 101 frames): stem (B, 32, 20, 51) -> stages
    (B, 32, 10, 26) -> (B, 48, 5, 13) -> (B, 64, 3, 7) -> (B, 96, 3, 7) -> pooled embedding (B, 96).
    """

    def __init__(self, n_classes: int, cfg: TrainConfig | None = None):
        super().__init__()
        cfg = cfg or TrainConfig()
        self.cfg = cfg
        w = cfg.width
        widths = [w, w * 3 // 2, w * 2, w * 3]
        strides = [(2, 2), (2, 2), (2, 2), (1, 1)]
        self.frontend = LogMel(cfg.sample_rate, cfg.n_mels, cfg.win_samples, cfg.hop_samples, cfg.n_fft)
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, stride=cfg.stem_stride, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        blocks, c = [], w
        for c_out, s in zip(widths, strides, strict=True):
            blocks.append(ResBlock(c, c_out, s))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.embedding_dim = c
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(c, n_classes)
        self.channels_last = False  # set by the trainer on CUDA

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform (B, T) -> normalised log-mel image (B, 1, n_mels, frames), SpecAugment when training."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            mel = self.frontend(x.float())  # (B, n_mels, frames), float32 for the FFT
            # Per-clip normalisation (CMVN): loudness and channel differences drop out.
            mel = (mel - mel.mean(dim=(1, 2), keepdim=True)) / (mel.std(dim=(1, 2), keepdim=True) + 1e-5)
            if self.training:
                c = self.cfg
                mel = spec_augment(mel, c.freq_masks, c.freq_mask_width, c.time_masks, c.time_mask_width)
        img = self.input_norm(mel.unsqueeze(1))
        if self.channels_last:
            img = img.contiguous(memory_format=torch.channels_last)
        return img

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate layer: (B, T) -> (B, embedding_dim)."""
        h = self.blocks(self.stem(self.features(x)))  # (B, C, H, W)
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


class M5(nn.Module):
    """The PyTorch Speech Commands tutorial's M5 on 8 kHz audio (resampled on the device)."""

    def __init__(self, n_classes: int, cfg: TrainConfig | None = None, n_channel: int = 32):
        super().__init__()
        cfg = cfg or TrainConfig(model="m5")
        self.cfg = cfg
        self.conv1 = nn.Conv1d(1, n_channel, kernel_size=80, stride=16)
        self.bn1 = nn.BatchNorm1d(n_channel)
        self.conv2 = nn.Conv1d(n_channel, n_channel, kernel_size=3)
        self.bn2 = nn.BatchNorm1d(n_channel)
        self.conv3 = nn.Conv1d(n_channel, 2 * n_channel, kernel_size=3)
        self.bn3 = nn.BatchNorm1d(2 * n_channel)
        self.conv4 = nn.Conv1d(2 * n_channel, 2 * n_channel, kernel_size=3)
        self.bn4 = nn.BatchNorm1d(2 * n_channel)
        self.embedding_dim = 2 * n_channel
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * n_channel, n_classes)
        self.channels_last = False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) at cfg.sample_rate -> (B, 64)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = resample(x.float(), self.cfg.sample_rate, self.cfg.m5_sample_rate)  # (B, 8000)
        h = x.unsqueeze(1)  # (B, 1, 8000)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3),
                         (self.conv4, self.bn4)):
            h = F.max_pool1d(F.relu(bn(conv(h))), 4)  # 8000 -> 124 -> 30 -> 7 -> 1 steps
        return h.mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


def build_model(cfg: TrainConfig, n_classes: int) -> nn.Module:
    """The model named by ``cfg.model`` for ``n_classes`` outputs."""
    if cfg.model == "melcnn":
        return MelCNN(n_classes, cfg)
    if cfg.model == "m5":
        return M5(n_classes, cfg)
    raise ValueError(f"unknown model {cfg.model!r}; use melcnn or m5")


def count_params(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
