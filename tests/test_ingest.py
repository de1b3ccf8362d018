"""app.pipeline.ingest and `earmark ingest`, on real WAV files, against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.errors import Conflict, EarmarkError, NotFound
from app.pipeline.ingest import ingest
from app.store.datasets import resolve_dataset
from app.store.models import Clip, Dataset, Reject, Run
from tests.conftest import tone, write_wav
from tests.ingest_helpers import (
    clip,
    make_folder_layout,
    make_test_archive,
    make_training_layout,
    write_wav_fast,
)

REPO = Path(__file__).resolve().parents[1]


def _clips(store, dataset_id: int) -> dict[str, Clip]:
    with store.sessions() as s:
        return {c.path: c for c in s.scalars(select(Clip).where(Clip.dataset_id == dataset_id))}


def _count(store, model) -> int:
    with store.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_ingest_shared_sample_splits_speakers_no_leakage(store, shared_sample):
    rep = ingest(store, shared_sample, name="sample")
    assert rep.splits == {"train": 205, "validation": 44, "test": 51}
    assert rep.n_speakers == 41 and rep.n_clips == 300 and rep.n_rejects == 0
    assert not rep.has_leakage and rep.leakage["counts"] == {
        "files_in_several_splits": 0, "speakers_in_several_splits": 0, "identical_audio_across_splits": 0}
    assert rep.layout == "speech_commands" and rep.split_source == "lists" and len(rep.labels) == 30
    assert rep.list_stats["listed_missing"]["validation"] > 6000
    with store.sessions() as s:
        ds = resolve_dataset(s, "sample")
        assert ds.status == "ready" and ds.n_clips == 300 and ds.root == str(shared_sample.resolve())
        assert ds.leakage["counts"]["speakers_in_several_splits"] == 0
    clips = _clips(store, rep.dataset_id)
    c = clips["yes/" + sorted(p.name for p in (shared_sample / "yes").glob("*.wav"))[0]]
    assert c.label == c.word == "yes" and c.sample_rate == 16000 and c.channels == 1
    assert len(c.content_hash) == 40 and c.speaker and c.utterance is not None
    assert all(0.7 <= x.duration_s <= 1.0 and x.n_samples == round(x.duration_s * 16000) for x in clips.values())
    assert all(-80 < x.rms_dbfs < 0 and 0 < x.peak <= 1 for x in clips.values())


def _add_bad_files(root: Path) -> dict[str, str]:
    bad = {
        "yes/corrupt_nohash_0.wav": "unreadable",
        "yes/empty_nohash_0.wav": "empty",
        "yes/text_nohash_0.wav": "not_audio",
        "no/lowrate_nohash_0.wav": "sample_rate",
        "no/stereo_nohash_0.wav": "channels",
        "up/long_nohash_0.wav": "too_long",
    }
    (root / "yes/corrupt_nohash_0.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x01" * 30)
    (root / "yes/empty_nohash_0.wav").write_bytes(b"")
    (root / "yes/text_nohash_0.wav").write_text("I am a text file\n")
    write_wav(root / "no/lowrate_nohash_0.wav", tone(1.0, sample_rate=8000), sample_rate=8000)
    write_wav(root / "no/stereo_nohash_0.wav", np.stack([tone(0.5), tone(0.5)], axis=1))
    write_wav(root / "up/long_nohash_0.wav", tone(1.5))
    return bad


def test_ingest_rejects_each_bad_file_and_keeps_the_rest(store, tmp_path):
    root = tmp_path / "ds"
    good = make_training_layout(root)
    bad = _add_bad_files(root)
    rep = ingest(store, root, name="with-bad")
    assert rep.n_clips == len(good) and rep.n_rejects == len(bad)
    assert {r: info["count"] for r, info in rep.rejects.items()} == {r: 1 for r in bad.values()}
    for path, reason in bad.items():
        assert [e["path"] for e in rep.rejects[reason]["examples"]] == [path]
    with store.sessions() as s:
        rows = s.execute(select(Reject.path, Reject.reason).where(Reject.dataset_id == rep.dataset_id)).all()
        assert dict(rows) == bad
        assert s.get(Dataset, rep.dataset_id).n_rejects == len(bad)
    assert sorted(_clips(store, rep.dataset_id)) == sorted(good)
    assert rep.n_noise_files == 1
    with store.sessions() as s:
        assert s.get(Dataset, rep.dataset_id).noise_files == ["_background_noise_/white_noise.wav"]


def test_ingest_rejects_a_bad_background_noise_file(sqlite_store, tmp_path):
    root = tmp_path / "ds"
    make_training_layout(root)
    write_wav(root / "_background_noise_" / "long_ok.wav", tone(5.0, amp=0.05))  # long noise is fine
    write_wav(root / "_background_noise_" / "phone.wav", tone(2.0, sample_rate=8000), sample_rate=8000)
    rep = ingest(sqlite_store, root)
    with sqlite_store.sessions() as s:
        assert s.get(Dataset, rep.dataset_id).noise_files == ["_background_noise_/long_ok.wav",
                                                             "_background_noise_/white_noise.wav"]
    assert rep.rejects["sample_rate"]["examples"][0]["path"] == "_background_noise_/phone.wav"


def test_ingest_reingest_is_idempotent_and_keeps_runs(store, tmp_path):
    root = tmp_path / "ds"
    make_training_layout(root)
    first = ingest(store, root, name="idem")
    ids = {p: c.id for p, c in _clips(store, first.dataset_id).items()}
    with store.sessions() as s:
        s.add(Run(dataset_id=first.dataset_id, name="r1", model="melcnn", status="complete"))
        s.commit()
    again = ingest(store, root, name="idem")
    assert again.unchanged and again.dataset_id == first.dataset_id
    assert {p: c.id for p, c in _clips(store, first.dataset_id).items()} == ids
    assert _count(store, Dataset) == 1 and _count(store, Clip) == len(ids) and _count(store, Run) == 1
    assert again.splits == first.splits and again.n_speakers == first.n_speakers

    # a changed folder is merged by path: kept clips keep their ids, new ones appear, removed ones go
    (root / "yes/0a7c2a8d_nohash_0.wav").unlink()
    write_wav(root / "yes/0a7c2a8d_nohash_5.wav", clip(777))
    merged = ingest(store, root, name="idem")
    assert not merged.unchanged and merged.dataset_id == first.dataset_id
    now = {p: c.id for p, c in _clips(store, first.dataset_id).items()}
    assert "yes/0a7c2a8d_nohash_0.wav" not in now and "yes/0a7c2a8d_nohash_5.wav" in now
    assert all(now[p] == i for p, i in ids.items() if p in now)
    assert len(now) == len(ids) and _count(store, Dataset) == 1 and _count(store, Run) == 1


def test_reingest_after_an_upgrade_of_the_measuring_code_measures_every_clip_again(sqlite_store, tmp_path,
                                                                                     monkeypatch):
    # an unchanged folder keeps its stats only while the code that measured them is the same: an
    # earmark whose signal or quality stats changed re-measures every clip, keeping ids, runs and flags
    import app.pipeline.ingest as ingest_mod
    import app.pipeline.ingest_plan as plan_mod

    root = tmp_path / "ds"
    make_training_layout(root)
    first = ingest(sqlite_store, root, name="up")
    ids = {p: c.id for p, c in _clips(sqlite_store, first.dataset_id).items()}
    with sqlite_store.sessions() as s:  # what an older earmark's measurement left behind
        s.execute(Clip.__table__.update().values(end_energy_db=99.0, dc_offset=0.5))
        s.commit()
    assert ingest(sqlite_store, root, name="up").unchanged  # same code: nothing measured again
    assert all(c.end_energy_db == 99.0 for c in _clips(sqlite_store, first.dataset_id).values())

    new_version = lambda: "newer-code"  # noqa: E731 - the measuring modules' source changed
    monkeypatch.setattr(plan_mod, "measurement_version", new_version)
    monkeypatch.setattr(ingest_mod, "measurement_version", new_version)
    again = ingest(sqlite_store, root, name="up")
    assert not again.unchanged and again.dataset_id == first.dataset_id
    clips = _clips(sqlite_store, first.dataset_id)
    assert {p: c.id for p, c in clips.items()} == ids
    assert all(c.end_energy_db <= 0.0 and abs(c.dc_offset) < 0.5 for c in clips.values())
    with sqlite_store.sessions() as s:
        assert s.get(Dataset, first.dataset_id).list_stats["measured_by"] == "newer-code"
    assert ingest(sqlite_store, root, name="up").unchanged


def test_ingest_official_test_archive_keeps_the_word(store, tmp_path):
    make_test_archive(tmp_path / "test_set")
    rep = ingest(store, tmp_path / "test_set")
    assert rep.name == "test_set" and rep.layout == "test_archive" and rep.split_source == "archive"
    assert rep.splits == {"train": 0, "validation": 0, "test": 11}
    clips = _clips(store, rep.dataset_id)
    assert (clips["_unknown_/bed_3d6e1f40_nohash_1.wav"].label, clips["_unknown_/bed_3d6e1f40_nohash_1.wav"].word,
            clips["_unknown_/bed_3d6e1f40_nohash_1.wav"].speaker) == ("_unknown_", "bed", "3d6e1f40")
    assert clips["_silence_/silence_0.wav"].word == "_silence_"
    assert rep.labels == ["_silence_", "_unknown_", "no", "yes"]


def test_ingest_plain_folders_split_by_hash(sqlite_store, tmp_path):
    paths = make_folder_layout(tmp_path / "pets")
    write_wav(tmp_path / "pets" / "cat" / "cut_nohash_0.wav", tone(1.0, amp=0.3, start=0.6))  # runs off the end
    paths.append("cat/cut_nohash_0.wav")
    rep = ingest(sqlite_store, tmp_path / "pets", name="pets")
    assert rep.layout == "folders" and rep.split_source == "hash" and rep.n_clips == len(paths)
    assert rep.n_cutoff_signal == 1 and _clips(sqlite_store, rep.dataset_id)["cat/cut_nohash_0.wav"].cutoff_signal
    assert rep.leakage["counts"]["speakers_in_several_splits"] == 0


def test_ingest_folder_per_split(sqlite_store, tmp_path):
    for i, rel in enumerate(("train/cat/a_nohash_0.wav", "train/dog/b_nohash_0.wav", "valid/cat/c_nohash_0.wav",
                             "test/dog/d_nohash_0.wav")):
        write_wav_fast(tmp_path / "sets" / rel, clip(i))
    rep = ingest(sqlite_store, tmp_path / "sets")
    assert rep.layout == "split_folders" and rep.split_source == "folders" and rep.labels == ["cat", "dog"]
    assert rep.splits == {"train": 2, "validation": 1, "test": 1}


def test_ingest_reports_and_stores_leakage(sqlite_store, tmp_path):
    root = tmp_path / "leaky"
    make_training_layout(root, lists=False, noise=False)
    shutil.copy(root / "yes/0a7c2a8d_nohash_0.wav", root / "up/7fffffff_nohash_0.wav")  # same audio
    (root / "validation_list.txt").write_text("yes/0a7c2a8d_nohash_0.wav\nno/1b4c9b89_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/1b4c9b89_nohash_0.wav\n")
    rep = ingest(sqlite_store, root, name="leaky")
    counts = rep.leakage["counts"]
    assert rep.has_leakage
    assert rep.leakage["files_in_several_splits"] == ["no/1b4c9b89_nohash_0.wav"] and counts["files_in_several_splits"] == 1
    spk = {d["speaker"]: d["splits"] for d in rep.leakage["speakers_in_several_splits"]}
    assert spk["0a7c2a8d"] == ["train", "validation"] and spk["1b4c9b89"] == ["test", "train"]
    same = rep.leakage["identical_audio_across_splits"]
    assert counts["identical_audio_across_splits"] == 1
    assert same[0]["paths"] == ["up/7fffffff_nohash_0.wav", "yes/0a7c2a8d_nohash_0.wav"]
    with sqlite_store.sessions() as s:
        assert s.get(Dataset, rep.dataset_id).leakage["counts"] == counts


def test_ingest_pool_matches_inline(sqlite_store, tmp_path):
    root = tmp_path / "many"
    for i in range(450):
        write_wav_fast(root / ("ab"[i % 2]) / f"{i:08x}_nohash_0.wav", clip(i, seconds=0.1))
    (root / "a/broken_nohash_0.wav").write_text("nope")
    inline = ingest(sqlite_store, root, name="inline", workers=1)
    pooled = ingest(sqlite_store, root, name="pooled", workers=2)
    assert inline.n_clips == pooled.n_clips == 450 and inline.rejects.keys() == pooled.rejects.keys() == {"not_audio"}

    def rows(ds_id):
        return {p: (c.split, c.content_hash, c.rms_dbfs, c.end_energy_db, c.cutoff_signal)
                for p, c in _clips(sqlite_store, ds_id).items()}
    assert rows(inline.dataset_id) == rows(pooled.dataset_id)


def test_ingest_survives_a_decoding_process_that_dies(sqlite_store, tmp_path, caplog):
    import logging
    import multiprocessing

    caplog.set_level(logging.WARNING, logger="app.pipeline.ingest")
    root = tmp_path / "many"
    for i in range(600):
        write_wav_fast(root / ("ab"[i % 2]) / f"{i:08x}_nohash_0.wav", clip(i, seconds=0.05))
    killed = []

    def progress(stage, done, total):
        # Kill one pool worker once results flow: its chunk and the ones in flight are lost with it.
        if stage == "decoding" and done and not killed:
            victims = multiprocessing.active_children()
            assert victims, "the pool should be running"
            os.kill(victims[0].pid, signal.SIGKILL)
            killed.append(victims[0].pid)

    rep = ingest(sqlite_store, root, name="resilient", workers=2, progress=progress)
    assert killed and rep.n_clips == 600 and rep.n_rejects == 0
    assert "a decoding process died" in caplog.text  # the recovery path really ran


def test_ingest_does_not_hold_the_sqlite_write_lock_while_decoding(sqlite_store, tmp_path):
    import sqlite3

    root = tmp_path / "many"
    for i in range(500):
        write_wav_fast(root / ("ab"[i % 2]) / f"{i:08x}_nohash_0.wav", clip(i, seconds=0.05))
    db_path = sqlite_store.url.removeprefix("sqlite:///")
    wrote = []

    def progress(stage, done, total):
        if stage == "decoding" and done and not wrote:  # another writer, mid-ingest, with a 1 s timeout
            con = sqlite3.connect(db_path, timeout=1)
            with con:
                con.execute("INSERT INTO datasets (name, root, layout, status, n_clips, n_rejects, sample_rate, labels, "
                            "split_source, list_stats, leakage, noise_files, created_at, updated_at) VALUES "
                            "('other', '/x', 'folders', 'ready', 0, 0, 16000, '[]', 'hash', '{}', '{}', '[]', "
                            "'2026-01-01', '2026-01-01')")
            con.close()
            wrote.append(stage)

    rep = ingest(sqlite_store, root, name="many", workers=1, progress=progress)
    assert wrote and rep.n_clips == 500 and _count(sqlite_store, Dataset) == 2


def test_ingest_cleans_up_a_stale_ingesting_row(store, tmp_path):
    make_training_layout(tmp_path / "ds")
    with store.sessions() as s:
        s.add(Dataset(name="stale", root="/gone", layout="speech_commands", status="ingesting",
                      list_stats={"ingest_owner": {"host": "elsewhere", "pid": 1}}))
        s.commit()
        with pytest.raises(NotFound):
            resolve_dataset(s, "stale")
    rep = ingest(store, tmp_path / "ds", name="stale")
    with store.sessions() as s:
        assert s.scalars(select(Dataset.status).where(Dataset.name == "stale")).all() == ["ready"]
        assert resolve_dataset(s, "stale").id == rep.dataset_id


def test_ingest_refuses_while_another_live_ingest_holds_the_name(sqlite_store, tmp_path):
    from app.process import process_identity

    make_folder_layout(tmp_path / "ds")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {"host": socket.gethostname(), "pid": sleeper.pid, "start": process_identity(sleeper.pid)}
        with sqlite_store.sessions() as s:
            s.add(Dataset(name="busy", root="/x", layout="folders", status="ingesting",
                          list_stats={"ingest_owner": owner}))
            s.commit()
        with pytest.raises(Conflict) as err:
            ingest(sqlite_store, tmp_path / "ds", name="busy")
        assert "being ingested" in err.value.title
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ingest(sqlite_store, tmp_path / "ds", name="busy").n_clips == 12  # owner gone: row is stale


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
from app.config import Settings
from app.pipeline.ingest import ingest
from app.store.db import open_store
def progress(stage, done, total):
    print(stage, done, total, flush=True)
    if stage == "writing" and done >= 1000:
        time.sleep(60)  # hold the write transaction open half-way, so the kill lands mid-ingest
ingest(open_store(Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2])), sys.argv[3], name="big",
       progress=progress, workers=1)
"""


