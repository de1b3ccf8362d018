"""Who owns a long job (an ingest, a training run, an inference), and whether that process still lives.

An owner is ``{"host", "pid", "start"}``: the host name, the process id and the kernel's start time
of that process (so a recycled pid is not taken for it). On the owner's own host, liveness is read
from the process table. From another host it cannot be, so a job also writes a heartbeat
(``heartbeat``, every ``HEARTBEAT_S``) and counts as alive while the last beat is younger than
``STALE_AFTER_S``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # how often a running job writes its heartbeat
STALE_AFTER_S = 180.0  # a job on another host with no beat for this long counts as dead


def process_identity(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (so a recycled pid is not mistaken for it); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else fields[19].decode()  # state; starttime (field 22)
    except (OSError, IndexError):
        pass
    try:  # no /proc: fall back to "does the pid exist"
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except (PermissionError, OSError):
        pass
    return "?"


def current_owner() -> dict:
    """This process as an owner: ``{"host", "pid", "start"}``."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_identity(os.getpid())}


def owner_alive(owner: dict | None, heartbeat_at: datetime | None = None, now: datetime | None = None) -> bool:
    """True when ``owner`` is another process that still runs.

    Same host: the pid exists and has the recorded start time. Another host: the heartbeat is
    younger than ``STALE_AFTER_S`` (with no heartbeat, it counts as gone). This process itself is
    never "another live owner".
    """
    if not owner:
        return False
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname():
        if heartbeat_at is None:
            return False
        beat = heartbeat_at if heartbeat_at.tzinfo else heartbeat_at.replace(tzinfo=UTC)
        return ((now or datetime.now(UTC)) - beat).total_seconds() < STALE_AFTER_S
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    seen = process_identity(pid)
    return seen is not None and (seen == "?" or owner.get("start") in (None, "?", seen))


@contextmanager
def heartbeat(beat: Callable[[], None], interval_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Call ``beat()`` every ``interval_s`` seconds in a daemon thread while the block runs.

    A failing beat is logged and retried at the next interval; it never stops the job.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                beat()
            except Exception:  # noqa: BLE001 - a missed heartbeat must not kill a training run
                log.warning("could not write the heartbeat", exc_info=True)

    thread = threading.Thread(target=loop, name="earmark-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s + 5)
