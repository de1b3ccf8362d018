"""The GPU session's one prepared script (``bench/gpu_run.sh``) at smoke sizes on the CPU, so that it
still runs when a session is finally lent a GPU (its device time is too short to debug it there)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_run_script_runs_every_bench_at_smoke_size(tmp_path):
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable, "WHEELS": ""}
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_run.sh")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.txt", "infer.txt", "train.txt", "train_m5.txt"]
    assert "torch" in (tmp_path / "env.txt").read_text()
    for name, model in (("train.txt", "melcnn"), ("train_m5.txt", "m5")):
        text = (tmp_path / name).read_text()
        assert f"Training throughput: {model}" in text and "| earmark (on-device) |" in text
        assert "tutorial DataLoader" in text and "speed-up:" in text
    infer = (tmp_path / "infer.txt").read_text()
    assert "inference + embeddings" in infer and "projected inference over 105k clips" in infer
