"""The clip list's text and speaker search, and its CSV export (every row of the filter, streamed,
formula-escaped), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from app.store.flags import upsert_flag
from app.store.models import Clip
from app.web.main import create_app
from tests.factories import make_run


@pytest.fixture
def site(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=90, write_audio=False)
        evil = s.get(Clip, fx.clip_ids[4])
        evil.path = "=HYPERLINK(\"http://x\")/100%_sure.wav"
        upsert_flag(s, fx.clip_ids[7], "noise_only", note="+SUM(A1)", author="ana")
        s.commit()
    return TestClient(create_app(store.settings)), fx


def _csv(client, query: str) -> list[dict]:
    r = client.get("/clips.csv" + query)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(r.text)))


def test_clip_csv_has_every_row_of_the_filter_in_list_order(site):
    client, fx = site
    q = f"?run={fx.run_id}&split=train&sort=id"
    api = client.get(f"/api/clips{q}&per_page=10").json()
    rows = _csv(client, q + "&page=2&per_page=10")  # the page does not limit the export
    assert api["pages"] > 1 and len(rows) == api["total"] == 30
    listed = []
    for page in range(1, api["pages"] + 1):
        listed += [c["id"] for c in client.get(f"/api/clips{q}&per_page=10&page={page}").json()["items"]]
    assert [int(r["clip_id"]) for r in rows] == listed
    assert {r["split"] for r in rows} == {"train"}
    every = _csv(client, f"?run={fx.run_id}")
    assert len(every) == 90 and [int(r["clip_id"]) for r in every] == [
        c["id"] for p in (1, 2) for c in client.get(f"/api/clips?run={fx.run_id}&per_page=50&page={p}").json()["items"]]


def test_clip_csv_escapes_formulas(site):
    client, fx = site
    rows = {int(r["clip_id"]): r for r in _csv(client, f"?run={fx.run_id}")}
    assert rows[fx.clip_ids[4]]["path"] == "'=HYPERLINK(\"http://x\")/100%_sure.wav"
    flagged = rows[fx.clip_ids[7]]
    assert (flagged["flag"], flagged["flag_note"], flagged["flag_author"]) == ("noise_only", "'+SUM(A1)", "ana")
    assert all(r["flag"] == "" for cid, r in rows.items() if cid != fx.clip_ids[7])


def test_text_search_over_path_and_label_any_case(site):
    client, fx = site
    total = lambda q: client.get(f"/api/clips?run={fx.run_id}&per_page=200&q={q}").json()["total"]  # noqa: E731
    assert total("LEFT") == 9  # the label "left" (and its folder in the path)
    assert total("_NOHASH_1") == 0 and total("nohash_0") == 89  # the evil path has no "nohash"
    assert total("100%25_sure") == 1  # % and _ match themselves
    assert total("100%25") == 1 and total("0%25") == 1 and total("%25") == 1
    assert total("00000001_") == 10  # a speaker id inside the path
    assert total("%20") == 90  # blank search: no condition
    assert client.get(f"/api/clips?run={fx.run_id}&q=a%00b").status_code == 422
    assert len(_csv(client, f"?run={fx.run_id}&q=left")) == 9


def test_speaker_search_and_an_empty_speaker_box(site):
    client, fx = site
    r = client.get(f"/api/clips?run={fx.run_id}&per_page=200&speaker=00000002").json()
    assert r["total"] == 10 and all(c["speaker"] == "00000002" for c in r["items"])
    assert client.get(f"/api/clips?run={fx.run_id}&speaker=").json()["total"] == 90
    html = client.get(f"/clips?run={fx.run_id}&speaker=00000002&q=up").text
    assert 'name="speaker" maxlength="200" value="00000002"' in html and 'name="q" maxlength="200" value="up"' in html
    assert f'href="/clips.csv?run={fx.run_id}&amp;q=up&amp;speaker=00000002"' in html
