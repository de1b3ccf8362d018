"""import-run / export-run through the store: every format, bad input refused before anything is
written, partial coverage, the 12-class map, reduced runs, the export→import round trip (bit-exact),
analyze and compare on an imported run, and a killed import (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.errors import Conflict, EarmarkError
from app.pipeline.analyze import analyze_run
from app.pipeline.compare import compare_runs
from app.pipeline.import_run import export_run, import_run
from app.pipeline.project import project_run
from app.run_files import from_arrays, from_dataframe
from app.store.models import Embedding, Prediction, Run
from app.store.predictions import read_outputs
from app.store.runs import get_run
from app.web.main import create_app
from tests.factories import make_dataset, make_run

REPO = Path(__file__).resolve().parents[1]


def _counts(store) -> tuple[int, int, int]:
    with store.session() as s:
        return (s.scalar(select(func.count()).select_from(Run)), s.scalar(select(func.count()).select_from(Prediction)),
                s.scalar(select(func.count()).select_from(Embedding)))


def _outputs(store, run_id: int):
    with store.session() as s:
        return read_outputs(s, get_run(s, run_id))


@pytest.fixture
def fixture_run(store, tmp_path):
    with store.session() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=60, write_audio=False)
    return store, fx


def test_export_import_round_trip_is_bit_exact(fixture_run, tmp_path):
    store, fx = fixture_run
    path, n = export_run(store, fx.run_id, tmp_path / "run.parquet")
    assert n == 60
    s = import_run(store, path, "fixture", "again", model="their-model")
    a, b = _outputs(store, fx.run_id), _outputs(store, s.run_id)
    assert a.probs.tobytes() == b.probs.tobytes()
    assert a.embeddings.tobytes() == b.embeddings.tobytes()
    assert a.confidence.tobytes() == b.confidence.tobytes()
    assert list(a.pred) == list(b.pred) and list(a.target) == list(b.target) and (a.agree == b.agree).all()
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5)
    assert s.coverage == 1.0 and s.missing == []
    with store.session() as ss:
        run = get_run(ss, s.run_id)
        info = run.config["import"]
        assert run.status == "complete" and run.model == "their-model" and run.embedding_dim == 32
        assert info["source"] == str(path) and len(info["sha256"]) == 64 and info["format"] == "parquet"
        assert run.metrics["validation"]["accuracy"] == pytest.approx(get_run(ss, fx.run_id).metrics["validation"]["accuracy"])


def test_every_format_imports_the_same_predictions(fixture_run, tmp_path):
    store, fx = fixture_run
    base = _outputs(store, fx.run_id)
    classes = fx.labels
    paths = np.asarray(base.paths, dtype=object)
    np.savez(tmp_path / "run.npz", paths=paths.astype(str), probs=base.probs, embeddings=base.embeddings,
             classes=np.asarray(classes))
    csv = pd.DataFrame({"path": paths, "pred": base.pred,
                        **{f"prob_{c}": np.round(base.probs[:, i].astype(np.float64), 6) for i, c in enumerate(classes)}})
    csv.to_csv(tmp_path / "run.csv", index=False)
    df = pd.DataFrame({"path": paths, "probs": list(base.probs), "embedding": list(base.embeddings)})
    got = {
        "npz": import_run(store, tmp_path / "run.npz", "fixture", "npz"),
        "csv": import_run(store, tmp_path / "run.csv", "fixture", "csv", classes=classes),
        "dataframe": import_run(store, from_dataframe(df, classes=classes), "fixture", "df"),
        "logits": import_run(store, from_arrays(paths, classes=classes, logits=np.log(base.probs)), "fixture", "lg"),
    }
    for fmt, s in got.items():
        out = _outputs(store, s.run_id)
        assert list(out.pred) == list(base.pred), fmt
        assert (out.agree == base.agree).all(), fmt
        assert out.embeddings is None or out.embeddings.tobytes() == base.embeddings.tobytes(), fmt
    assert _outputs(store, got["npz"].run_id).probs.tobytes() == base.probs.tobytes()
    assert _outputs(store, got["csv"].run_id).embeddings is None and got["csv"].missing


def test_bad_input_is_refused_before_anything_is_written(fixture_run, tmp_path):
    store, fx = fixture_run
    base = _outputs(store, fx.run_id)
    before = _counts(store)
    paths = np.asarray(base.paths, dtype=object)
    wrong = paths.copy()
    wrong[[3, 8, 20]] = ["yes/nobody_nohash_0.wav", "elsewhere/a.wav", "zzz/b.wav"]
    with pytest.raises(EarmarkError) as e:
        import_run(store, from_arrays(wrong, classes=fx.labels, probs=base.probs), "fixture", "bad-paths")
    assert "3 of 60 paths are not in the data set" in e.value.title
    assert "yes/nobody_nohash_0.wav" in e.value.detail and "elsewhere/a.wav" in e.value.detail
    other = [f"w{i}" for i in range(len(fx.labels))]
    with pytest.raises(EarmarkError) as e:
        import_run(store, from_arrays(paths, classes=other, probs=base.probs), "fixture", "bad-classes")
    assert "do not match" in e.value.title and "yes" in e.value.detail
    with pytest.raises(EarmarkError) as e:  # probabilities that are not (suggests --logits)
        import_run(store, from_arrays(paths, classes=fx.labels, probs=base.probs * 3), "fixture", "x")
    assert "--logits" in e.value.hint
    with pytest.raises(EarmarkError):
        import_run(store, tmp_path / "run.parquet", "fixture", "missing-file")
    with pytest.raises(EarmarkError) as e:
        import_run(store, from_arrays(paths, classes=fx.labels, probs=base.probs), "no-such-set", "x")
    assert "no data set" in e.value.title
    assert _counts(store) == before


def test_partial_coverage_is_imported_recorded_and_shown(fixture_run):
    store, fx = fixture_run
    base = _outputs(store, fx.run_id)
    keep = np.arange(60) % 4 != 0
    rf = from_arrays(np.asarray(base.paths, dtype=object)[keep], classes=fx.labels, pred=base.pred[keep],
                     confidence=base.confidence[keep], model="kws-tiny", model_version="3.1")
    s = import_run(store, rf, "fixture", "partial")
    assert (s.n_rows, s.n_clips, s.uncovered) == (45, 60, 15)
    assert "45 of 60 clips (75.0%)" in s.coverage_text and base.paths[0] in s.coverage_text
    assert s.missing[:3] == ["probabilities", "loss", "label issues"] and "cloud" in s.missing
    out = _outputs(store, s.run_id)
    assert out.probs is None and out.loss is None and out.embeddings is None
    client = TestClient(create_app(store.settings))
    html = client.get("/").text
    assert "coverage 45 of 60 clips (75.0%)" in html and "15 without a prediction" in html
    assert "this run was imported without probabilities" in html and "kws-tiny" in html and "3.1" in html
    assert client.get(f"/clips?run={s.run_id}").status_code == 200
    assert client.get(f"/confusion?run={s.run_id}").status_code == 200


def test_twelve_class_model_on_word_data_maps_other_words_to_unknown(sqlite_store, tmp_path):
    store = sqlite_store
    with store.session() as s:
        ds, ids = make_dataset(s, tmp_path / "a", n_clips=24, labels=["yes", "no", "bed", "cat"], write_audio=False,
                               name="words")
        s.commit()
    with store.session() as s:
        from app.store.clips import load_clips
        clips = load_clips(s, ds.id)
    classes = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"]
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(12), size=24).astype(np.float32)
    rf = from_arrays(np.asarray(clips.paths, dtype=object), classes=classes, probs=probs)
    before = _counts(store)
    with pytest.raises(EarmarkError) as e:
        import_run(store, rf, "words", "no-map")
    assert "v1-12" in e.value.hint and _counts(store) == before
    s = import_run(store, rf, "words", "mapped", task="v1-12")
    out = _outputs(store, s.run_id)
    by_label = dict(zip(clips.labels, out.target.tolist(), strict=True))
    assert by_label == {"yes": "yes", "no": "no", "bed": "_unknown_", "cat": "_unknown_"}
    assert s.class_map == "v1-12"


def test_imported_runs_go_through_analyze_and_compare(fixture_run):
    store, fx = fixture_run
    base = _outputs(store, fx.run_id)
    paths = np.asarray(base.paths, dtype=object)
    # Another model: a different embedding, some predictions changed.
    rng = np.random.default_rng(1)
    probs = base.probs.copy()
    probs[::5] = np.roll(probs[::5], 2, axis=1)
    full = import_run(store, from_arrays(paths, classes=fx.labels, probs=probs,
                                         embeddings=base.embeddings + rng.normal(0, .1, base.embeddings.shape)
                                         .astype(np.float32)), "fixture", "theirs", oof=True)
    summary = analyze_run(store, full.run_id)
    assert summary.n_clips == 60 and summary.skipped == {}
    assert "training clips (out-of-fold)" in summary.label_scope  # --oof: training clips judged by their probs
    with store.session() as s:
        cmp = compare_runs(s, get_run(s, fx.run_id), get_run(s, full.run_id))
    changed = int((probs.argmax(1) != base.probs.argmax(1)).sum())
    fixed_broke = sum(v["agreement"]["fixed"] + v["agreement"]["broke"] for v in cmp["splits"].values())
    assert changed > 0 and 0 < fixed_broke <= changed
    # A reduced run (pred + confidence, no embeddings): analyze skips what needs them and says so.
    reduced = import_run(store, from_arrays(paths, classes=fx.labels, pred=base.pred, confidence=base.confidence),
                         "fixture", "reduced")
    r = analyze_run(store, reduced.run_id)
    assert set(r.skipped) == {"label_issues", "clusters", "duplicates", "outliers"} and r.n_label_issues == 0
    with store.session() as s:
        assert "without probabilities" in get_run(s, reduced.run_id).config["analysis_skipped"]["label_issues"]
        cmp = compare_runs(s, get_run(s, fx.run_id), get_run(s, reduced.run_id))
    assert cmp["splits"]["validation"]["delta"]["accuracy"] == pytest.approx(0.0)
    with pytest.raises(Conflict) as e:
        project_run(store, reduced.run_id)
    assert "imported without embeddings" in e.value.detail


KILLED_IMPORT = """
import os, sys, time
from pathlib import Path
from app.config import Settings
from app.pipeline.import_run import import_run
from app.store.db import open_store
marker = Path(sys.argv[3])
def progress(step, done, total):
    if step == "writing" and done > 0:  # rows inserted, transaction still open
        marker.write_text(str(done))
        time.sleep(120)
