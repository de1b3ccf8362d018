"""Running a checkpoint over clips: probabilities and penultimate-layer embeddings, plus the metrics.

``load_checkpoint(path, device)`` rebuilds the model from the config saved inside the checkpoint;
``predict(model, waves, device)`` returns float32 probabilities (N, C) and embeddings (N, D) in
one pass; ``classification_metrics`` gives accuracy, macro-F1, per-class precision/recall/F1 and
the confusion matrix (rows = target, columns = prediction, in class order).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ml.config import TrainConfig
from ml.metrics import classification_metrics, confusion, cross_entropy, metrics_from_confusion  # noqa: F401 (re-exported)
from ml.models import build_model, count_params


@dataclass
class LoadedModel:
    """A model ready for inference and what it was trained with."""

    model: nn.Module
    config: TrainConfig
    classes: list[str]
    epoch: int
    n_params: int
    embedding_dim: int


def load_checkpoint(path: str | Path, device: torch.device) -> LoadedModel:
    """Model in eval mode on ``device``, rebuilt from the checkpoint's own config and classes."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(ckpt["config"])
    model = build_model(cfg, len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return LoadedModel(model, cfg, list(ckpt["classes"]), int(ckpt["epoch"]), count_params(model),
                       int(model.embedding_dim))


def autocast_for(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA, nothing elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def predict(model: nn.Module, waves, device: torch.device, batch_size: int = 512, amp: bool = True,
            with_embeddings: bool = True, progress: Callable[[int, int], None] | None = None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax probabilities (N, C) and embeddings (N, D), float32, for every row of ``waves``.

    ``waves`` is an int16 array (N, L) (numpy or memory-mapped; moved to the device a chunk at a
    time) or a ``DeviceWaves``. One forward pass gives both outputs: ``head(embed(x))``.
    """
    from ml.data import DeviceWaves

    model.eval()
    n = len(waves)
    probs_out: list[torch.Tensor] = []
    emb_out: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        if isinstance(waves, DeviceWaves):
            x = waves.batch(torch.arange(start, stop))
        else:
            chunk = np.array(waves[start:stop])  # a writable copy of the (memory-mapped) rows
            x = torch.from_numpy(chunk).to(device, non_blocking=True).float().mul_(1.0 / 32768.0)
        with autocast_for(device, amp):
            emb = model.embed(x)  # (B, D)
            logits = model.head(emb)  # (B, C); dropout is a no-op in eval
        probs_out.append(torch.softmax(logits.float(), dim=1).cpu())
        if with_embeddings:
            emb_out.append(emb.float().cpu())
        if progress:
            progress(stop, n)
    probs = torch.cat(probs_out).numpy().astype(np.float32) if probs_out else np.zeros((0, 0), np.float32)
    embs = None
    if with_embeddings:
        embs = torch.cat(emb_out).numpy().astype(np.float32) if emb_out else np.zeros((0, 0), np.float32)
    return probs, embs