def test_ingest_killed_leaves_nothing_visible_and_reruns(store, tmp_path):
    root = tmp_path / "big"
    for i in range(2000):
        write_wav_fast(root / ("abcd"[i % 4]) / f"{i:08x}_nohash_0.wav", clip(i, seconds=0.05))
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(store.settings.data_dir), store.url, str(root)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            if line.startswith("writing") and int(line.split()[1]) >= 1000:
                break
            assert time.monotonic() < deadline
        else:
            pytest.fail(f"the ingest ended before it could be killed: {proc.stderr.read()}")
        with store.sessions() as s:  # the reserved row is there, not ready
            assert s.scalars(select(Dataset.status).where(Dataset.name == "big")).all() == ["ingesting"]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with store.sessions() as s:
        with pytest.raises(NotFound):
            resolve_dataset(s, "big")
        with pytest.raises(NotFound):
            resolve_dataset(s, None)
        assert s.scalar(select(func.count()).select_from(Clip)) == 0  # the half-written clips rolled back
    rep = ingest(store, root, name="big")
    assert rep.n_clips == 2000 and not rep.unchanged
    assert _count(store, Dataset) == 1 and _count(store, Clip) == 2000


def test_ingest_same_name_other_folder_conflicts(sqlite_store, tmp_path):
    make_folder_layout(tmp_path / "one")
    make_folder_layout(tmp_path / "two")
    ingest(sqlite_store, tmp_path / "one", name="pets")
    with pytest.raises(Conflict) as err:
        ingest(sqlite_store, tmp_path / "two", name="pets")
    assert "--name" in err.value.hint


