"""The training loop, readable top to bottom: arrays in, checkpoints and per-epoch stats out.

``train(cfg, data, out_dir, device=...)`` trains one model on ``data`` (a ``TrainData`` of int16
waveforms, integer labels and index lists), writes ``last.pt`` every epoch and ``best.pt`` when the
validation loss improves, logs to TensorBoard, and calls ``on_epoch(EpochStats)`` so the caller can
store the curve. Randomness is re-seeded from (seed, epoch) at the start of every epoch, which is
what makes ``resume=True`` end with exactly the weights of an uninterrupted run.

Under ``torchrun`` (see ``ml.device.init_distributed``) the model is wrapped in DDP and every
process trains on its stride of the same shuffled order; only rank 0 writes anything.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ml.config import TrainConfig
from ml.data import Augmenter, DeviceWaves, batches, epoch_order, make_silence
from ml.device import barrier, is_distributed
from ml.infer import autocast_for, classification_metrics
from ml.models import build_model, count_params
from ml.speech_commands import SILENCE

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    """What a run trains on. Indices point into ``waves``; labels are class indices (-1 = unused)."""

    waves: np.ndarray  # (N, L) int16, every clip of the data set
    labels: np.ndarray  # (N,) int64 training label per clip, -1 where the clip is left out
    train_idx: np.ndarray  # (n_train,) rows used for training
    val_idx: np.ndarray  # (n_val,) rows used for validation
    classes: list[str]  # output index -> class name
    noise: np.ndarray | None = None  # (M,) float32 background noise for augmentation and silence


@dataclass
class EpochStats:
    """One row of the training curve."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float
    seconds: float
    lr: float


@dataclass
class TrainResult:
    """Where the checkpoints are and how the run ended."""

    best_path: Path
    last_path: Path
    best_epoch: int
    best_val_loss: float
    epochs_done: int
    n_params: int
    embedding_dim: int
    history: list[EpochStats] = field(default_factory=list)
    state: dict | None = None  # final weights (CPU tensors), on every process


