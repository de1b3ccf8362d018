"""The Issues page and its API through TestClient: ranked findings, links to the filtered clip list
and the cloud, the flag action (all or selected clips, CSRF required), 404/422, escaping."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.pipeline.analyze import analyze_run
from app.store.models import Clip, Embedding, Finding, FindingClip, Flag, Prediction, Run
from app.web.main import create_app
from tests.factories import make_run
from tests.test_analyze_pipeline import N, _plant

CSRF = {"X-Earmark-CSRF": "1"}


@pytest.fixture
def analyzed(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "data", n_clips=N, write_audio=False, disagree_every=11)
        truth = _plant(s, fx)
        analyze_run(store, fx.run_id)
        findings = s.scalars(select(Finding).where(Finding.run_id == fx.run_id).order_by(Finding.rank)).all()
    return TestClient(create_app(store.settings)), fx, truth, findings


def test_issues_page_lists_findings_ranked_with_links(analyzed):
    client, fx, _, findings = analyzed
    r = client.get(f"/issues?run={fx.run_id}")
    assert r.status_code == 200
    html = r.text
    positions = [html.index(f'id="finding-{f.id}"') for f in findings]
    assert positions == sorted(positions) and len(findings) >= 4
    for f in findings:
        assert f"/clips?run={fx.run_id}&amp;finding={f.id}" in html
        assert f"/cloud?run={fx.run_id}&amp;finding={f.id}" in html
        assert f'data-finding="{f.id}"' in html
    cut = next(f for f in findings if f.kind == "cutoff")
    assert "Flag all as cutoff" in html and cut.title in html
    assert 'href="/issues' in html  # in the nav


def test_issue_links_open_the_filtered_list_and_the_cloud(analyzed):
    client, fx, truth, findings = analyzed
    cut = next(f for f in findings if f.kind == "cutoff")
    r = client.get(f"/clips?run={fx.run_id}&finding={cut.id}")
    assert r.status_code == 200
    for cid in truth["cut"]:
        assert f"/clips/{cid}" in r.text
    assert client.get(f"/cloud?run={fx.run_id}&finding={cut.id}").status_code == 200


def test_issues_api_lists_and_shows_findings(analyzed):
    client, fx, truth, findings = analyzed
    body = client.get(f"/api/findings?run={fx.run_id}").json()
    assert body["run_id"] == fx.run_id and body["analyzed"] is True
    assert [f["id"] for f in body["findings"]] == [f.id for f in findings]
    assert [f["rank"] for f in body["findings"]] == list(range(1, len(findings) + 1))
    label = next(f for f in findings if f.kind == "label")
    one = client.get(f"/api/findings/{label.id}").json()
    assert one["kind"] == "label" and one["reason"] == "mislabeled" and one["n_clips"] == len(one["clips"])
    mis = next(c for c in one["clips"] if c["clip_id"] == truth["mis"])
    assert mis["suggested_label"] == "yes" and mis["label"] == "no"
    assert client.get("/api/findings/999999").status_code == 404
    assert client.get("/api/findings/0").status_code == 422
    assert client.get("/api/findings/abc").status_code == 422
    assert client.get("/api/findings?run=nope").status_code == 404


def test_flag_action_needs_csrf_and_flags_all_or_selected(analyzed, store):
    client, fx, truth, findings = analyzed
    cut = next(f for f in findings if f.kind == "cutoff")
    assert client.post(f"/api/findings/{cut.id}/flag", json={}).status_code == 403
    r = client.post(f"/api/findings/{cut.id}/flag", headers=CSRF)  # no body: all clips, author auto
    assert r.status_code == 200, r.text
    assert r.json()["flagged"] == cut.n_clips and r.json()["reason"] == "cutoff"
    label = next(f for f in findings if f.kind == "label")
    r = client.post(f"/api/findings/{label.id}/flag", headers=CSRF,
                    json={"clip_ids": [truth["mis"]], "author": "ana"})
    assert r.status_code == 200 and r.json()["flagged"] == 1
    with store.sessions() as s:
        flags = {f.clip_id: f for f in s.scalars(select(Flag))}
        members = set(s.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == cut.id)))
    assert set(truth["cut"]) <= set(flags)
    assert all(flags[c].reason == "cutoff" and flags[c].author == "auto" and flags[c].finding_id == cut.id
               for c in members - {truth["mis"]})
    mis = flags[truth["mis"]]
    assert (mis.reason, mis.corrected_label, mis.author, mis.finding_id) == ("mislabeled", "yes", "ana", label.id)
    bad = client.post(f"/api/findings/{label.id}/flag", headers=CSRF, json={"clip_ids": [truth["cut"][0]]})
    assert bad.status_code == 422 and "not in finding" in bad.json()["title"]
    assert client.post("/api/findings/999999/flag", headers=CSRF).status_code == 404
    assert client.post(f"/api/findings/{cut.id}/flag", headers=CSRF, json={"clip_ids": "x"}).status_code == 422
    page = client.get(f"/issues?run={fx.run_id}").text
    assert re.search(rf'{cut.n_clips} flagged from this issue', page)


def test_issues_page_escapes_data_and_says_what_to_run(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20, write_audio=False)
        client = TestClient(create_app(store.settings))
        r = client.get(f"/issues?run={fx.run_id}")
        assert r.status_code == 200 and f"earmark analyze --run {fx.run_id}" in r.text
        assert client.get(f"/api/findings?run={fx.run_id}").json()["findings"] == []
        s.add(Finding(run_id=fx.run_id, kind="cluster", rank=1, score=3.0, title="<script>alert(1)</script>",
                      description="a <b>bold</b> claim", reason=None, suggested_label=None, n_clips=0, stats={}))
        s.commit()
    html = client.get(f"/issues?run={fx.run_id}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html
    assert "Top error cluster" in html


def test_issues_page_without_runs_explains(sqlite_store):
    r = TestClient(create_app(sqlite_store.settings)).get("/issues")
    assert r.status_code == 200 and "earmark train" in r.text


def _demo_shaped_run(s, root):
    """A run shaped like the demo's: 40 cut words (late start, loud end) across labels that the model
    embeds alike and gets wrong 40% of the time, and 10 noise-only clips it always gets wrong."""
    fx = make_run(s, root, n_clips=400, write_audio=False, disagree_every=97, seed=5)
    run = s.get(Run, fx.run_id)
    classes, k = run.classes, len(run.classes)
    rng = np.random.default_rng(9)
    ids = fx.clip_ids
    dim = len(s.scalar(select(Embedding.vector).where(Embedding.run_id == run.id))) // 4
    groups = {"cut": ids[1:400:10], "noise": ids[5:400:40]}  # 40 and 10 clips, every label and split
    edges = {"cut": dict(lead_silence_ms=900.0, trail_silence_ms=0.0, end_energy_db=-2.0, cutoff_signal=True),
             "noise": dict(lead_silence_ms=0.0, trail_silence_ms=0.0, end_energy_db=-1.0, cutoff_signal=False)}
    for name, members in groups.items():
        centre = rng.normal(0, 1, dim).astype(np.float32) * 3
        s.execute(update(Clip).where(Clip.id.in_(members)).values(**edges[name]))
        for j, cid in enumerate(members):
            target = s.scalar(select(Prediction.target).where(Prediction.run_id == run.id, Prediction.clip_id == cid))
            wrong = j % 5 < 2 if name == "cut" else True
            pred = classes[(classes.index(target) + 1 + j) % k] if wrong else target
            p = np.full(k, 0.4 / (k - 1), np.float32)
            p[classes.index(pred)] = 0.6
            s.execute(update(Prediction).where(Prediction.run_id == run.id, Prediction.clip_id == cid)
                      .values(pred=pred, agree=not wrong, confidence=0.6, probs=p.tobytes()))
            vec = (centre + rng.normal(0, 0.3, dim)).astype(np.float32)
            s.execute(update(Embedding).where(Embedding.run_id == run.id, Embedding.clip_id == cid)
                      .values(vector=vec.tobytes()))
    s.commit()
    return fx, groups


def test_issues_page_headline_names_the_cut_off_cluster_of_a_demo_shaped_run(store, tmp_path):
    with store.sessions() as s:
        fx, groups = _demo_shaped_run(s, tmp_path / "d")
        analyze_run(store, fx.run_id)
        clusters = s.scalars(select(Finding).where(Finding.run_id == fx.run_id, Finding.kind == "cluster")
                             .order_by(Finding.rank)).all()
        members = [set(s.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == f.id)))
                   for f in clusters]
    assert len(clusters) == 2, [f.title for f in clusters]
    top, second = clusters
    assert members[0] == set(groups["cut"]) and top.reason == "cutoff"
    assert "40 clips, 40% disagree, likely cut off" in top.title
    assert members[1] == set(groups["noise"]) and second.reason == "noise_only"
    html = TestClient(create_app(store.settings)).get(f"/issues?run={fx.run_id}").text
    head = re.search(r'<p class="headline" id="top-cluster">(.*?)</p>', html, re.S)
    assert head and "likely cut off" in head[1] and "40 clips" in head[1]
    assert f"/cloud?run={fx.run_id}&amp;finding={top.id}" in head[1]
