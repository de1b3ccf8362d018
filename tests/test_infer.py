"""``app.pipeline.infer`` and ``ml.infer``: one prediction and embedding per clip, metrics, atomic visibility."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from sqlalchemy import func, select

from app.errors import Conflict
from app.pipeline.infer import infer_run
from app.pipeline.train import train_run
from app.store.models import Clip, Embedding, Prediction, Run
from ml.config import TrainConfig
from ml.infer import classification_metrics
from tests.factories import _metrics, make_dataset

TINY = dict(epochs=1, batch_size=16, width=8, eval_batch_size=64)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def _count(s, model, run_id: int) -> int:
    return s.scalar(select(func.count()).select_from(model).where(model.run_id == run_id))


def test_infer_writes_one_prediction_and_one_embedding_per_clip(store, tmp_path):
    with store.sessions() as s:
        ds, ids = make_dataset(s, tmp_path / "ds", n_clips=45, labels=["yes", "no", "up"])
        s.commit()
    run_id = train_run(store, ds.id, TrainConfig(**TINY))
    for _ in range(2):  # re-running replaces the rows, never duplicates them
        infer_run(store, run_id)
    with store.sessions() as s:
        run = s.get(Run, run_id)
        assert run.status == "complete" and run.finished_at is not None
        assert _count(s, Prediction, run_id) == _count(s, Embedding, run_id) == 45
        preds = s.execute(select(Prediction).where(Prediction.run_id == run_id)).scalars().all()
        assert sorted(p.clip_id for p in preds) == sorted(ids)
        for p in preds:
            probs = np.frombuffer(p.probs, dtype=np.float32)
            assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-4
            assert p.pred == run.classes[int(probs.argmax())]
            assert p.confidence == pytest.approx(float(probs.max()), rel=1e-5)
            assert p.loss == pytest.approx(-np.log(probs[run.classes.index(p.target)]), rel=1e-4, abs=1e-5)
            assert p.agree == (p.pred == p.target)
        vec = s.scalars(select(Embedding.vector).where(Embedding.run_id == run_id)).first()
        assert np.frombuffer(vec, dtype=np.float32).shape == (run.embedding_dim,)
        # Metrics have exactly the shape the web app reads (tests/factories.py::_metrics).
        for split in ("train", "validation", "test"):
            m = run.metrics[split]
            assert set(m) == {"accuracy", "macro_f1", "per_class", "confusion"}
            cm = np.array(m["confusion"])
            assert cm.shape == (3, 3) and cm.sum() == 15
            assert m == _metrics(cm, run.classes)


def test_classification_metrics_match_the_factory_definition():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    classes = ["a", "b", "c", "d"]
    cm = np.zeros((4, 4), int)
    np.add.at(cm, (t, p), 1)
    assert classification_metrics(t, p, classes) == _metrics(cm, classes)


def test_infer_refuses_a_run_still_training(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        ds, _ = make_dataset(s, tmp_path / "ds", n_clips=12)
        s.add(Run(dataset_id=ds.id, name="busy", model="melcnn", status="training", classes=[], config={}))
        s.commit()
    with pytest.raises(Conflict, match="no trained checkpoint"):
        infer_run(sqlite_store, "busy")


def test_killed_inference_leaves_no_visible_partial_run(sqlite_store, tmp_path):
    store = sqlite_store
    with store.sessions() as s:
        ds, _ = make_dataset(s, tmp_path / "ds", n_clips=900, labels=["yes", "no", "up"])
        s.commit()
    run_id = train_run(store, ds.id, TrainConfig(**{**TINY, "eval_batch_size": 32, "dry_run": True}))
    env = {**os.environ, "EARMARK_DATA_DIR": str(store.settings.data_dir), "EARMARK_DATABASE_URL": store.url}
    cmd = [sys.executable, "-c", "from app.cli import main; main()", "infer", "--run", str(run_id),
           "--batch-size", "32"]
    interrupted = 0
    for delay in (0.0, 1.0, 3.0):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with store.sessions() as s:
                if s.get(Run, run_id).status == "inferring":
                    break
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with store.sessions() as s:
            status = s.get(Run, run_id).status
            n_pred, n_emb = _count(s, Prediction, run_id), _count(s, Embedding, run_id)
        if status == "complete":  # the process finished before the kill: everything is there
            assert n_pred == n_emb == 900
        else:
            interrupted += 1
            assert status == "inferring"
            assert n_pred == n_emb == 0  # never half written
    assert interrupted >= 1
    infer_run(store, run_id)  # a later inference completes the run normally
    with store.sessions() as s:
        assert s.get(Run, run_id).status == "complete"
        assert _count(s, Prediction, run_id) == 900
        assert s.scalar(select(func.count()).select_from(Clip)) == 900
