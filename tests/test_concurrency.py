"""Several people flagging at once lose nothing: 8 HTTP clients x 200 flags against a real uvicorn server.

Every request must be answered 200 on its client's one keep-alive connection: zero 5xx, zero dropped
connections (resets), and no answer that closes the connection.

The server is the real app (``create_app``, via ``app_from_env``) under uvicorn in its own process, on
a free loopback port, on SQLite and on PostgreSQL. The clients overlap: every clip is written by several
clients, at the same time.

"The last write wins" is checked without trusting any clock: the stored flag must be exactly one of
the writes made to that clip (no field mixed from two writes), and it must be a write that no other
write to the same clip *started after it had finished*: such a later write would have to win.
This is the linearizability condition for a register, so a lost update fails it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx
import pytest
from sqlalchemy import func, select

from app.store.models import Flag
from tests.factories import make_run

N_CLIENTS = 8
FLAGS_PER_CLIENT = 200
N_CLIPS = 120  # 1,600 writes over 120 clips: ~13 writes per clip, from several clients each
RACE_CLIPS = 1  # plus a setter and a clearer racing on one more clip (each answered 200, never a 500)
RACE_REQUESTS = 300
REASONS = ("cutoff", "mislabeled", "multiple_words", "noise_only", "other")


class ServerProcess:
    """``uvicorn --factory app.web.main:app_from_env`` in its own process (its own GIL), on an inherited socket."""

    def __init__(self, settings):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.env = dict(os.environ, EARMARK_DATABASE_URL=settings.url, EARMARK_DATA_DIR=str(settings.data_dir))
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "app.web.main:app_from_env", "--fd", str(fd),
             "--log-level", "warning", "--no-access-log", "--lifespan", "off"],
            env=self.env, pass_fds=(fd,), stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(base + "/api/flags?limit=1", timeout=5).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not answer within 60 s")
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.sock.close()


def _plan(client: int, clip_ids: list[int], labels: list[str]) -> list[tuple[int, dict]]:
    """Client ``client``'s 200 writes: clips chosen so that each clip is hit by several clients."""
    out = []
    for i in range(FLAGS_PER_CLIENT):
        cid = clip_ids[(i * 7 + client * 17) % len(clip_ids)]
        reason = REASONS[(i + client) % len(REASONS)]
        body = {"reason": reason, "note": f"client {client} write {i}", "author": f"client-{client}",
                "corrected_label": labels[(i + client) % len(labels)] if reason == "mislabeled" else None}
        out.append((cid, body))
    return out


class Outcomes:
    """What went wrong, by kind: 5xx answers, dropped connections, closes, other non-200 answers."""

    def __init__(self):
        self.server_errors: list = []  # 5xx
        self.resets: list = []  # the connection dropped: no answer (a reset, or a close mid-request)
        self.closes: list = []  # an answer that ends the keep-alive connection (``Connection: close``)
        self.refused: list = []  # any other non-200 answer

    def all(self) -> list:
        return self.server_errors + self.resets + self.closes + self.refused


