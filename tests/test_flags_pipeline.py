"""The flags pipeline: the queue, export/import round trips, whole-file rejection, relabel-to-dir."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import soundfile as sf
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.errors import EarmarkError
from app.pipeline import flags as fl
from app.pipeline.flag_files import EXPORT_COLUMNS
from app.pipeline.relabel import CUTOFF_CLASS, corrected_labels, relabel_to_dir
from app.store.flags import upsert_flag
from app.store.models import Clip, Dataset, Finding, Flag
from tests.conftest import tone, write_wav
from tests.factories import make_run

HOSTILE = '=HYPERLINK("http://evil","x") <script>alert(1)</script>, "quoted"\nsecond line'


def _clips(s, ds_id):
    return {c.path: c for c in s.scalars(select(Clip).where(Clip.dataset_id == ds_id))}


def _seed(s, fx):
    """Five flags with distinct reasons, one hostile note, one detector flag, fixed times."""
    clips = s.scalars(select(Clip).where(Clip.dataset_id == fx.dataset_id).order_by(Clip.id)).all()
    run_finding = Finding(run_id=fx.run_id, kind="cutoff", rank=1, score=0.9, title="t", description="d",
                          reason="cutoff", n_clips=1)
    s.add(run_finding)
    s.flush()
    upsert_flag(s, clips[0].id, "cutoff", note=HOSTILE, author="ana")
    upsert_flag(s, clips[1].id, "mislabeled", corrected_label="no", note="-1 says 'no'", author="ben")
    upsert_flag(s, clips[2].id, "noise_only", author="auto", finding_id=run_finding.id)
    upsert_flag(s, clips[3].id, "multiple_words", note="@both", author="ana")
    upsert_flag(s, clips[4].id, "other", note="'already quoted", author="ünï")
    s.commit()
    base = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    for i, c in enumerate(clips[:5]):
        f = s.scalars(select(Flag).where(Flag.clip_id == c.id)).one()
        f.updated_at = base + timedelta(minutes=i)
    s.commit()
    return clips, run_finding.id


def test_flags_queue_lists_filters_and_counts(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=30)
        clips, fid = _seed(s, fx)
        q = fl.list_flags(s)
        assert [r["clip_id"] for r in q] == [c.id for c in reversed(clips[:5])]  # newest change first
        assert q[-1]["note"] == HOSTILE and q[-1]["author"] == "ana"
        assert q[-1]["updated_at"] == "2026-11-21T10:00:00.123456Z"
        auto = [r for r in q if r["author"] == "auto"][0]
        assert auto["finding_id"] == fid and auto["finding_run_id"] == fx.run_id
        assert [r["reason"] for r in fl.list_flags(s, reason="mislabeled")] == ["mislabeled"]
        assert fl.list_flags(s, dataset="fixture", reason="mislabeled")[0]["corrected_label"] == "no"
        assert len(fl.list_flags(s, limit=2, offset=1)) == 2
        counts = fl.count_flags(s)
        assert counts["total"] == 5 and counts["cutoff"] == 1 and counts["other"] == 1
        with pytest.raises(EarmarkError, match="unknown flag reason"):
            fl.list_flags(s, reason="bogus")
        with pytest.raises(EarmarkError, match="no data set"):
            fl.list_flags(s, dataset="nope")


def test_flags_export_csv_escapes_formulas(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20)
        _seed(s, fx)
        text = fl.export_flags(s, "csv")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(EXPORT_COLUMNS)
    assert [r[1] for r in rows[1:]] == sorted(r[1] for r in rows[1:])  # sorted by path
    notes = {r[3]: r[5] for r in rows[1:]}
    assert notes["cutoff"] == "'" + HOSTILE  # neutralised, multi-line note kept in one quoted cell
    assert notes["mislabeled"] == "'-1 says 'no'"
    assert notes["multiple_words"] == "'@both"
    assert notes["other"] == "''already quoted"
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)
    assert text.endswith("\r\n") and rows[1][7].endswith("Z")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_flags_import_roundtrip_is_byte_identical(store, tmp_path, fmt):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=30)
        _seed(s, fx)
        exported = fl.export_flags(s, fmt)
        # Change the store: clear everything, then import the export back.
        s.query(Flag).delete()
        s.commit()
        assert fl.export_flags(s, fmt) != exported
        res = fl.import_flags(s, exported.encode(), fmt=None)
        assert (res.rows, res.created, res.updated) == (5, 5, 0)
    with store.sessions() as s:
        assert fl.export_flags(s, fmt) == exported
        # Importing the same file again updates in place: still one flag per clip, same bytes.
        res = fl.import_flags(s, exported)
        assert (res.created, res.updated) == (0, 5)
        assert s.query(Flag).count() == 5
        assert fl.export_flags(s, fmt) == exported


def test_flags_import_accepts_special_classes_the_api_accepts(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=10)
        upsert_flag(s, fx.clip_ids[0], "mislabeled", corrected_label="_unknown_")
        upsert_flag(s, fx.clip_ids[1], "mislabeled", corrected_label="_cutoff_")
        s.commit()
        text = fl.export_flags(s, "csv")
        s.query(Flag).delete()
        s.commit()
        assert fl.import_flags(s, text).created == 2
        assert fl.export_flags(s, "csv") == text


def test_flags_import_keeps_detector_link_when_unchanged(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20)
        clips, fid = _seed(s, fx)
        fl.import_flags(s, fl.export_flags(s, "json"))
        assert s.scalars(select(Flag.finding_id).where(Flag.clip_id == clips[2].id)).one() == fid


def test_flags_import_last_row_wins_and_fills_time(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20)
        clips = _clips(s, fx.dataset_id)
        path = sorted(clips)[0]
        text = ("path,reason,corrected_label,note\r\n"
                f"{path},cutoff,,first\r\n{path},mislabeled,go,second\r\n")
        now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        res = fl.import_flags(s, text, default_author="cli-user", now=now)
        assert res.rows == 2 and res.created == 1
        f = s.scalars(select(Flag)).one()
        assert (f.reason, f.corrected_label, f.note, f.author) == ("mislabeled", "go", "second", "cli-user")
        assert fl.export_records(s)[0]["time"] == "2026-01-02T03:04:05.000000Z"


def test_flags_import_rejects_whole_file_with_line_numbers(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20)
        clips = _clips(s, fx.dataset_id)
        good = sorted(clips)[0]
        upsert_flag(s, clips[good].id, "other", note="before")
        s.commit()
        lbl = clips[good].label
        text = ("dataset,path,label,reason,corrected_label,note,author,time\r\n"
                f"fixture,{sorted(clips)[1]},,cutoff,,ok,me,2026-01-01T00:00:00Z\r\n"  # line 2: fine
                f"fixture,no/missing.wav,,cutoff,,,me,\r\n"  # line 3: unknown path
                f"fixture,{good},{lbl},loud,,,me,\r\n"  # line 4: bad reason
                f'fixture,{good},{lbl},mislabeled,,"multi\r\nline",me,\r\n'  # lines 5-6: no corrected label
                f"fixture,{good},{lbl},mislabeled,nonsense,,me,\r\n"  # line 7: unknown label
                f"fixture,{good},{lbl},cutoff,,,me,yesterday\r\n"  # line 8: bad time
                f"fixture,{good},{lbl},cutoff\r\n"  # line 9: too few fields
                f"elsewhere,{good},{lbl},cutoff,,,me,\r\n"  # line 10: unknown data set
                f"fixture,{good},wrong,cutoff,,,me,2026-01-01T00:00:00\r\n")  # line 11: label, naive time
        with pytest.raises(fl.ImportRejected) as err:
            fl.import_flags(s, text)
        lines = [ln for ln, _ in err.value.problems]
        assert lines == [3, 4, 5, 7, 8, 9, 10, 11, 11]
        assert "unknown clip path 'no/missing.wav'" in err.value.detail
        assert err.value.as_dict()["problems"][0] == {"line": 3, "message": err.value.problems[0][1]}
    with store.sessions() as s:  # nothing changed, not even the good line 2
        rows = s.scalars(select(Flag)).all()
        assert [(f.reason, f.note) for f in rows] == [("other", "before")]


@pytest.mark.parametrize("text, line, msg", [
    ("", 1, "empty"),
    ("path,reason,colour\r\n", 1, "unknown column"),
    ("note\r\n", 1, "missing column"),
    ('{"flags": [\n{"path": "x", "reason": "cutoff"},\n{"path": 3}\n]}', 3, "must be strings"),
    ('{"flags": [\n{"path": "x", "bogus": "1"}\n]}', 2, "unknown field"),
    ('{"flags": [\n{"path": "x",\n', 3, "malformed JSON"),
    (b"path,reason\r\n\xff\xfe,cutoff\r\n", 2, "not UTF-8"),
])
def test_flags_import_rejects_malformed_files(sqlite_store, tmp_path, text, line, msg):
    with sqlite_store.sessions() as s:
        make_run(s, tmp_path / "d", n_clips=10)
        with pytest.raises(fl.ImportRejected) as err:
            fl.import_flags(s, text)
        assert any(ln == line and msg in m for ln, m in err.value.problems), err.value.problems
        assert s.query(Flag).count() == 0


def test_flags_import_dataset_override(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=10)
        path = sorted(_clips(s, fx.dataset_id))[0]
        res = fl.import_flags(s, f"dataset,path,reason\r\nsomewhere-else,{path},cutoff\r\n", dataset="fixture")
        assert res.datasets == ["fixture"] and s.query(Flag).count() == 1


def _noise(root):
    write_wav(root / "_background_noise_" / "white.wav", tone(2.0, 1000.0))
    return ["_background_noise_/white.wav"]


@pytest.mark.parametrize("policy", ["class", "exclude"])
def test_relabel_writes_speech_commands_layout(store, tmp_path, policy):
    root = tmp_path / "src"
    with store.sessions() as s:
        fx = make_run(s, root, n_clips=40)
        ds = s.get(Dataset, fx.dataset_id)
        ds.noise_files = _noise(root)
        clips = s.scalars(select(Clip).where(Clip.dataset_id == fx.dataset_id).order_by(Clip.id)).all()
        yes = [c for c in clips if c.label == "yes"]
        no_names = {os.path.basename(c.path) for c in clips if c.label == "no"}
        clash = [c for c in yes if os.path.basename(c.path) in no_names][0]  # same file name under no/
        cut = [c for c in clips if c.label == "up"][0]
        upsert_flag(s, clash.id, "mislabeled", corrected_label="no")
        upsert_flag(s, cut.id, "cutoff")
        upsert_flag(s, clips[5].id, "other", note="just a note")
        s.commit()
        label_map, used = corrected_labels(s, fx.dataset_id, policy)
        assert label_map == {clash.id: "no", cut.id: CUTOFF_CLASS if policy == "class" else None}
        assert {u["clip_id"] for u in used} == {clash.id, cut.id}
        out = tmp_path / "out"
        summary = relabel_to_dir(s, out, policy=policy)
    assert summary.moved == 1 and summary.renamed == 1 and summary.noise_files == 1
    assert summary.clips == (40 if policy == "class" else 39)
    assert (summary.to_cutoff, summary.excluded) == ((1, 0) if policy == "class" else (0, 1))
    assert summary.linked + summary.copied == summary.clips + 1
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav"))
    assert len(written) == summary.clips + 1
    assert not (out / clash.path).exists()  # moved away from yes/
    moved = [m for m in csv.DictReader(open(out / "relabel_manifest.csv")) if m["source_path"] == clash.path][0]
    assert moved["path"].startswith("no/") and moved["path"] != "no/" + os.path.basename(clash.path)
    assert sf.read(out / moved["path"])[0].shape == (16000,)
    assert (out / moved["path"]).stat().st_ino == (root / clash.path).stat().st_ino  # hard link
    cut_rows = [p for p in written if p.startswith(CUTOFF_CLASS + "/")]
    assert len(cut_rows) == (1 if policy == "class" else 0)
    val = (out / "validation_list.txt").read_text().split()
    test = (out / "testing_list.txt").read_text().split()
    expected_val = sorted(m["path"] for m in csv.DictReader(open(out / "relabel_manifest.csv"))
                          if _split_of(clips, m["source_path"]) == "validation")
    assert val == expected_val and all((out / p).is_file() for p in val + test)
    assert set(val).isdisjoint(test)
    assert not list(tmp_path.glob(".out.partial-*"))


def _split_of(clips, path):
    return next(c.split for c in clips if c.path == path)


def test_relabel_refuses_nonempty_or_inside_source(sqlite_store, tmp_path):
    root = tmp_path / "src"
    with sqlite_store.sessions() as s:
        make_run(s, root, n_clips=10)
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "keep.txt").write_text("mine")
        with pytest.raises(EarmarkError, match="not an empty folder"):
            relabel_to_dir(s, busy)
        assert (busy / "keep.txt").read_text() == "mine"
        with pytest.raises(EarmarkError, match="inside the source"):
            relabel_to_dir(s, root / "copy")
        with pytest.raises(EarmarkError, match="cut-off policy"):
            relabel_to_dir(s, tmp_path / "x", policy="drop")
        (tmp_path / "empty").mkdir()
        assert relabel_to_dir(s, tmp_path / "empty").clips == 10


def test_relabel_missing_source_file_writes_nothing(sqlite_store, tmp_path):
    root = tmp_path / "src"
    with sqlite_store.sessions() as s:
        make_run(s, root, n_clips=10)
        victim = s.scalars(select(Clip.path)).first()
        (root / victim).unlink()
        with pytest.raises(EarmarkError, match="missing"):
            relabel_to_dir(s, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_flags_json_export_is_one_flag_per_line(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20)
        _seed(s, fx)
        text = fl.export_flags(s, "json")
    doc = json.loads(text)
    assert doc["format"] == "earmark-flags" and len(doc["flags"]) == 5
    assert len(text.splitlines()) == 7 and HOSTILE in [f["note"] for f in doc["flags"]]


def test_relabel_copies_across_devices(sqlite_store, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm) to force a cross-device copy")
    root = tmp_path / "src"
    out = shm / f"earmark-relabel-test-{os.getpid()}"
    try:
        with sqlite_store.sessions() as s:
            make_run(s, root, n_clips=10)
            summary = relabel_to_dir(s, out)
        assert (summary.linked, summary.copied) == (0, 10)
        copied = next(out.rglob("*.wav"))
        assert copied.stat().st_ino != (root / copied.relative_to(out)).stat().st_ino
        assert copied.read_bytes() == (root / copied.relative_to(out)).read_bytes()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_relabel_refuses_unsafe_corrected_label(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "src", n_clips=10)
        s.add(Flag(clip_id=fx.clip_ids[0], reason="mislabeled", corrected_label="../../escape"))
        s.commit()
        with pytest.raises(EarmarkError, match="cannot be folder names"):
            relabel_to_dir(s, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def _cli(store, args):
    env = {"EARMARK_DATABASE_URL": store.url, "EARMARK_DATA_DIR": str(store.settings.data_dir),
           "EARMARK_USER": "cli-user", "COLUMNS": "200"}
    return CliRunner().invoke(cli, args, env=env)


def test_flags_cli_export_import_relabel(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "src", n_clips=30)
        _seed(s, fx)
        before = fl.export_flags(s, "csv")
    out = _cli(sqlite_store, ["flags", "--reason", "mislabeled"])
    assert out.exit_code == 0 and "5 flag(s)" in out.output and "says 'no'" in out.output
    path = tmp_path / "flags.csv"
    out = _cli(sqlite_store, ["export-flags", "--out", str(path)])
    assert out.exit_code == 0 and path.read_bytes() == before.encode()
    stdout = _cli(sqlite_store, ["export-flags", "--format", "json"])
    assert json.loads(stdout.stdout)["flags"][0]["dataset"] == "fixture"
    with sqlite_store.sessions() as s:
        s.query(Flag).delete()
        s.commit()
    out = _cli(sqlite_store, ["import-flags", str(path)])
    assert out.exit_code == 0 and "5 new flag(s)" in out.output
    assert _cli(sqlite_store, ["export-flags"]).stdout_bytes == before.encode()
    bad = tmp_path / "bad.csv"
    bad.write_text("path,reason\r\nnope.wav,cutoff\r\n")
    out = _cli(sqlite_store, ["import-flags", str(bad)])
    assert out.exit_code == 1 and "line 2: unknown clip path 'nope.wav'" in out.output
    out = _cli(sqlite_store, ["import-flags", str(tmp_path / "missing.csv")])
    assert out.exit_code == 1 and "cannot read" in out.output
    out = _cli(sqlite_store, ["relabel", "--to", str(tmp_path / "fixed"), "--cutoff-policy", "exclude"])
    assert out.exit_code == 0, out.output
    assert "wrote 27 clips" in out.output and "left out: 3" in out.output
    out = _cli(sqlite_store, ["relabel", "--to", str(tmp_path / "fixed")])
    assert out.exit_code == 1 and "not an empty folder" in out.output