def test_ingest_missing_empty_and_all_bad_folders_give_clear_errors(sqlite_store, tmp_path):
    with pytest.raises(EarmarkError) as err:
        ingest(sqlite_store, tmp_path / "nope")
    assert "no such folder" in err.value.title and "earmark download" in err.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(EarmarkError) as err:
        ingest(sqlite_store, tmp_path / "empty")
    assert "no audio data set" in err.value.title and err.value.hint
    make_training_layout(tmp_path / "parent" / "speech_commands_v0.02")
    with pytest.raises(EarmarkError) as err:
        ingest(sqlite_store, tmp_path / "parent")
    assert "did you mean" in err.value.hint and "speech_commands_v0.02" in err.value.hint
    write_wav(tmp_path / "slow" / "cls" / "a_nohash_0.wav", tone(0.5, sample_rate=8000), sample_rate=8000)
    with pytest.raises(EarmarkError) as err:
        ingest(sqlite_store, tmp_path / "slow")
    assert "--sample-rate" in err.value.hint
    assert _count(sqlite_store, Dataset) == 0
    rep = ingest(sqlite_store, tmp_path / "slow", sample_rate=8000)
    assert rep.n_clips == 1
    for bad_name in ("42", "latest", "x" * 201, "a\nb", "  "):
        with pytest.raises(EarmarkError):
            ingest(sqlite_store, tmp_path / "slow", name=bad_name, sample_rate=8000)
    assert _count(sqlite_store, Dataset) == 1


def test_cli_ingest_prints_the_summary(sqlite_store, tmp_path, shared_sample):
    from app.cli import app

    env = {"EARMARK_DATA_DIR": str(sqlite_store.settings.data_dir), "EARMARK_DATABASE_URL": sqlite_store.url}
    root = tmp_path / "ds"
    make_training_layout(root)
    _add_bad_files(root)
    res = CliRunner().invoke(app, ["ingest", str(root), "--name", "cli"], env=env)
    assert res.exit_code == 0, res.output
    for text in ("ingested cli", "train", "6 files rejected", "too_long", "up/long_nohash_0.wav", "leakage"):
        assert text in res.output
    res = CliRunner().invoke(app, ["ingest", str(shared_sample), "--name", "sample"], env=env)
    assert res.exit_code == 0 and "205" in res.output and "leakage: none" in res.output
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "missing")], env=env)
    assert res.exit_code == 1 and "no such folder" in res.output and "hint" in res.output
