"""The JSON API on SQLite and PostgreSQL: reads, the cloud's binary points, and the flag API."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.store.models import Clip, Flag, Projection
from app.web.main import create_app
from tests.factories import make_run

CSRF = {"X-Earmark-CSRF": "1"}


@pytest.fixture
def api(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=60)
    return TestClient(create_app(store.settings)), fx, store


def test_api_datasets_and_runs(api):
    client, fx, _ = api
    sets = client.get("/api/datasets").json()
    assert [d["id"] for d in sets] == [fx.dataset_id]
    assert sum(sum(v.values()) for v in sets[0]["distribution"].values()) == 60
    runs = client.get("/api/runs").json()
    assert runs[0]["id"] == fx.run_id and set(runs[0]["metrics"]) == {"train", "validation", "test"}
    one = client.get("/api/runs/fixture-run").json()
    assert one["id"] == fx.run_id and one["full_metrics"]["test"]["confusion"]
    assert client.get(f"/api/datasets/{fx.dataset_id}").json()["rejects"] == []
    assert client.get("/api/runs/999").status_code == 404
    assert client.get("/api/datasets/999").json()["status"] == 404


def test_api_confusion_matches_metrics(api):
    client, fx, _ = api
    cm = client.get(f"/api/confusion?run={fx.run_id}&split=test").json()
    run = client.get(f"/api/runs/{fx.run_id}").json()
    assert cm["counts"] == run["full_metrics"]["test"]["confusion"]
    assert cm["accuracy"] == pytest.approx(run["full_metrics"]["test"]["accuracy"])
    assert all(abs(sum(r) - 1) < 1e-3 for r, t in zip(cm["rates"], cm["row_totals"], strict=True) if t)
    assert client.get("/api/confusion?split=dev").status_code == 422


def test_api_clip_list_filters_sorts_and_ids(api):
    client, fx, _ = api
    page = client.get(f"/api/clips?run={fx.run_id}&per_page=10").json()
    assert page["total"] == 60 and page["pages"] == 6 and len(page["items"]) == 10
    losses = [c["loss"] for c in page["items"]]
    assert losses == sorted(losses, reverse=True)
    dis = client.get(f"/api/clips?run={fx.run_id}&agreement=disagree&per_page=200").json()
    assert dis["total"] == len(fx.disagree_ids) and {c["id"] for c in dis["items"]} == set(fx.disagree_ids)
    some = client.get(f"/api/clips?run={fx.run_id}&ids={fx.clip_ids[3]},{fx.clip_ids[1]}").json()
    assert [c["id"] for c in some["items"]] == [fx.clip_ids[3], fx.clip_ids[1]]
    bad = client.get("/api/clips?loss_min=-1")
    assert bad.status_code == 422 and "loss_min" in bad.json()["detail"]
    assert client.get("/api/clips?ids=1,x").status_code == 422
    assert client.get("/api/clips?per_page=5000").status_code == 422


def test_api_clip_detail(api):
    client, fx, _ = api
    c = client.get(f"/api/clips/{fx.clip_ids[4]}?run={fx.run_id}").json()
    assert len(c["top5"]) == 5 and abs(sum(t["prob"] for t in c["top5"])) <= 1.0001
    assert c["top5"][0]["cls"] == c["pred"]
    assert len(c["neighbors"]) == 10 and all(n["id"] != c["id"] for n in c["neighbors"])
    sims = [n["similarity"] for n in c["neighbors"]]
    assert sims == sorted(sims, reverse=True)
    assert all(s["speaker"] == c["speaker"] for s in c["speaker_clips"]) and c["speaker_clips"]
    assert client.get(f"/api/clips/99999?run={fx.run_id}").status_code == 404


def test_api_cloud_binary_decodes_to_the_projection(api):
    client, fx, st = api
    meta = client.get(f"/api/cloud?run={fx.run_id}").json()
    body = client.get(f"/api/cloud.bin?run={fx.run_id}").content
    n = meta["n"]
    assert n == 60 and len(body) == 16 * n == meta["bytes"]
    cols = {c["name"]: np.frombuffer(body, dtype="<" + c["dtype"], count=n, offset=c["offset"])
            for c in meta["columns"]}
    with st.sessions() as s:
        proj = {p.clip_id: (p.x, p.y) for p in s.query(Projection).filter(Projection.run_id == fx.run_id)}
    x0, x1 = meta["x_range"]
    for cid, qx in zip(cols["clip_id"], cols["x"], strict=True):
        assert abs(x0 + qx / 65535 * (x1 - x0) - proj[int(cid)][0]) < (x1 - x0) / 30000
    dis = {int(c) for c, a in zip(cols["clip_id"], cols["agree"], strict=True) if not a}
    assert dis == set(fx.disagree_ids)
    assert not cols["flag"].any()


def test_flag_api_sets_clears_and_bulk_flags(api):
    client, fx, st = api
    cid = fx.clip_ids[2]
    r = client.post(f"/api/clips/{cid}/flag", json={"reason": "mislabeled", "corrected_label": "go",
                                                    "note": "says 'no'", "author": "ana"}, headers=CSRF)
    assert r.status_code == 200
    assert r.json() | {"created_at": None, "updated_at": None} == dict(
        clip_id=cid, reason="mislabeled", corrected_label="go", note="says 'no'", author="ana", finding_id=None,
        created_at=None, updated_at=None)
    r = client.post(f"/api/clips/{cid}/flag", json={"reason": "cutoff"}, headers=CSRF)
    assert r.json()["reason"] == "cutoff" and r.json()["author"] == "anonymous"
    bulk = client.post("/api/flags/bulk", json={"clip_ids": fx.clip_ids[:10], "reason": "noise_only"}, headers=CSRF)
    assert bulk.json() == {"flagged": 9, "kept": 1, "replaced": 0, "skipped": 0, "kept_ids": [cid],
                           "reason": "noise_only", "corrected_label": None, "dry_run": False}  # a person's flag stays
    with st.sessions() as s:
        assert s.query(Flag).filter(Flag.clip_id == cid).one().reason == "cutoff"
    bulk = client.post("/api/flags/bulk", json={"clip_ids": fx.clip_ids[:10], "reason": "noise_only",
                                                "overwrite_people": True}, headers=CSRF)
    assert bulk.json()["flagged"] == 10 and bulk.json()["replaced"] == 10  # all ten by people by now
    with st.sessions() as s:
        assert s.query(Flag).count() == 10
        assert s.query(Flag).filter(Flag.clip_id == cid).one().reason == "noise_only"
    body = client.get(f"/api/cloud.bin?run={fx.run_id}").content
    meta = client.get(f"/api/cloud?run={fx.run_id}").json()
    flags = np.frombuffer(body, dtype="u1", count=60, offset=meta["columns"][-1]["offset"])
    assert int((flags == 1 + meta["flag_reasons"].index("noise_only")).sum()) == 10
    assert client.post(f"/api/clips/{cid}/flag/clear", headers=CSRF).json() == {"clip_id": cid, "cleared": True}
    assert client.post(f"/api/clips/{cid}/flag/clear", headers=CSRF).json()["cleared"] is False
    assert client.get(f"/api/clips?run={fx.run_id}&flag=any").json()["total"] == 9


def test_flag_api_rejects_bad_input_and_changes_nothing(api):
    client, fx, st = api
    cid = fx.clip_ids[0]
    cases = [
        ({"reason": "mislabeled"}, 422, "needs the correct label"),
        ({"reason": "mislabeled", "corrected_label": "banana"}, 422, "unknown label"),
        ({"reason": "typo"}, 422, "reason"),
        ({"reason": "other", "note": "x" * 3000}, 422, "note"),
    ]
    for body, status, words in cases:
        r = client.post(f"/api/clips/{cid}/flag", json=body, headers=CSRF)
        assert r.status_code == status and words in (r.json()["title"] + r.json()["detail"]), body
    assert client.post("/api/clips/99999/flag", json={"reason": "other"}, headers=CSRF).status_code == 404
    r = client.post("/api/flags/bulk", json={"clip_ids": [cid, 99999], "reason": "other"}, headers=CSRF)
    assert r.status_code == 404
    assert client.post("/api/flags/bulk", json={"clip_ids": [], "reason": "other"}, headers=CSRF).status_code == 422
    assert client.post(f"/api/clips/{cid}/flag", json={"reason": "other"}).status_code == 403
    with st.sessions() as s:
        assert s.query(Flag).count() == 0


def test_flags_survive_a_restart(api):
    client, fx, st = api
    client.post(f"/api/clips/{fx.clip_ids[1]}/flag", json={"reason": "cutoff", "note": "cut"}, headers=CSRF)
    again = TestClient(create_app(st.settings))
    c = again.get(f"/api/clips/{fx.clip_ids[1]}?run={fx.run_id}").json()
    assert c["flag"]["reason"] == "cutoff" and c["flag"]["note"] == "cut"


def test_run_frame_picks_up_new_predictions(api):
    client, fx, st = api
    assert client.get(f"/api/clips?run={fx.run_id}").json()["total"] == 60
    with st.sessions() as s:
        make_run(s, fx.root, name="second", dataset=_dataset(s, fx.dataset_id), write_audio=False)
    r = client.get("/api/clips").json()  # default run is now the newest complete one
    assert r["run_id"] != fx.run_id and r["total"] == 60


def _dataset(session, dataset_id):
    from app.store.models import Dataset

    ds = session.get(Dataset, dataset_id)
    ids = [c for (c,) in session.query(Clip.id).filter(Clip.dataset_id == dataset_id).order_by(Clip.id)]
    return ds, ids


def test_scores_written_while_serving_are_picked_up(store, tmp_path):
    from app.store.models import ClipScore, Finding
    from app.store.writes import bulk_insert

    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=30, write_audio=False, with_scores=False)
    web = create_app(store.settings)
    web.state.run_cache.recheck_s = 0.0  # check the store on every request
    client = TestClient(web)
    first = client.get(f"/api/clips?run={fx.run_id}&sort=cutoff&per_page=200").json()
    assert {c["cutoff_source"] for c in first["items"]} == {"signal"} and not first["has_scores"]
    with store.sessions() as s:
        bulk_insert(s, ClipScore, [dict(run_id=fx.run_id, clip_id=cid, cutoff_score=i / 30, label_issue=False)
                                   for i, cid in enumerate(fx.clip_ids)])
        s.add(Finding(run_id=fx.run_id, kind="cutoff", rank=1, score=1.0, title="t", description="d", n_clips=0))
        s.commit()
    after = client.get(f"/api/clips?run={fx.run_id}&sort=cutoff&per_page=200").json()
    assert after["has_scores"] and after["items"][0]["id"] == fx.clip_ids[-1]
    assert after["items"][0]["cutoff_source"] == "analysis"


def test_a_run_without_predictions_still_renders(store, tmp_path):
    from app.store.models import Run

    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=12, write_audio=False)
        s.add(Run(dataset_id=fx.dataset_id, name="in-training", model="melcnn", status="training",
                  classes=fx.labels))
        s.commit()
        new_id = s.query(Run.id).filter(Run.name == "in-training").scalar()
    client = TestClient(create_app(store.settings))
    for url in [f"/clips?run={new_id}", f"/confusion?run={new_id}", f"/cloud?run={new_id}", "/"]:
        r = client.get(url)
        assert r.status_code == 200, url
    assert "is <strong>training</strong>" in client.get(f"/clips?run={new_id}").text
    assert client.get(f"/api/clips?run={new_id}").json()["total"] == 0
    assert client.get(f"/api/cloud?run={new_id}").json()["n"] == 0
    assert client.get(f"/api/cloud.bin?run={new_id}").content == b""
    # with no run named, pages show the newest *complete* run
    assert client.get("/api/clips").json()["run_id"] == fx.run_id