store = open_store(Settings(data_dir=Path(sys.argv[4]), database_url=sys.argv[1]))
import_run(store, sys.argv[2], "fixture", "killed", progress=progress)
"""


def test_a_killed_import_leaves_no_run(fixture_run, tmp_path):
    store, fx = fixture_run
    path, _ = export_run(store, fx.run_id, tmp_path / "run.parquet")
    before = _counts(store)
    marker = tmp_path / "writing"
    url = store.engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_IMPORT, url, str(path), str(marker), str(tmp_path / "d")],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"the import never reached its write (exit {proc.poll()})"
    assert int(marker.read_text()) == 60
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert _counts(store) == before
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Run).where(Run.name == "killed")) == 0
    # The store is still usable: the same import now completes.
    s2 = import_run(store, path, "fixture", "after-kill")
    assert _counts(store)[1] == before[1] + 60 and json.dumps(s2.metrics)


def test_open_with_predictions_imports_instead_of_training(sqlite_store, shared_sample, tmp_path):
    import shutil

    from app.pipeline.open_data import OpenOptions, open_path
    from app.run_files import write_parquet

    store, root = sqlite_store, tmp_path / "sample"
    shutil.copytree(shared_sample, root)
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.wav"))
    words = sorted({p.split("/")[0] for p in paths})
    pred = np.array([p.split("/")[0] for p in paths], dtype=object)
    pred[::7] = words[0]
    rf = from_arrays(np.asarray(paths, dtype=object), classes=words, pred=pred,
                     confidence=np.full(len(paths), 0.9, np.float32), model="their-kws")
    file = write_parquet(tmp_path / "their-kws.parquet", rf)
    first = open_path(store, OpenOptions(path=root, name="sample", predictions=file))
    assert first.steps == {"ingest": "done", "import": "done", "project": "skipped (imported without embeddings)",
                           "analyze": "done"}
    again = open_path(store, OpenOptions(path=root, name="sample", predictions=file))
    assert again.run_id == first.run_id and again.steps["import"] == "reused" and again.steps["analyze"] == "reused"
    with store.session() as s:
        run = get_run(s, first.run_id)
        assert run.name == "their-kws" and run.model == "their-kws" and run.epochs_done == 0
        assert s.scalar(select(func.count()).select_from(Run)) == 1  # nothing was trained
        assert set(run.config["analysis_skipped"]) == {"label_issues", "clusters", "duplicates", "outliers"}


def test_cli_import_and_export_run(fixture_run, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app as cli

    store, fx = fixture_run
    monkeypatch.setenv("EARMARK_DATABASE_URL", store.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("EARMARK_DATA_DIR", str(store.settings.data_dir))
    runner = CliRunner()
    out = tmp_path / "run.parquet"
    r = runner.invoke(cli, ["export-run", str(fx.run_id), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 60 rows" in r.output and out.is_file()
    base = _outputs(store, fx.run_id)
    np.savez(tmp_path / "logits.npz", paths=np.asarray(base.paths, dtype=str), logits=np.log(base.probs))
    (tmp_path / "classes.txt").write_text("\n".join(fx.labels) + "\n")
    r = runner.invoke(cli, ["import-run", str(tmp_path / "logits.npz"), "--dataset", "fixture", "--name", "cli",
                            "--classes-file", str(tmp_path / "classes.txt"), "--logits", "--model", "kws"])
    assert r.exit_code == 0, r.output
    assert "imported run" in r.output and "60 of 60 clips (100.0%)" in r.output and "reduced run" in r.output
    before = _counts(store)
    np.savez(tmp_path / "raw.npz", paths=np.asarray(base.paths, dtype=str), probs=np.log(base.probs) + 3)
    r = runner.invoke(cli, ["import-run", str(tmp_path / "raw.npz"), "--dataset", "fixture", "--name", "x",
                            "--classes-file", str(tmp_path / "classes.txt")])  # raw outputs called probs
    assert r.exit_code == 1 and "--logits" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, ["import-run", str(out), "--dataset", "fixture", "--name", "x", "--classes", "a,b"])
    assert r.exit_code == 1 and "error:" in r.output
    assert _counts(store) == before
