"""Comparing two runs: the computations (checked against a brute-force count), the page, the API, the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.errors import EarmarkError
from app.pipeline import compare as cmp
from app.store.models import Clip, Dataset, Prediction, Run
from app.web.main import create_app
from tests.factories import _metrics, make_run

CUT = "_cutoff_"


def _two_runs(s, root, n_clips=60, relabel_every=6):
    """Run a (baseline) and run b on the same data set; b adds _cutoff_ and relabels some clips to it."""
    fa = make_run(s, root, n_clips=n_clips, name="baseline", seed=1, disagree_every=4)
    ds = s.get(Dataset, fa.dataset_id)
    fb = make_run(s, root, n_clips=n_clips, name="<b>retrained</b>", seed=2, disagree_every=9,
                  dataset=(ds, fa.clip_ids), write_audio=False)
    rb = s.get(Run, fb.run_id)
    rb.classes = list(rb.classes) + [CUT]
    rb.parent_run_id = fa.run_id
    rb.flags_used = [{"clip_id": 0}] * 3
    rb.config = {"cutoff_policy": "class"}
    preds = s.scalars(select(Prediction).where(Prediction.run_id == rb.id).order_by(Prediction.clip_id)).all()
    for j, p in enumerate(preds):
        if j % relabel_every == 0:
            p.target = CUT
            if j % (2 * relabel_every) == 0:
                p.pred = CUT
            p.agree = p.pred == p.target
    s.flush()
    # Recompute b's metrics from its (changed) predictions, in its class order.
    k = len(rb.classes)
    per_split: dict[str, np.ndarray] = {}
    rows = s.execute(select(Clip.split, Prediction.target, Prediction.pred).join(Clip, Clip.id == Prediction.clip_id)
                     .where(Prediction.run_id == rb.id)).all()
    for split, t, p in rows:
        cm = per_split.setdefault(split, np.zeros((k, k), dtype=int))
        cm[rb.classes.index(t), rb.classes.index(p)] += 1
    rb.metrics = {split: _metrics(cm, rb.classes) for split, cm in per_split.items()}
    s.commit()
    return fa, fb


def _brute(s, a_id, b_id, split):
    pa = {p.clip_id: p for p in s.scalars(select(Prediction).where(Prediction.run_id == a_id))}
    pb = {p.clip_id: p for p in s.scalars(select(Prediction).where(Prediction.run_id == b_id))}
    splits = dict(s.execute(select(Clip.id, Clip.split)).all())
    same = [c for c in pa if c in pb and splits[c] == split and pa[c].target == pb[c].target]
    rel = [c for c in pa if c in pb and splits[c] == split and pa[c].target != pb[c].target]
    ok = lambda p: p.pred == p.target  # noqa: E731
    fixed = sorted(c for c in same if not ok(pa[c]) and ok(pb[c]))  # relabeled clips are neither
    broke = sorted(c for c in same if ok(pa[c]) and not ok(pb[c]))
    return dict(same=(len(same), sum(ok(pa[c]) for c in same), sum(ok(pb[c]) for c in same)),
                rel=(len(rel), sum(ok(pa[c]) for c in rel), sum(ok(pb[c]) for c in rel)), fixed=fixed, broke=broke)


def test_compare_counts_match_brute_force(store, tmp_path):
    with store.sessions() as s:
        fa, fb = _two_runs(s, tmp_path / "d")
        a, b = cmp.pick_runs(s)
        assert (a.id, b.id) == (fa.run_id, fb.run_id)  # newest run and its parent
        res = cmp.compare_runs(s, a, b)
        assert res["classes"] == sorted(fa.labels) + [CUT]
        for split in ("train", "validation", "test"):
            want = _brute(s, a.id, b.id, split)
            ag = res["splits"][split]["agreement"]
            st, rl = ag["same_target"], ag["relabeled"]
            assert (st["n"], st["a_correct"], st["b_correct"]) == want["same"]
            assert (rl["n"], rl["a_correct"], rl["b_correct"]) == want["rel"]
            assert rl["n"] > 0 and st["n"] > 0
            assert (ag["fixed"], ag["broke"]) == (len(want["fixed"]), len(want["broke"]))
            # the same-target matrices hold exactly the same-target clips, and their diagonals the correct ones
            sp = res["splits"][split]
            sa, sb = np.array(sp["same_target_confusion_a"]), np.array(sp["same_target_confusion_b"])
            assert sa.sum() == sb.sum() == st["n"] and (np.trace(sa), np.trace(sb)) == want["same"][1:]
            assert (np.array(sp["same_target_confusion_diff"]) == sb - sa).all()
            assert ag["only_a"] == ag["only_b"] == 0
            fixed, total = cmp.changed_clips(s, a, b, "fixed", split, limit=1000)
            assert sorted(c["clip_id"] for c in fixed) == want["fixed"] and total == len(want["fixed"])
            broke, _ = cmp.changed_clips(s, a, b, "broke", split, limit=1000)
            assert sorted(c["clip_id"] for c in broke) == want["broke"]
            assert all(c["relabeled"] == (c["a_target"] != c["b_target"]) for c in fixed + broke)


def test_compare_aligns_classes_and_confusion_difference(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fa, fb = _two_runs(s, tmp_path / "d")
        a, b = s.get(Run, fa.run_id), s.get(Run, fb.run_id)
        res = cmp.compare_runs(s, a, b)
        sp = res["splits"]["test"]
        cut_row = [r for r in sp["per_class"] if r["class"] == CUT][0]
        assert cut_row["a"] is None and cut_row["b"]["support"] > 0 and cut_row["delta"]["f1"] is None
        yes = [r for r in sp["per_class"] if r["class"] == "yes"][0]
        assert yes["delta"]["recall"] == pytest.approx(yes["b"]["recall"] - yes["a"]["recall"])
        n = len(res["classes"])
        cma, cmb = np.array(sp["confusion_a"]), np.array(sp["confusion_b"])
        assert cma.shape == cmb.shape == (n, n)
        assert cma[-1].sum() == 0 and cma[:, -1].sum() == 0  # a never had _cutoff_
        assert (np.array(sp["confusion_diff"]) == cmb - cma).all()
        assert cma.sum() == cmb.sum() == sum(1 for c in s.scalars(select(Clip.split)) if c == "test")
        assert sp["delta"]["accuracy"] == pytest.approx(sp["b"]["accuracy"] - sp["a"]["accuracy"])


def test_compare_pick_runs_defaults_and_errors(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        with pytest.raises(EarmarkError, match="no complete runs"):
            cmp.pick_runs(s)
        fa, fb = _two_runs(s, tmp_path / "d")
        s.get(Run, fb.run_id).parent_run_id = None
        s.commit()
        a, b = cmp.pick_runs(s)
        assert (a.id, b.id) == (fa.run_id, fb.run_id)  # no parent: the previous complete run
        with pytest.raises(EarmarkError, match="no earlier complete run"):
            cmp.pick_runs(s, None, fa.run_id)
        assert [r.id for r in cmp.pick_runs(s, fa.run_id)] == [fa.run_id, fb.run_id]  # only a given
        assert [r.id for r in cmp.pick_runs(s, fb.run_id)] == [fb.run_id, fa.run_id]
        with pytest.raises(EarmarkError, match="with itself"):
            cmp.pick_runs(s, fa.run_id, fa.run_id)
        ds2 = Dataset(name="second", root=str(tmp_path), layout="folders", status="ready")
        s.add(ds2)
        s.flush()
        s.add(Run(dataset_id=ds2.id, name="elsewhere", model="melcnn", status="complete", classes=["yes"]))
        s.add(Run(dataset_id=fa.dataset_id, name="busy", model="melcnn", status="training", classes=["yes"]))
        s.commit()
        with pytest.raises(EarmarkError, match="only complete run"):
            cmp.pick_runs(s, "elsewhere")
        with pytest.raises(EarmarkError, match="different data sets"):
            cmp.pick_runs(s, fa.run_id, "elsewhere")
        with pytest.raises(EarmarkError, match="not complete"):
            cmp.pick_runs(s, fa.run_id, "busy")
        with pytest.raises(EarmarkError, match="no run"):
            cmp.pick_runs(s, fa.run_id, "nope")


def test_compare_page_shows_everything(store, tmp_path):
    with store.sessions() as s:
        fa, fb = _two_runs(s, tmp_path / "d")
        want = _brute(s, fa.run_id, fb.run_id, "test")
    client = TestClient(create_app(store.settings))
    r = client.get("/compare")
    assert r.status_code == 200
    html = r.text
    assert "<b>retrained</b>" not in html and "&lt;b&gt;retrained&lt;/b&gt;" in html
    assert "Judge the model by the same-target clips" in html
    assert f'<tr data-class="{CUT}"' in html and "b was retrained from a" in html
    fig = json.loads(re.search(r'id="cm-diff-data">(.*?)</script>', html, re.S).group(1))
    assert fig["data"][0]["type"] == "heatmap" and fig["data"][0]["x"][-1] == CUT
    assert "/static/vendor/plotly.min.js" in html and "/static/compare.js" in html
    shown = [int(x) for x in re.findall(r'<tr data-clip="(\d+)"', html)]
    assert set(shown) <= set(want["fixed"])
    assert len(shown) == min(50, len(want["fixed"]))
    html = client.get("/compare", params={"a": fa.run_id, "b": fb.run_id, "kind": "broke", "split": "test"}).text
    shown = {int(x) for x in re.findall(r'<tr data-clip="(\d+)"', html)}
    assert shown == set(want["broke"]) and all(f'data-play="{c}"' in html for c in shown)
    missing = client.get("/compare", params={"a": fa.run_id, "b": 999})  # the message, and the pickers
    assert missing.status_code == 200 and 'id="compare-problem"' in missing.text and "999" in missing.text
    assert client.get("/api/compare", params={"a": fa.run_id, "b": 999}).status_code == 404
    assert client.get("/compare", params={"kind": "lost"}).status_code == 422
    swapped = client.get("/compare", params={"a": fb.run_id, "b": fa.run_id})
    assert swapped.status_code == 200


def test_compare_page_pagination(sqlite_store, tmp_path, monkeypatch):
    with sqlite_store.sessions() as s:
        fa, fb = _two_runs(s, tmp_path / "d", n_clips=90)
        total = len(_brute(s, fa.run_id, fb.run_id, "train")["fixed"])
    monkeypatch.setattr("app.web.routes.compare.PAGE_SIZE", 2)  # 5 same-target fixes: three pages
    client = TestClient(create_app(sqlite_store.settings))
    seen = []
    for page in range(1, 100):
        html = client.get("/compare", params={"split": "train", "page": page}).text
        rows = [int(x) for x in re.findall(r'<tr data-clip="(\d+)"', html)]
        if not rows:
            break
        seen += rows
    assert len(seen) == len(set(seen)) == total and total > 2


def test_compare_page_without_two_runs(sqlite_store, tmp_path):
    client = TestClient(create_app(sqlite_store.settings))
    r = client.get("/compare")
    assert r.status_code == 200 and "no complete runs" in r.text
    with sqlite_store.sessions() as s:
        make_run(s, tmp_path / "d", n_clips=10, write_audio=False)
    r = client.get("/compare")
    assert r.status_code == 200 and "no earlier complete run" in r.text


def test_compare_api_matches_pipeline(store, tmp_path):
    with store.sessions() as s:
        fa, fb = _two_runs(s, tmp_path / "d")
        expected = cmp.compare_runs(s, s.get(Run, fa.run_id), s.get(Run, fb.run_id))
        want = _brute(s, fa.run_id, fb.run_id, "validation")
    client = TestClient(create_app(store.settings))
    body = client.get("/api/compare", params={"a": fa.run_id, "b": fb.run_id}).json()
    assert json.loads(json.dumps(expected)) == body
    ch = client.get("/api/compare/changes", params={"a": fa.run_id, "b": fb.run_id, "kind": "fixed",
                                                    "split": "validation", "limit": 1000}).json()
    assert ch["total"] == len(want["fixed"]) and sorted(c["clip_id"] for c in ch["clips"]) == want["fixed"]
    r = client.get("/api/compare", params={"a": "nope"})
    assert r.status_code == 404 and "known runs" in r.json()["detail"]
    assert client.get("/api/compare/changes", params={"kind": "x"}).status_code == 422


def test_compare_cli_prints_summary(sqlite_store, tmp_path, monkeypatch):
    with sqlite_store.sessions() as s:
        fa, fb = _two_runs(s, tmp_path / "d")
        res = cmp.compare_runs(s, s.get(Run, fa.run_id), s.get(Run, fb.run_id))
    monkeypatch.setenv("EARMARK_DATABASE_URL", sqlite_store.url)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(sqlite_store.settings.data_dir))
    out = CliRunner().invoke(cli, ["compare", str(fa.run_id), str(fb.run_id)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    st = res["splits"]["test"]["agreement"]["same_target"]
    assert f"{100 * st['a_accuracy']:.1f}%" in out.output and "same target" in out.output
    assert CUT in out.output and "fixed (wrong in a, right in b)" in out.output
    bad = CliRunner().invoke(cli, ["compare", str(fa.run_id), "nope"])
    assert bad.exit_code == 1 and "no run 'nope'" in bad.output
