"""Picking the device once (cuda, then mps, then cpu) and setting up data-parallel training.

Under ``torchrun --nproc_per_node=N`` the environment carries RANK/WORLD_SIZE/LOCAL_RANK; then
``init_distributed`` joins the process group (nccl on CUDA, gloo on CPU) and each process gets
its own GPU. Outside torchrun everything here is a no-op and rank is 0 of 1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def pick_device(preference: str | None = "auto") -> torch.device:
    """The device to train/infer on: ``preference`` if not auto, else cuda, mps, cpu in that order."""
    pref = (preference or "auto").lower()
    if pref != "auto":
        if pref.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but no CUDA GPU is available")
        if pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' was requested but MPS is not available")
        return torch.device(pref)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % max(1, torch.cuda.device_count()))
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, logs and the store."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_env() -> DistInfo:
    """Rank information from the torchrun environment (or 0 of 1)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; a no-op for a single process."""
    info = dist_env()
    if info.enabled and not (dist.is_available() and dist.is_initialized()):
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        log.info("joined %s process group as rank %d of %d", backend, info.rank, info.world_size)
    return info


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_object(obj, src: int = 0):
    """Send a picklable object from ``src`` to every process (identity when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()
