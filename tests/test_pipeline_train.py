"""``app.pipeline.train``: runs in the store, flags applied with each policy, folds, the real sample, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.errors import EarmarkError
from app.flags import CUTOFF, UNKNOWN
from app.pipeline.infer import infer_run
from app.pipeline.run_spec import RunSpec
from app.pipeline.train import train_run
from app.store.flags import upsert_flag
from app.store.models import Clip, Epoch, Prediction, Run
from ml.config import TrainConfig
from tests.factories import make_dataset, make_run

TINY = dict(epochs=1, batch_size=16, width=8, eval_batch_size=64)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def _flag_some(session, ds_id: int) -> dict[str, int]:
    clips = session.execute(select(Clip.id, Clip.label).where(Clip.dataset_id == ds_id).order_by(Clip.id)).all()
    picked = {"mislabeled": clips[0], "cutoff": clips[1], "noise_only": clips[2], "multiple_words": clips[3],
              "other": clips[4]}
    for reason, (cid, _label) in picked.items():
        corrected = "go" if reason == "mislabeled" else None
        upsert_flag(session, cid, reason, corrected, note="t", author="tester")
    session.commit()
    return {reason: cid for reason, (cid, _label) in picked.items()}


def _targets(session, run_id: int) -> dict[int, str]:
    return dict(session.execute(select(Prediction.clip_id, Prediction.target).where(Prediction.run_id == run_id)).all())


def test_apply_flags_class_policy_adds_cutoff_class(store, tmp_path):
    with store.sessions() as s:
        ds, ids = make_dataset(s, tmp_path / "ds", n_clips=60)
        parent = make_run(s, tmp_path / "ds", dataset=(ds, ids), name="before").run_id
        flagged = _flag_some(s, ds.id)
    run_id = train_run(store, "fixture", TrainConfig(**TINY),
                       spec=RunSpec(apply_flags=True, cutoff_policy="class"))
    infer_run(store, run_id)
    with store.sessions() as s:
        run = s.get(Run, run_id)
        assert run.status == "complete" and run.parent_run_id == parent
        assert run.classes[-1] == CUTOFF and CUTOFF not in run.classes[:-1]
        assert {f["reason"] for f in run.flags_used} == {"mislabeled", "cutoff", "noise_only", "multiple_words"}
        assert all(set(f) == {"clip_id", "reason", "corrected_label", "updated_at"} for f in run.flags_used)
        assert run.label_map == {str(flagged["mislabeled"]): "go", str(flagged["cutoff"]): CUTOFF,
                                 str(flagged["noise_only"]): CUTOFF, str(flagged["multiple_words"]): CUTOFF}
        targets = _targets(s, run_id)
        assert targets[flagged["mislabeled"]] == "go"
        assert targets[flagged["cutoff"]] == CUTOFF
        other_label = s.get(Clip, flagged["other"]).label
        assert targets[flagged["other"]] == other_label  # 'other' flags change nothing
        assert s.scalar(select(func.count()).select_from(Prediction).where(Prediction.run_id == run_id)) == 60


def test_apply_flags_exclude_policy_leaves_clips_out(sqlite_store, tmp_path):
    store = sqlite_store
    with store.sessions() as s:
        ds, _ids = make_dataset(s, tmp_path / "ds", n_clips=60)
        flagged = _flag_some(s, ds.id)
    run_id = train_run(store, ds.id, TrainConfig(**TINY), spec=RunSpec(apply_flags=True, cutoff_policy="exclude"),
                       name="excl")
    infer_run(store, "excl")
    with store.sessions() as s:
        run = s.get(Run, run_id)
        assert CUTOFF not in run.classes and run.parent_run_id is None  # no complete run to improve on
        assert run.label_map[str(flagged["cutoff"])] is None
        assert run.label_map[str(flagged["mislabeled"])] == "go"
        targets = _targets(s, run_id)
        # Left-out clips are still predicted, against their label as filed.
        assert targets[flagged["cutoff"]] == s.get(Clip, flagged["cutoff"]).label
        assert targets[flagged["mislabeled"]] == "go"


def test_apply_flags_in_the_12_class_task_uses_unknown(sqlite_store, tmp_path):
    store = sqlite_store
    labels = ["yes", "no", "bed", "cat"]
    with store.sessions() as s:
        ds, ids = make_dataset(s, tmp_path / "ds", n_clips=40, labels=labels)
        upsert_flag(s, ids[0], "cutoff")  # a 'yes' clip
        s.commit()
    run_id = train_run(store, ds.id, TrainConfig(classes="v1-12", **TINY),
                       spec=RunSpec(apply_flags=True))
    infer_run(store, run_id)
    with store.sessions() as s:
        run = s.get(Run, run_id)
        assert len(run.classes) == 12 and run.classes[-2:] == [UNKNOWN, "_silence_"]
        targets = _targets(s, run_id)
        assert targets[ids[0]] == UNKNOWN
        assert targets[ids[2]] == UNKNOWN  # 'bed' is not a keyword
        assert targets[ids[1]] == "no"


def test_folds_store_out_of_fold_probabilities_for_training_clips(sqlite_store, tmp_path):
    store = sqlite_store
    with store.sessions() as s:
        ds, _ = make_dataset(s, tmp_path / "ds", n_clips=90, labels=["yes", "no", "up"])
        s.commit()
    run_id = train_run(store, ds.id, TrainConfig(**TINY), spec=RunSpec(folds=2))
    infer_run(store, run_id)
    with store.sessions() as s:
        assert s.get(Run, run_id).folds == 2
        rows = s.execute(select(Clip.split, Prediction.oof_probs, Prediction.probs)
                         .join(Prediction, Prediction.clip_id == Clip.id).where(Prediction.run_id == run_id)).all()
    for split, oof, probs in rows:
        if split == "train":
            p = np.frombuffer(oof, dtype=np.float32)
            assert p.shape == (3,) and abs(p.sum() - 1) < 1e-4
            assert oof != probs
        else:
            assert oof is None


def test_train_runs_end_to_end_on_the_real_sample(sqlite_store, shared_sample, tmp_path):
    import shutil

    from app.pipeline.ingest import ingest

    store = sqlite_store
    root = tmp_path / "sample"
    shutil.copytree(shared_sample, root)
    ingest(store, root, name="sample", workers=1)
    epochs = []
    run_id = train_run(store, "sample", TrainConfig(epochs=1, batch_size=32, width=8),
                       progress=lambda stage, done, total: epochs.append(stage))
    infer_run(store, run_id)
    with store.sessions() as s:
        run = s.get(Run, run_id)
        assert run.status == "complete" and len(run.classes) == 30 and run.epochs_done == 1
        assert set(run.metrics) == {"train", "validation", "test"}
        assert run.metrics["train"]["per_class"]["yes"]["support"] > 0
        assert s.scalar(select(func.count()).select_from(Epoch).where(Epoch.run_id == run_id)) == 1
        assert s.scalar(select(func.count()).select_from(Prediction).where(Prediction.run_id == run_id)) == 300
    assert {"decoding", "training"} <= set(epochs)
    assert (store.settings.runs_dir / str(run_id) / "tb").is_dir()


def test_train_errors_are_clear(sqlite_store, tmp_path):
    with pytest.raises(EarmarkError, match="no data set"):
        train_run(sqlite_store, "nope", TrainConfig(**TINY))
    with sqlite_store.sessions() as s:
        make_dataset(s, tmp_path / "ds", n_clips=20)
        s.commit()
    with pytest.raises(EarmarkError, match="invalid training settings"):
        train_run(sqlite_store, None, TrainConfig(model="resnet152", **TINY))


def test_cli_train_then_runs_lists_it(sqlite_store, tmp_path, monkeypatch):
    from app.cli import app

    with sqlite_store.sessions() as s:
        make_dataset(s, tmp_path / "ds", n_clips=30, labels=["yes", "no", "up"])
        s.commit()
    monkeypatch.setenv("EARMARK_DATA_DIR", str(sqlite_store.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", sqlite_store.url)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--epochs", "1", "--width", "8", "--batch-size", "8", "--name", "cli-run"])
    assert res.exit_code == 0, res.output
    assert "run id: 1" in res.output
    res = runner.invoke(app, ["runs"])
    assert res.exit_code == 0 and "cli-run" in res.output and "complete" in res.output
    res = runner.invoke(app, ["infer", "--run", "99"])
    assert res.exit_code == 1 and "no run '99'" in res.output


def test_resume_after_an_interrupt_matches_an_uninterrupted_run(sqlite_store, tmp_path):
    store = sqlite_store
    with store.sessions() as s:
        ds, _ = make_dataset(s, tmp_path / "ds", n_clips=48, labels=["yes", "no", "up"])
        s.commit()
    cfg = TrainConfig(**{**TINY, "epochs": 2, "batch_size": 4})
    whole = train_run(store, ds.id, cfg, name="whole")

    def interrupt_in_epoch_two(stage: str, done: int, total: int) -> None:
        if stage == "training" and done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(store, ds.id, cfg, name="cut", progress=interrupt_in_epoch_two)
    with store.sessions() as s:
        cut = s.scalars(select(Run).where(Run.name == "cut")).one()
        assert cut.status == "failed" and cut.error == "interrupted" and cut.epochs_done == 1
    assert train_run(store, resume="cut") == cut.id
    with store.sessions() as s:
        run = s.get(Run, cut.id)
        assert run.status == "trained" and run.epochs_done == 2
        assert s.scalars(select(Epoch.epoch).where(Epoch.run_id == cut.id).order_by(Epoch.epoch)).all() == [1, 2]
    a = torch.load(store.settings.runs_dir / str(whole) / "last.pt", weights_only=False)["model"]
    b = torch.load(store.settings.runs_dir / str(cut.id) / "last.pt", weights_only=False)["model"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(EarmarkError, match="finished training"):
        train_run(store, resume="cut")


def test_apply_flags_mislabeled_as_cutoff_follows_the_cutoff_policy(sqlite_store, tmp_path):
    # The flag form offers _cutoff_ as a correct label; the trainer must honour it, not drop it.
    store = sqlite_store
    with store.sessions() as s:
        ds, ids = make_dataset(s, tmp_path / "ds", n_clips=40)
        upsert_flag(s, ids[0], "mislabeled", CUTOFF)
        s.commit()
    run_id = train_run(store, ds.id, TrainConfig(**TINY),
                       spec=RunSpec(apply_flags=True, cutoff_policy="class"))
    with store.sessions() as s:
        run = s.get(Run, run_id)
        assert run.classes[-1] == CUTOFF
        assert run.label_map == {str(ids[0]): CUTOFF}
        assert run.flags_used[0]["reason"] == "mislabeled" and run.flags_used[0]["corrected_label"] == CUTOFF
