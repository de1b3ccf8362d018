"""Issue 16 item 5: hostile ids, Unicode digits, NUL bytes, lone surrogates, deep JSON and overflowing
times are refused with a clear problem (4xx on the web, an error on the CLI), and change nothing.

Each case here failed with a 500 or a traceback before ``app/limits.py``; ``tests/test_fuzz_routes.py``
sweeps every route with the same values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app as cli
from app.errors import EarmarkError
from app.limits import MAX_ID, MAX_JSON_DEPTH, check_text, json_depth, parse_id
from app.pipeline.flag_files import ImportRejected
from app.pipeline.flags import import_flags
from app.pipeline.import_run import import_run
from app.pipeline.ingest import ingest
from app.pipeline.train import create_run
from app.run_files import from_arrays
from app.store.datasets import resolve_dataset
from app.store.flags import upsert_flag
from app.store.models import Clip, Flag, Run
from app.store.predictions import read_outputs
from app.store.runs import get_run, resolve_run
from app.web.main import create_app
from ml.config import TrainConfig
from tests.factories import make_run
from tests.test_ingest_manifest import ROWS as MANIFEST_ROWS
from tests.test_ingest_manifest import _set as _manifest_set

HOSTILE_REFS = ["²", "١٢", str(2**31), str(2**63), str(10**100), "0", "a\x00b", "\ud800", "n\udcff"]
CSRF = {"X-Earmark-CSRF": "1", "Content-Type": "application/json"}


def test_parse_id_takes_ascii_digits_in_range_only():
    assert parse_id("12") == 12 and parse_id(" 7 ") == 7 and parse_id(MAX_ID) == MAX_ID
    assert parse_id("²") is None and parse_id("١٢") is None and parse_id("run-3") is None  # names, not ids
    for bad in (str(MAX_ID + 1), str(2**63), str(10**100), "0", 0, -1):
        with pytest.raises(EarmarkError) as e:
            parse_id(bad, "run")
        assert e.value.status == 404 and "2,147,483,647" in e.value.detail


def test_check_text_and_json_depth():
    assert check_text("Ærø 東京 🎧", "note") == "Ærø 東京 🎧"
    for bad, word in (("a\x00b", "NUL"), ("\ud800", "surrogate"), ("x" * 11, "longer")):
        with pytest.raises(EarmarkError, match=word):
            check_text(bad, "note", 10)
    assert json_depth(b'{"a": [[1], {"b": "[[[[{{{{"}]}') == 3  # brackets inside strings do not count
    assert json_depth(r'["\"[[[[", "\\", [[]]]') == 3  # escaped quotes and backslashes
    assert json_depth("[" * 100_000 + "]" * 100_000) == 100_000


def test_resolvers_refuse_hostile_refs_and_find_names_of_unicode_digits(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=20, write_audio=False, name="²")
        for ref in HOSTILE_REFS:
            for resolve in (resolve_run, resolve_dataset):
                if ref == "²" and resolve is resolve_run:
                    continue
                with pytest.raises(EarmarkError) as e:
                    resolve(s, ref)
                assert 400 <= e.value.status < 500, (resolve.__name__, ref)
                s.rollback()
        assert resolve_run(s, "²").id == fx.run_id  # '²' is a name: a strict ASCII check reads it as one
        assert resolve_run(s, str(fx.run_id)).id == fx.run_id


def _counts(store) -> tuple:
    with store.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Run)),
                tuple(s.execute(select(Flag.clip_id, Flag.note, Flag.updated_at).order_by(Flag.clip_id)).all()))


@pytest.mark.parametrize("case", ["class", "model", "version", "name-nul", "name-surrogate"])
def test_import_run_refuses_nul_and_surrogates(store, tmp_path, case):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=20, write_audio=False)
        base = read_outputs(s, get_run(s, fx.run_id))
    classes, kw, name = list(fx.labels), {}, "ok"
    if case == "class":
        classes[0] += "\x00"
    elif case == "model":
        kw["model"] = "m\x00"
    elif case == "version":
        kw["model_version"] = "v\x00"
    else:
        name = "n\x00" if case == "name-nul" else "n\udcff"  # a non-UTF-8 byte from argv
    before = _counts(store)
    with pytest.raises(EarmarkError) as e:
        import_run(store, from_arrays(np.asarray(base.paths, dtype=object), classes=classes, probs=base.probs, **kw),
                   fx.dataset_id, name)
    assert e.value.status == 422 and ("NUL" in e.value.title or "surrogate" in e.value.title)
    assert _counts(store) == before


def test_train_refuses_a_run_name_with_nul(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=20, write_audio=False)
        with pytest.raises(EarmarkError, match="NUL"):
            create_run(s, store.settings, fx.dataset_id, TrainConfig(), name="run\x00")
        s.rollback()
    assert _counts(store)[0] == 1


def test_flag_import_refuses_nul_surrogates_and_overflowing_times_by_line(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=20, write_audio=False)
        path = s.get(Clip, fx.clip_ids[0]).path
        upsert_flag(s, fx.clip_ids[0], "other", note="kept")
        s.commit()
    good = dict(path=path, reason="cutoff")
    cases = [
        ({"path": path + "\x00", "reason": "cutoff"}, "NUL"),
        ({**good, "author": "a\x00"}, "NUL"),
        ({**good, "note": "\ud800"}, "surrogate"),
        ({**good, "time": "9999-12-31T23:59:59-14:00"}, "bad time"),
    ]
    before = _counts(store)
    for record, word in cases:
        data = json.dumps({"flags": [good, record]}, indent=1)  # escaped: "\ud800", "\u0000"
        with store.sessions() as s, pytest.raises(ImportRejected) as e:
            import_flags(s, data, "json")
        [(line, msg)] = e.value.problems
        assert word in msg and line > 2, (record, e.value.problems)  # the second entry's line, not the file's
    with store.sessions() as s, pytest.raises(ImportRejected) as e:
        import_flags(s, "[" * 100_000 + "]" * 100_000, "json")
    assert "nested" in e.value.problems[0][1]
    assert _counts(store) == before


@pytest.mark.parametrize("where", ["label", "meta", "speaker"])
def test_ingest_refuses_nul_and_surrogates_in_manifest_text_with_the_line(store, tmp_path, where):
    rows = [r for r in MANIFEST_ROWS if r[3] != 4000 and r[2] < 30]
    header, extra = "path,label,split,mic,native", (lambda i: f",usb{i},true")
    if where == "label":
        rows = [(p, lab + ("\x00" if i == 1 else ""), sec, rate) for i, (p, lab, sec, rate) in enumerate(rows)]
    elif where == "meta":
        extra = lambda i: f",mic{chr(0) if i == 1 else ''},true"  # noqa: E731
    else:
        header, extra = "path,label,split,speaker,native", (lambda i: f",sp{'XX' if i == 1 else ''},true")  # noqa: E731
    manifest = _manifest_set(tmp_path / "set", rows, header=header, extra=extra)
    if where == "speaker":  # a byte that is not UTF-8
        manifest.write_bytes(manifest.read_bytes().replace(b"spXX", b"sp\xff"))
    with pytest.raises(EarmarkError) as e:
        ingest(store, manifest)
    assert e.value.status == 422 and "line 3" in e.value.title + e.value.detail, (e.value.title, e.value.detail)
    with store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Clip)) == 0


def test_web_refuses_deep_json_bodies_and_big_ids(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=20, write_audio=False)
    client = TestClient(create_app(store.settings), raise_server_exceptions=False)
    before = _counts(store)
    deep = b"[" * 100_000 + b"]" * 100_000
    for url in (f"/api/clips/{fx.clip_ids[0]}/flag", "/api/flags/bulk", "/api/findings/1/flag"):
        r = client.post(url, content=deep, headers=CSRF)
        assert r.status_code == 400 and "nested too deeply" in r.json()["title"], (url, r.text[:200])
    r = client.post("/api/flags/bulk", content=b"[" + b"1," * (9 * 2**20) + b"1]", headers=CSRF)
    assert r.status_code == 413
    for big in (2**31, 2**63):
        for url in (f"/api/clips/{big}", f"/api/datasets/{big}", f"/api/runs/{big}", f"/api/findings/{big}",
                    f"/api/clips?finding={big}", f"/api/clips?ids=1,{big}", f"/api/flags?offset={big}",
                    f"/api/clips?run={big}", f"/flags?dataset={big}"):
            assert client.get(url).status_code in (404, 422), url
        r = client.post("/api/flags/bulk", json={"clip_ids": [fx.clip_ids[0], big], "reason": "other"},
                        headers=CSRF)
        assert r.status_code == 422, r.text[:200]
    assert client.get("/api/clips?run=%C2%B2").status_code == 404
    assert client.get("/flags?dataset=a%00b").status_code == 422
    assert _counts(store) == before


def test_cli_refuses_out_of_range_ids_and_unicode_digits(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        make_run(s, tmp_path / "a", n_clips=20, write_audio=False)
    env = {"EARMARK_DATABASE_URL": sqlite_store.url, "EARMARK_DATA_DIR": str(sqlite_store.settings.data_dir),
           "COLUMNS": "200"}
    runner = CliRunner()
    for args, code, words in ((["flags", "--limit", str(2**63)], 2, "2147483647"),
                              (["flag-finding", str(2**31)], 2, "2147483647"),
                              (["export-run", "²", "--out", str(tmp_path / "x.parquet")], 1, "no run '²'"),
                              (["export-run", str(2**63), "--out", str(tmp_path / "x.parquet")], 1, "no run"),
                              (["flags", "--dataset", "١٢"], 1, "no data set")):
        r = runner.invoke(cli, args, env=env)
        assert r.exit_code == code and r.exception is None or isinstance(r.exception, SystemExit), (args, r.output)
        assert words in r.output and "Traceback" not in r.output, (args, r.output)
    assert MAX_JSON_DEPTH >= 32  # flat documents (every body earmark takes) are far below it
