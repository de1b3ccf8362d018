"""Ingest's folder walk (ml/files.py): one bad entry is a reject with a reason and never aborts the ingest;
links are followed only inside the data set root, and no byte from outside is read, stored or served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.store.models import Clip, Dataset, Reject
from app.web.main import create_app
from ml.files import list_folder
from tests.conftest import write_wav
from tests.ingest_helpers import clip, make_training_layout

ROOT = Path(__file__).resolve().parents[1]
BAD_NAME = b"\xff\xfe_nohash_0.wav"  # not UTF-8


def _hostile_folder(tmp_path: Path) -> tuple[Path, list[str], dict[str, str]]:
    """A training layout plus one of each bad entry; (root, good clip paths, {reject path: reason})."""
    root = tmp_path / "ds"
    good = make_training_layout(root, noise=False)
    outside = tmp_path / "elsewhere"
    write_wav(outside / "x.wav", clip(900))
    write_wav(outside / "cls" / "y.wav", clip(901))
    yes = root / "yes"
    os.symlink("loop_nohash_0.wav", yes / "loop_nohash_0.wav")  # a link to itself: ELOOP
    src = write_wav(outside / "bad-name.wav", clip(902))
    with open(os.fsencode(yes) + b"/" + BAD_NAME, "wb") as fh:  # a file name that is not UTF-8
        fh.write(src.read_bytes())
    (yes / "dir_nohash_0.wav").mkdir()
    os.mkfifo(yes / "fifo_nohash_0.wav")
    os.symlink("/dev/zero", yes / "zero_nohash_0.wav")
    os.symlink("/etc/passwd", yes / "passwd_nohash_0.wav")
    os.symlink(outside / "x.wav", yes / "outside_nohash_0.wav")
    os.symlink(outside / "cls", root / "linked")  # a class folder from elsewhere
    os.symlink("spin", root / "spin")  # a class folder that is a link loop
    os.symlink(f"../{good[0]}", root / "no" / "alias_nohash_7.wav")  # inside the root: followed
    bad = {"yes/loop_nohash_0.wav": "unreadable", "yes/\ufffd\ufffd_nohash_0.wav": "bad_name",
           "yes/dir_nohash_0.wav": "not_a_file", "yes/fifo_nohash_0.wav": "not_a_file",
           "yes/zero_nohash_0.wav": "outside_root", "yes/passwd_nohash_0.wav": "outside_root",
           "yes/outside_nohash_0.wav": "outside_root", "linked": "outside_root", "spin": "unreadable"}
    return root, good + ["no/alias_nohash_7.wav"], bad


def test_ingest_walk_rejects_each_bad_entry_and_ingests_the_rest(store, tmp_path):
    root, good, bad = _hostile_folder(tmp_path)
    env = {"EARMARK_DATA_DIR": str(store.settings.data_dir), "EARMARK_DATABASE_URL": store.url}
    res = CliRunner().invoke(cli, ["ingest", str(root), "--name", "hostile"], env=env)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    with store.sessions() as s:
        ds = s.scalars(select(Dataset).where(Dataset.name == "hostile")).one()
        assert ds.status == "ready" and ds.n_clips == len(good) and ds.n_rejects == len(bad)
        assert sorted(s.scalars(select(Clip.path).where(Clip.dataset_id == ds.id))) == sorted(good)
        rejects = {p: (r, d) for p, r, d in s.execute(
            select(Reject.path, Reject.reason, Reject.detail).where(Reject.dataset_id == ds.id))}
    assert {p: r for p, (r, _) in rejects.items()} == bad
    assert all(d for _, d in rejects.values())  # every reject says why
    assert "loop" in rejects["spin"][1].lower() or "levels" in rejects["spin"][1].lower()
    passwd_head = Path("/etc/passwd").read_text()[:8]
    served = TestClient(create_app(store.settings)).get(f"/api/datasets/{ds.id}").text
    for text in [served, *(d for _, d in rejects.values())]:
        assert passwd_head not in text and "b'" not in text  # no byte from outside the root


def test_ingest_walk_not_audio_detail_quotes_no_bytes(sqlite_store, tmp_path):
    root = tmp_path / "ds"
    make_training_layout(root, noise=False, lists=False)
    (root / "yes" / "secret_nohash_0.wav").write_text("root:x:0:0:root:/root:/bin/bash\n")
    env = {"EARMARK_DATA_DIR": str(sqlite_store.settings.data_dir), "EARMARK_DATABASE_URL": sqlite_store.url}
    assert CliRunner().invoke(cli, ["ingest", str(root), "--name", "t"], env=env).exit_code == 0
    with sqlite_store.sessions() as s:
        reason, detail = s.execute(select(Reject.reason, Reject.detail)).one()
    assert reason == "not_audio" and "root:" not in detail and "b'" not in detail


def test_ingest_walk_follows_links_inside_the_root_only(tmp_path):
    root = tmp_path / "ds"
    (root / "a").mkdir(parents=True)
    write_wav(root / "a" / "x.wav", clip(1))
    os.symlink("a", root / "b")  # a class folder linked from inside the root
    os.symlink(tmp_path, root / "up")  # the root's parent: outside
    listing = list_folder(root, root, "", (".wav",))
    assert listing.folders == ["a", "b"] and [r[:2] for r in listing.rejects] == [("up", "outside_root")]


_SCAN_AS_NOBODY = """
import json, os, sys
from ml.speech_commands import scan  # imported first: the interpreter's files may be private to root
os.setgid(65534); os.setuid(65534)
layout = scan(sys.argv[1])
print(json.dumps({"paths": [e.path for e in layout.entries], "rejects": layout.rejects}))
"""


def test_ingest_walk_unreadable_class_folder_is_a_reject(tmp_path):
    """chmod 000 stops every user but root, and tests run as root: the scan runs as ``nobody``."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run the scan as another user (as non-root, chmod 000 applies directly)")
    base = Path(tempfile.mkdtemp(prefix="earmark-walk-", dir="/tmp"))  # tmp_path is private to root
    try:
        base.chmod(0o755)
        root = base / "ds"
        for word in ("yes", "no", "up"):
            write_wav(root / word / f"0a7c2a8d_nohash_{len(word)}.wav", clip(len(word)))
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        (root / "no").chmod(0o000)
        out = subprocess.run([sys.executable, "-c", _SCAN_AS_NOBODY, str(root)], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        found = json.loads(out.stdout)
        assert sorted(found["paths"]) == ["up/0a7c2a8d_nohash_2.wav", "yes/0a7c2a8d_nohash_3.wav"]
        assert found["rejects"] == [["no", "unreadable", "cannot list the folder: Permission denied"]]
    finally:
        (base / "ds" / "no").chmod(0o755)
        subprocess.run(["rm", "-rf", str(base)], check=False)