def _with_silence(cfg: TrainConfig, data: TrainData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Append synthetic _silence_ clips (v1-12) to the arrays; returns waves, labels, train and val rows."""
    waves, labels = data.waves, data.labels
    train_idx, val_idx = np.asarray(data.train_idx), np.asarray(data.val_idx)
    if SILENCE not in data.classes or cfg.silence_frac <= 0:
        return waves, labels, train_idx, val_idx
    k = data.classes.index(SILENCE)
    n_tr = max(1, int(round(len(train_idx) * cfg.silence_frac)))
    n_va = int(round(len(val_idx) * cfg.silence_frac))
    extra = make_silence(n_tr + n_va, waves.shape[1], data.noise, seed=cfg.seed + 7919)
    n = waves.shape[0]
    waves = np.concatenate([np.asarray(waves), extra])
    labels = np.concatenate([labels, np.full(n_tr + n_va, k, dtype=np.int64)])
    train_idx = np.concatenate([train_idx, np.arange(n, n + n_tr)])
    val_idx = np.concatenate([val_idx, np.arange(n + n_tr, n + n_tr + n_va)])
    return waves, labels, train_idx, val_idx


def _scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, total_steps: int):
    if cfg.schedule == "onecycle":
        total = max(4, total_steps)
        # At least two warm-up steps, so tiny runs never get a zero-length phase.
        pct = min(0.5, max(cfg.warmup_frac, 2.0 / total))
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=pct)
    warm = max(1, int(total_steps * cfg.warmup_frac))

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to zero
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, lr_at)


def _save(obj: dict, path: Path) -> None:
    """Atomic torch.save: a killed process never leaves a truncated checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def evaluate(model: nn.Module, waves: DeviceWaves, rows: torch.Tensor, labels: torch.Tensor,
             classes: list[str], device: torch.device, cfg: TrainConfig) -> tuple[float, dict]:
    """Mean cross-entropy and metrics of ``model`` on ``rows``."""
    model.eval()
    losses, preds = [], []
    for idx in torch.split(rows, cfg.eval_batch_size):
        with autocast_for(device, cfg.amp):
            logits = model(waves.batch(idx)).float()
        losses.append(F.cross_entropy(logits, labels[idx.to(device)], reduction="sum").item())
        preds.append(logits.argmax(1).cpu())
    if not len(rows):
        return float("nan"), classification_metrics(np.zeros(0), np.zeros(0), classes)
    pred = torch.cat(preds).numpy()
    return sum(losses) / len(rows), classification_metrics(labels[rows.to(device)].cpu().numpy(), pred, classes)


def train(cfg: TrainConfig, data: TrainData, out_dir: Path, device: torch.device, resume: bool = False,
          on_epoch: Callable[[EpochStats], None] | None = None,
          on_step: Callable[[int, int, int, float], None] | None = None,
          tb_dir: Path | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``data``; checkpoints go to ``out_dir``. See the module docstring."""
    cfg.validate()
    out_dir = Path(out_dir)
    rank = torch.distributed.get_rank() if is_distributed() else 0
    world = torch.distributed.get_world_size() if is_distributed() else 1
    main = rank == 0
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"

    waves_np, labels_np, train_np, val_np = _with_silence(cfg, data)
    train_np = train_np[labels_np[train_np] >= 0]  # rows left out (exclude policy) never train
    val_np = val_np[labels_np[val_np] >= 0]
    if len(train_np) < 2:
        raise ValueError(f"only {len(train_np)} training clips; need at least 2")
    waves = DeviceWaves(waves_np, device)
    labels = torch.from_numpy(np.asarray(labels_np, dtype=np.int64)).to(device)
    train_rows, val_rows = torch.from_numpy(train_np).long(), torch.from_numpy(val_np).long()
    noise = torch.from_numpy(data.noise).to(device) if data.noise is not None else None
    augment = Augmenter(cfg.sample_rate, cfg.time_shift_ms, noise, cfg.noise_prob, (cfg.snr_db_min, cfg.snr_db_max),
                        cfg.speed_perturb)

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every attempt
    model = build_model(cfg, len(data.classes)).to(device)
    n_params, emb_dim = count_params(model), int(model.embedding_dim)
    if device.type == "cuda" and cfg.channels_last and cfg.model == "melcnn":
        model = model.to(memory_format=torch.channels_last)
        model.channels_last = True
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=device.type == "cuda")  # one kernel per step on a GPU
    steps_per_epoch = len(batches(epoch_order(len(train_rows), cfg.seed, 1, rank, world), cfg.batch_size))
    epochs = 1 if cfg.dry_run else cfg.epochs
    sched = _scheduler(cfg, opt, steps_per_epoch * epochs)

    start_epoch, best_loss, best_epoch, history = 1, float("inf"), 0, []
    if resume and last_path.is_file():
        ckpt = torch.load(last_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch, best_loss, best_epoch = ckpt["epoch"] + 1, ckpt["best_val_loss"], ckpt["best_epoch"]
        history = [EpochStats(**h) for h in ckpt.get("history", [])]
        log.info("resuming at epoch %d of %d", start_epoch, epochs)

    net: nn.Module = model
    if is_distributed():
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    writer = None
    if main and tb_dir is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(tb_dir), purge_step=start_epoch)

    for epoch in range(start_epoch, epochs + 1):
        t0 = time.perf_counter()
        # Re-seed per epoch: dropout/SpecAugment (global RNG) and waveform augmentation (gen).
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 7_919 + epoch)
        net.train()
        total, count = torch.zeros((), device=device), 0
        steps = batches(epoch_order(len(train_rows), cfg.seed, epoch, rank, world), cfg.batch_size)
        if cfg.dry_run:
            steps = steps[:1]
        for step, pos in enumerate(steps):
            idx = train_rows[pos]
            x = augment(waves.batch(idx), gen)  # (B, L) on the device
            y = labels[idx.to(device)]
            with autocast_for(device, cfg.amp):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * len(idx)
            count += len(idx)
            if on_step and main and (step % 10 == 0 or step == len(steps) - 1):
                on_step(epoch, step + 1, len(steps), loss.item())
        train_loss = float(total) / max(1, count)
        if is_distributed():
            # Average the train loss for the record; give every process rank 0's BatchNorm statistics
            # (DDP syncs gradients, so parameters already agree; running stats are per process).
            t = torch.tensor([train_loss], device=device)
            torch.distributed.all_reduce(t)
            train_loss = float(t) / world
            for buf in model.buffers():
                torch.distributed.broadcast(buf, 0)
        eval_rows = val_rows if len(val_rows) else train_rows
        if cfg.dry_run:
            eval_rows = eval_rows[: cfg.eval_batch_size]
        val_loss, m = evaluate(model, waves, eval_rows, labels, data.classes, device, cfg)
        stats = EpochStats(epoch, train_loss, val_loss, m["accuracy"], m["macro_f1"], time.perf_counter() - t0,
                           float(sched.get_last_lr()[0]))
        history.append(stats)
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch = val_loss, epoch
        if main:
            ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": epoch, "best_val_loss": best_loss, "best_epoch": best_epoch,
                    "config": cfg.to_dict(), "classes": list(data.classes), "n_params": n_params,
                    "embedding_dim": emb_dim, "history": [vars(h) for h in history]}
            if improved:
                _save(ckpt, best_path)
            _save(ckpt, last_path)
            if writer is not None:
                for key in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr"):
                    writer.add_scalar(key, getattr(stats, key), epoch)
                writer.flush()
            if on_epoch:
                on_epoch(stats)
        barrier()
    if writer is not None:
        writer.close()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainResult(best_path, last_path, best_epoch, best_loss, len(history), n_params, emb_dim, history, state)


def speaker_folds(groups: list[str | None], k: int, seed: int = 0) -> np.ndarray:
    """Fold id (0..k-1) per item, keeping each speaker in one fold; items without a speaker spread alone.

    Speakers are shuffled (seeded) and dealt to the currently smallest fold, largest first, so the
    folds come out close in size.
    """
    keys = [g if g else f"__item{i}" for i, g in enumerate(groups)]
    uniq, inverse, counts = np.unique(np.array(keys, dtype=object), return_inverse=True, return_counts=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]
    sizes = np.zeros(k, dtype=np.int64)
    fold_of = np.zeros(len(uniq), dtype=np.int64)
    for u in order:
        f = int(np.argmin(sizes))
        fold_of[u] = f
        sizes[f] += counts[u]
    return fold_of[inverse]
