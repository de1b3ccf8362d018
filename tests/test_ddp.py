"""Data-parallel training: 2 CPU processes with the gloo backend, joined the way torchrun joins them."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.multiprocessing as mp

from ml.config import TrainConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    # The same environment torchrun sets; init_distributed reads it.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from ml.device import init_distributed
    from ml.train import TrainData, train

    info = init_distributed(torch.device("cpu"))
    assert info.world_size == 2 and dist.get_backend() == "gloo"
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    labels = np.arange(16) % 2
    waves = np.stack([np.round((0.3 * np.sin(2 * np.pi * (300 + 600 * c) * t) + rng.normal(0, 0.01, 16000))
                               * 32767).astype(np.int16) for c in labels])
    data = TrainData(waves, labels.astype(np.int64), np.arange(16), np.arange(16), ["lo", "hi"])
    steps: list[int] = []
    cfg = TrainConfig(epochs=2, batch_size=4, width=8, time_shift_ms=0, noise_prob=0)
    result = train(cfg, data, os.path.join(out, "run"), torch.device("cpu"),
                   on_step=lambda e, s, n, loss: steps.append(n))
    torch.save({"state": result.state, "steps": steps[-1] if steps else None,
                "ckpt": os.path.isfile(os.path.join(out, "run", "last.pt"))}, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_ddp_two_cpu_processes_train_identical_weights(tmp_path):
    mp.spawn(_worker_entry, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert r0["steps"] == 2  # 16 clips / 2 processes / batch 4 = 2 steps per epoch on rank 0
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k
    assert (tmp_path / "run" / "best.pt").is_file()
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"]
    for k, v in saved.items():
        assert torch.equal(v, r0["state"][k]), k


def _worker_entry(rank: int, world: int, port: int, out: str) -> None:
    _worker(rank, world, port, out)
