"""Flags people can trust: bulk actions keep people's flags, ``auto`` is the detectors' name only, and
file imports are held to the API's limits (one ``validate_flag``), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.errors import EarmarkError
from app.flags import AUTO, MAX_NOTE, validate_flag
from app.pipeline import flags as fl
from app.pipeline.flag_files import ImportRejected
from app.store.flags import upsert_flag
from app.store.models import Clip, Finding, FindingClip, Flag
from app.web.main import create_app
from tests.factories import make_run

CSRF = {"X-Earmark-CSRF": "1"}


@pytest.fixture
def world(store, tmp_path):
    """A run of 20 clips, a cut-off finding holding the first 8, a person's flag on clip 0 and a
    detector's flag on clip 1."""
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20, write_audio=False)
        ids = list(s.scalars(select(Clip.id).where(Clip.dataset_id == fx.dataset_id).order_by(Clip.id)))
        f = Finding(run_id=fx.run_id, kind="cutoff", rank=1, score=0.9, title="cut off", description="d",
                    reason="cutoff", n_clips=8)
        s.add(f)
        s.flush()
        s.add_all([FindingClip(finding_id=f.id, clip_id=c, score=1.0) for c in ids[:8]])
        upsert_flag(s, ids[0], "mislabeled", "go", note="I listened: it says go", author="ana")
        upsert_flag(s, ids[1], "other", note="detector", author=AUTO)
        s.commit()
        fid = f.id
    return store, fx, ids, fid


def _flags(store) -> dict[int, tuple]:
    with store.sessions() as s:
        return {f.clip_id: (f.reason, f.corrected_label, f.note, f.author) for f in s.scalars(select(Flag))}


def test_finding_flag_keeps_a_persons_flag_unless_asked(world):
    store, fx, ids, fid = world
    client = TestClient(create_app(store.settings))
    before = _flags(store)
    dry = client.post(f"/api/findings/{fid}/flag", json={"dry_run": True}, headers=CSRF).json()
    assert (dry["flagged"], dry["kept"], dry["kept_ids"], dry["dry_run"]) == (7, 1, [ids[0]], True)
    assert _flags(store) == before  # a dry run changes nothing
    r = client.post(f"/api/findings/{fid}/flag", json={}, headers=CSRF).json()
    assert (r["flagged"], r["kept"], r["replaced"]) == (7, 1, 0)
    after = _flags(store)
    assert after[ids[0]] == before[ids[0]]  # the person's flag, note and all
    assert after[ids[1]][0] == "cutoff"  # a detector's flag is replaced
    r = client.post(f"/api/findings/{fid}/flag", json={"overwrite_people": True, "author": "ben"},
                    headers=CSRF).json()
    assert (r["flagged"], r["kept"], r["replaced"]) == (8, 0, 1)
    assert _flags(store)[ids[0]][::3] == ("cutoff", "ben")


def test_bulk_api_keeps_people_and_refuses_auto(world):
    store, fx, ids, fid = world
    client = TestClient(create_app(store.settings))
    before = _flags(store)
    for url, body in ((f"/api/clips/{ids[5]}/flag", {"reason": "cutoff", "author": "auto"}),
                      ("/api/flags/bulk", {"clip_ids": ids[:4], "reason": "cutoff", "author": " auto "})):
        r = client.post(url, json=body, headers=CSRF)
        assert r.status_code == 422 and "reserved for detectors" in r.json()["title"], r.text
    assert _flags(store) == before
    r = client.post("/api/flags/bulk", json={"clip_ids": ids[:4], "reason": "noise_only", "author": ""},
                    headers=CSRF).json()
    assert (r["flagged"], r["kept"], r["kept_ids"]) == (3, 1, [ids[0]])
    after = _flags(store)
    assert after[ids[0]] == before[ids[0]] and after[ids[2]] == ("noise_only", None, "", "anonymous")


def test_cli_flag_finding_keeps_a_persons_flag(world, monkeypatch):
    store, fx, ids, fid = world
    monkeypatch.setenv("EARMARK_DATABASE_URL", store.url)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(store.settings.data_dir))
    before = _flags(store)
    r = CliRunner().invoke(cli, ["flag-finding", str(fid)])
    assert r.exit_code == 0, r.output
    assert "flagged 7 clips" in r.output and "kept 1 flag(s) people wrote" in r.output
    assert _flags(store)[ids[0]] == before[ids[0]]
    r = CliRunner().invoke(cli, ["flag-finding", "--run", str(fx.run_id), "--top", "cutoff", "--overwrite-people"])
    assert r.exit_code == 0, r.output
    assert _flags(store)[ids[0]][::3] == ("cutoff", AUTO)


@pytest.mark.parametrize("field, value, words", [
    ("note", "x" * (10 * 1024 * 1024), "note is longer than 2,000"),
    ("author", "a" * 101, "author is longer than 100"),
    ("note", "before\x00after", "NUL"),
    ("author", "ana\x00", "NUL"),
    ("corrected_label", "go\x00", "NUL"),
])
def test_import_holds_files_to_the_api_limits(world, field, value, words):
    store, fx, ids, fid = world
    before = _flags(store)
    with store.sessions() as s:
        paths = dict(s.execute(select(Clip.id, Clip.path).where(Clip.id.in_(ids[2:4]))).all())
        good = {"dataset": "fixture", "path": paths[ids[2]], "reason": "cutoff", "note": "fine", "author": "ana"}
        bad = {"dataset": "fixture", "path": paths[ids[3]], "reason": "mislabeled", "corrected_label": "go",
               "note": "", "author": "ana"} | {field: value}
        text = '{"format": "earmark-flags", "version": 1, "flags": [\n' + json.dumps(good) + ",\n" \
               + json.dumps(bad) + "\n]}\n"
        with pytest.raises(ImportRejected) as err:
            fl.import_flags(s, text.encode(), "json")
    assert [ln for ln, _ in err.value.problems] == [3]  # the bad entry's own line
    assert words in err.value.problems[0][1]
    assert _flags(store) == before  # not even the good line was written


def test_validate_flag_is_the_one_check():
    v = validate_flag(" mislabeled ", " go ", "n" * MAX_NOTE, "   ")
    assert (v.reason, v.corrected_label, v.author) == ("mislabeled", "go", "anonymous")
    assert validate_flag("other", author=AUTO).author == AUTO  # detectors and imports of their flags
    for args, kw, words in ((("loud",), {}, "bad reason"), (("mislabeled",), {}, "needs the correct label"),
                            (("other", "banana"), {"labels": ["go"]}, "unknown label"),
                            (("other",), {"author": AUTO, "allow_auto": False}, "reserved"),
                            (("other", None, "n" * (MAX_NOTE + 1)), {}, "note is longer")):
        with pytest.raises(EarmarkError, match=words):
            validate_flag(*args, **kw)
