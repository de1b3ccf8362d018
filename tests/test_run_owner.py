"""Runs record their process and a heartbeat: a dead run reads as interrupted with its resume command,
and a second resume (or an inference) is refused while the first process lives."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.errors import Conflict
from app.pipeline.infer import infer_run
from app.pipeline.train import train_run
from app.process import STALE_AFTER_S, heartbeat, owner_alive, process_identity
from app.store.models import Run
from app.store.runs import beat_run, claim_run, run_state
from app.web.main import create_app
from tests.factories import make_run


@pytest.fixture
def sleeper():
    """A real live process on this host, to own a run; killed (and reaped) by ``.kill_now()``."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    def kill_now():
        proc.kill()
        proc.wait(timeout=10)

    proc.kill_now = kill_now
    yield proc
    if proc.poll() is None:
        kill_now()


def _own(store, run_id: int, pid: int, status: str = "training", **extra) -> None:
    with store.sessions() as s:
        run = s.get(Run, run_id)
        run.status, run.heartbeat_at = status, datetime.now(UTC)
        run.owner = {"host": socket.gethostname(), "pid": pid, "start": process_identity(pid)}
        for k, v in extra.items():
            setattr(run, k, v)
        s.commit()


def _runs_output(store) -> str:
    env = {"EARMARK_DATA_DIR": str(store.settings.data_dir), "EARMARK_DATABASE_URL": store.url}
    res = CliRunner().invoke(cli, ["runs"], env=env)
    assert res.exit_code == 0, res.output
    return res.output


def test_run_owner_dead_run_reads_interrupted_with_the_resume_command(store, tmp_path, sleeper):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=12, write_audio=False)
    _own(store, fx.run_id, sleeper.pid)
    client = TestClient(create_app(store.settings))
    assert "interrupted" not in _runs_output(store)
    page = client.get(f"/clips?run={fx.run_id}").text
    assert "is <strong>training</strong>" in page and "--resume" not in page

    sleeper.kill_now()  # the training process dies without a word
    out = _runs_output(store)
    assert "interrupted" in out and f"earmark train --resume {fx.run_id}" in out
    page = client.get(f"/clips?run={fx.run_id}").text
    assert "is <strong>interrupted</strong>" in page and f"earmark train --resume {fx.run_id}" in page
    api = {r["id"]: r for r in client.get("/api/runs").json()}[fx.run_id]
    assert api["status"] == "interrupted" and api["resume"] == f"earmark train --resume {fx.run_id}"


def test_run_owner_second_resume_is_refused_while_the_first_lives(store, tmp_path, sleeper):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=12, write_audio=False)
    _own(store, fx.run_id, sleeper.pid, epochs_done=10)
    with pytest.raises(Conflict, match=f"run {fx.run_id} is training right now \\(process {sleeper.pid}"):
        train_run(store, resume=fx.run_id)
    with store.sessions() as s:
        run = s.get(Run, fx.run_id)
        assert run.epochs_done == 10 and run.owner["pid"] == sleeper.pid  # untouched
    sleeper.kill_now()
    with store.sessions() as s:  # the owner is gone: this process may take the run over
        run = s.get(Run, fx.run_id)
        before = run.claim
        claim_run(s, run, "training")
        assert run.owner["pid"] != sleeper.pid and run.claim == before + 1


def test_run_owner_two_claims_from_one_read_only_one_wins(store, tmp_path):
    """Two resumes that both saw the run unowned: the compare-and-set on ``claim`` lets one through."""
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=12, write_audio=False)
    with store.sessions() as first, store.sessions() as second:
        a, b = first.get(Run, fx.run_id), second.get(Run, fx.run_id)
        claim_run(first, a, "training")
        with pytest.raises(Conflict, match="just taken by another process"):
            claim_run(second, b, "training")


def test_run_owner_inference_is_refused_while_another_process_infers(store, tmp_path, sleeper):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=12, write_audio=False)
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"not read: the claim is refused first")
    _own(store, fx.run_id, sleeper.pid, status="inferring", checkpoint=str(ckpt))
    with pytest.raises(Conflict, match="is inferring right now"):
        infer_run(store, fx.run_id)
    sleeper.kill_now()
    with store.sessions() as s:
        assert run_state(s.get(Run, fx.run_id)).resume == f"earmark infer --run {fx.run_id}"


def test_run_owner_heartbeat_is_written_and_read_for_other_hosts(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=12, write_audio=False)

    def beat():
        with store.sessions() as s:
            beat_run(s, fx.run_id)

    with heartbeat(beat, interval_s=0.05):
        time.sleep(0.4)
    with store.sessions() as s:
        seen = s.get(Run, fx.run_id).heartbeat_at
    seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
    assert datetime.now(UTC) - seen < timedelta(seconds=5)
    elsewhere = {"host": "another-host.example", "pid": 4242, "start": "1"}
    assert owner_alive(elsewhere, seen)  # a recent beat: alive, whatever its pid means here
    assert not owner_alive(elsewhere, seen - timedelta(seconds=STALE_AFTER_S + 1))
    assert not owner_alive(elsewhere, None)