def _run_client(base: str, client: int, plan, log: list, out: Outcomes, barrier: threading.Barrier) -> None:
    """One person's writes on one keep-alive connection (httpx reuses it), nothing retried."""
    with httpx.Client(base_url=base, timeout=120, headers={"X-Earmark-CSRF": "1"},
                      limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as http:
        barrier.wait()
        for cid, body in plan:
            t0 = time.monotonic()
            try:
                r = http.post(f"/api/clips/{cid}/flag", json=body)
            except httpx.TransportError as exc:  # a dropped connection is a failure too; nothing is retried
                out.resets.append((client, cid, repr(exc)))
                continue
            t1 = time.monotonic()
            if r.headers.get("connection", "").lower() == "close":
                out.closes.append((client, cid, r.status_code))
            if r.status_code >= 500:
                out.server_errors.append((client, cid, r.status_code, r.text[:300]))
                continue
            if r.status_code != 200:
                out.refused.append((client, cid, r.status_code, r.text[:300]))
                continue
            log.append(dict(clip_id=cid, start=t0, end=t1, body=body, updated_at=r.json()["updated_at"]))


def _run_racer(base: str, clip_ids: list[int], clear: bool, out: Outcomes, barrier: threading.Barrier) -> None:
    """Sets (or clears) flags on the race clips, which another racer clears (or sets) at the same time."""
    with httpx.Client(base_url=base, timeout=120, headers={"X-Earmark-CSRF": "1"},
                      limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as http:
        barrier.wait()
        for i in range(RACE_REQUESTS):
            cid = clip_ids[i % len(clip_ids)]
            try:
                r = (http.post(f"/api/clips/{cid}/flag/clear") if clear else
                     http.post(f"/api/clips/{cid}/flag", json={"reason": "noise_only", "note": f"race {i}"}))
            except httpx.TransportError as exc:
                out.resets.append(("racer", cid, repr(exc)))
                continue
            if r.headers.get("connection", "").lower() == "close":
                out.closes.append(("racer", cid, r.status_code))
            if r.status_code >= 500:
                out.server_errors.append(("racer", cid, r.status_code, r.text[:300]))
            elif r.status_code != 200:
                out.refused.append(("racer", cid, r.status_code, r.text[:300]))


def test_concurrency_flags_last_write_wins(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=N_CLIPS + RACE_CLIPS, write_audio=False)
    # the last RACE_CLIPS clips: one client sets their flags while another clears them (the set/clear race)
    clip_ids, race_ids, labels = fx.clip_ids[:N_CLIPS], fx.clip_ids[N_CLIPS:], fx.labels
    log: list[dict] = []
    out = Outcomes()
    barrier = threading.Barrier(N_CLIENTS + 2)
    with ServerProcess(store.settings) as base:
        threads = [threading.Thread(target=_run_client, args=(base, k, _plan(k, clip_ids, labels), log, out,
                                                              barrier)) for k in range(N_CLIENTS)]
        threads += [threading.Thread(target=_run_racer, args=(base, race_ids, clear, out, barrier))
                    for clear in (False, True)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert out.server_errors == [], f"{len(out.server_errors)} answers were 5xx, first: {out.server_errors[:3]}"
    assert out.resets == [], f"{len(out.resets)} requests lost their connection, first: {out.resets[:3]}"
    assert out.closes == [], f"{len(out.closes)} answers closed the keep-alive connection: {out.closes[:3]}"
    assert out.all() == [], f"{len(out.all())} failed requests, first: {out.all()[:3]}"
    assert len(log) == N_CLIENTS * FLAGS_PER_CLIENT

    writes: dict[int, list[dict]] = defaultdict(list)
    for w in log:
        writes[w["clip_id"]].append(w)
    assert min(len({w["body"]["author"] for w in ws}) for ws in writes.values()) >= 2  # real overlap

    with store.sessions() as s:
        per_clip = dict(s.execute(select(Flag.clip_id, func.count()).where(Flag.clip_id.in_(clip_ids))
                                  .group_by(Flag.clip_id)).all())
        stored = {f.clip_id: f for f in s.scalars(select(Flag).where(Flag.clip_id.in_(clip_ids)))}
    assert set(per_clip) == set(writes), "a flagged clip has no flag, or an unwritten clip has one"
    assert set(per_clip.values()) == {1}, "a clip has more than one flag row"
    ruled_out = 0  # writes the check excludes as possible winners: proves it has teeth
    for cid, ws in writes.items():
        ruled_out += sum(1 for w in ws if any(o["start"] > w["end"] for o in ws))
        f = stored[cid]
        got = (f.reason, f.corrected_label, f.note, f.author)
        match = [w for w in ws if (w["body"]["reason"], w["body"]["corrected_label"], w["body"]["note"],
                                   w["body"]["author"]) == got]
        assert len(match) == 1, f"clip {cid}: stored flag {got} is not one of its writes"
        winner = match[0]
        later = [w for w in ws if w["start"] > winner["end"]]
        assert not later, (f"clip {cid}: stored {got}, but {later[0]['body']['note']!r} started after it had "
                           "finished and was lost")
    assert ruled_out > len(log) // 2
    print(f"\n{store.kind}: {len(log)} flag writes by {N_CLIENTS} clients in {elapsed:.1f} s "
          f"({len(log) / elapsed:.0f} writes/s), {len(writes)} clips; plus {2 * RACE_REQUESTS} set/clear races; "
          "0 5xx, 0 resets")


def test_concurrency_server_process_serves_and_stops(sqlite_store):
    """The harness itself: the server answers on its port, and nothing listens there afterwards."""
    with ServerProcess(sqlite_store.settings) as base:
        assert httpx.get(base + "/api/flags", timeout=30).json()["total"] == 0
        r = httpx.post(base + "/api/clips/1/flag", json={"reason": "cutoff"}, timeout=30)
        assert r.status_code == 403  # no CSRF header: refused, as for any client
        port = int(base.rsplit(":", 1)[1])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/flags", timeout=5)
