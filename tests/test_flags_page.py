"""The flags page, its JSON API, export downloads and the import endpoint (TestClient, both databases)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.pipeline.flags import export_flags
from app.store.flags import upsert_flag
from app.store.models import Clip, Finding, Flag
from app.web.main import create_app
from tests.factories import make_run

CSRF = {"X-Earmark-CSRF": "1"}
EVIL = "<script>alert('x')</script>"


@pytest.fixture
def flagged(store, tmp_path):
    """A run with four flags: a hostile note, a mislabeled one, a detector one, and a plain cut-off."""
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=30)
        clips = s.scalars(select(Clip).where(Clip.dataset_id == fx.dataset_id).order_by(Clip.id)).all()
        finding = Finding(run_id=fx.run_id, kind="cutoff", rank=1, score=0.8, title="cut", description="d",
                          reason="cutoff", n_clips=1)
        s.add(finding)
        s.flush()
        upsert_flag(s, clips[0].id, "cutoff", note=EVIL, author=EVIL)
        upsert_flag(s, clips[1].id, "mislabeled", corrected_label="go", note="says go", author="ana")
        upsert_flag(s, clips[2].id, "cutoff", author="auto", finding_id=finding.id)
        upsert_flag(s, clips[3].id, "noise_only", author="ben")
        s.commit()
        ids = [c.id for c in clips]
        fid = finding.id
    client = TestClient(create_app(store.settings))
    return client, ids, fid, fx


def test_flags_page_lists_escapes_and_links(flagged):
    client, ids, fid, fx = flagged
    r = client.get("/flags")
    assert r.status_code == 200
    html = r.text
    assert EVIL not in html and "&lt;script&gt;alert(" in html
    for cid in ids[:4]:
        assert f'data-clip="{cid}"' in html and f'data-play="{cid}"' in html
    assert f"#finding-{fid}" in html and f"issue #{fid}" in html
    assert 'href="/flags/export.csv"' in html and 'all <span data-count="total">4</span>' in html \
        and 'cutoff <span data-count="cutoff">2</span>' in html
    assert 'href="/flags"' in html  # nav entry


def test_flags_page_filters_by_reason_and_dataset(flagged):
    client, ids, _, _ = flagged
    html = client.get("/flags", params={"reason": "mislabeled"}).text
    assert f'data-clip="{ids[1]}"' in html and f'data-clip="{ids[0]}"' not in html
    assert 'href="/flags/export.csv?reason=mislabeled"' in html
    html = client.get("/flags", params={"reason": "other"}).text
    assert "No other flags" in html
    assert client.get("/flags", params={"dataset": "fixture"}).status_code == 200
    assert client.get("/flags", params={"dataset": "missing"}).status_code == 404
    assert client.get("/flags", params={"reason": "bogus"}).status_code == 422
    assert client.get("/flags", params={"page": 0}).status_code == 422


def test_flags_api_json(flagged):
    client, ids, fid, fx = flagged
    body = client.get("/api/flags").json()
    assert body["total"] == 4 and body["counts"]["cutoff"] == 2
    auto = [f for f in body["flags"] if f["author"] == "auto"][0]
    assert auto["finding_id"] == fid and auto["finding_run_id"] == fx.run_id
    body = client.get("/api/flags", params={"reason": "cutoff", "limit": 1}).json()
    assert body["total"] == 2 and len(body["flags"]) == 1
    assert client.get("/api/flags", params={"limit": 0}).status_code == 422
    r = client.get("/api/flags", params={"dataset": "nope"})
    assert r.status_code == 404 and "known data sets" in r.json()["detail"]


def test_flags_edit_and_clear_show_in_queue(flagged):
    client, ids, _, _ = flagged
    r = client.post(f"/api/clips/{ids[3]}/flag", json={"reason": "mislabeled", "corrected_label": "up",
                                                        "note": "edited", "author": "cy"}, headers=CSRF)
    assert r.status_code == 200
    row = [f for f in client.get("/api/flags").json()["flags"] if f["clip_id"] == ids[3]][0]
    assert (row["reason"], row["corrected_label"], row["note"], row["author"]) == ("mislabeled", "up", "edited", "cy")
    assert client.post(f"/api/clips/{ids[3]}/flag/clear", headers=CSRF).json()["cleared"] is True
    assert ids[3] not in [f["clip_id"] for f in client.get("/api/flags").json()["flags"]]


def test_flags_export_downloads_match_pipeline(flagged, store):
    client, ids, _, _ = flagged
    r = client.get("/flags/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    with store.sessions() as s:
        assert r.content.decode() == export_flags(s, "csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode(), newline="")))
    assert len(rows) == 4 and {row["reason"] for row in rows} == {"cutoff", "mislabeled", "noise_only"}
    j = client.get("/flags/export.json", params={"reason": "mislabeled"})
    assert j.status_code == 200 and [f["corrected_label"] for f in json.loads(j.content)["flags"]] == ["go"]


def test_flags_import_endpoint_roundtrip_and_rejection(flagged, store):
    client, ids, _, _ = flagged
    exported = client.get("/flags/export.csv").content
    for cid in ids[:4]:
        client.post(f"/api/clips/{cid}/flag/clear", headers=CSRF)
    assert client.get("/api/flags").json()["total"] == 0
    r = client.post("/flags/import", files={"file": ("flags.csv", exported, "text/csv")}, headers=CSRF)
    assert r.status_code == 200 and r.json()["created"] == 4
    assert client.get("/flags/export.csv").content == exported
    bad = exported.decode().replace(",noise_only,", ",loud,").encode()
    r = client.post("/flags/import", files={"file": ("flags.csv", bad, "text/csv")}, headers=CSRF)
    assert r.status_code == 422
    body = r.json()
    assert "nothing was changed" in body["title"] and "bad reason 'loud'" in body["problems"][0]["message"]
    assert body["problems"][0]["line"] >= 2
    assert client.get("/flags/export.csv").content == exported
    # Without the CSRF header the upload is refused before it is read.
    r = client.post("/flags/import", files={"file": ("flags.csv", exported, "text/csv")})
    assert r.status_code == 403
    with store.sessions() as s:
        assert s.query(Flag).count() == 4


def test_flags_page_empty_store(sqlite_store):
    client = TestClient(create_app(sqlite_store.settings))
    r = client.get("/flags")
    assert r.status_code == 200 and "No flags yet" in r.text
    assert client.get("/flags/export.csv").text == \
        "dataset,path,label,reason,corrected_label,note,author,time\r\n"
