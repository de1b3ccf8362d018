"""A set racing a clear on the same clip never answers 5xx, on SQLite and PostgreSQL.

The flag API used to re-read the flag after its commit with ``.one()``: a clear landing in between
made the read fail, so a write that had been applied answered 500 (and the connection dropped).
Now the upsert answers with the row it wrote (``RETURNING``). Two real clients, one setting and one
clearing the same clip, against the real server (uvicorn in its own process, as in
``tests/test_concurrency.py``), on keep-alive connections: every request must answer 200, and every
set must answer with exactly the flag it sent.
"""

from __future__ import annotations

import threading

import httpx

from tests.factories import make_run
from tests.test_concurrency import ServerProcess

ROUNDS = 300  # per client; before the fix this gave several 500s on both databases


def _setter(base: str, cid: int, out: dict, barrier: threading.Barrier) -> None:
    with httpx.Client(base_url=base, timeout=60, headers={"X-Earmark-CSRF": "1"}) as http:
        barrier.wait()
        for i in range(ROUNDS):
            body = {"reason": "other", "note": f"set {i}", "author": "setter"}
            try:
                r = http.post(f"/api/clips/{cid}/flag", json=body)
            except httpx.HTTPError as exc:  # a dropped keep-alive connection fails too; nothing is retried
                out["errors"].append(repr(exc))
                continue
            out["status"].append(r.status_code)
            if r.status_code == 200:
                got = r.json()
                if (got["clip_id"], got["reason"], got["note"], got["author"]) != (cid, "other", f"set {i}", "setter"):
                    out["wrong"].append(got)


def _clearer(base: str, cid: int, out: dict, barrier: threading.Barrier) -> None:
    with httpx.Client(base_url=base, timeout=60, headers={"X-Earmark-CSRF": "1"}) as http:
        barrier.wait()
        for _ in range(ROUNDS):
            try:
                r = http.post(f"/api/clips/{cid}/flag/clear")
            except httpx.HTTPError as exc:
                out["errors"].append(repr(exc))
                continue
            out["status"].append(r.status_code)
            if r.status_code == 200 and r.json()["cleared"]:
                out["cleared"] += 1


def test_set_racing_clear_never_answers_5xx(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=4, write_audio=False)
    cid = fx.clip_ids[0]
    sets = {"status": [], "errors": [], "wrong": []}
    clears = {"status": [], "errors": [], "cleared": 0}
    barrier = threading.Barrier(2)
    with ServerProcess(store.settings) as base:
        threads = [threading.Thread(target=_setter, args=(base, cid, sets, barrier)),
                   threading.Thread(target=_clearer, args=(base, cid, clears, barrier))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert sets["errors"] == [] and clears["errors"] == [], (sets["errors"][:3], clears["errors"][:3])
    bad = [c for c in sets["status"] + clears["status"] if c != 200]
    assert bad == [], f"{len(bad)} non-200 answers: {sorted(set(bad))}"
    assert len(sets["status"]) == len(clears["status"]) == ROUNDS
    assert sets["wrong"] == [], f"a set answered with another flag: {sets['wrong'][:2]}"
    assert clears["cleared"] > 0  # the two really interleaved
