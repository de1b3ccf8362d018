"""Shared fixtures: a fresh store on SQLite and on the real local PostgreSQL, real WAV files.

``store`` is parametrised over both databases; every test that takes it runs twice, each time on
a brand-new schema made by ``alembic upgrade head``. Without a reachable PostgreSQL the second
half is skipped with the reason, except under CI (``CI=true``), where it fails instead.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import text

from app.config import Settings
from app.store.db import Store as StoreHandle
from app.store.db import make_engine, make_sessionmaker, upgrade

PG_BASE_URL = os.environ.get("EARMARK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-commands-v0.01-sample"


# FastAPI's TestClient sends "Host: testserver"; the server answers only to the hosts it serves on.
TEST_CLIENT_HOST = "testserver"


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail in CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must not be skipped)")
    pytest.skip(reason)


def _pg_reachable() -> str | None:
    try:
        eng = make_engine(PG_BASE_URL)
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL at {PG_BASE_URL} is not reachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"


@dataclass
class Store(StoreHandle):
    """A fresh, migrated store for one test: the handle the pipeline takes, plus which database it is."""

    kind: str = "sqlite"  # "sqlite" | "postgresql"
    url: str = ""


@pytest.fixture(scope="session")
def pg_problem() -> str | None:
    return _pg_reachable()


def _make_store(kind: str, tmp_path: Path, pg_problem: str | None):
    data_dir = tmp_path / "earmark-data"
    data_dir.mkdir()
    if kind == "sqlite":
        url = f"sqlite:///{data_dir / 'earmark.db'}"
        engine = make_engine(url)
        upgrade(engine)
        yield Store(engine, make_sessionmaker(engine), Settings(data_dir=data_dir, database_url=url, allowed_hosts=TEST_CLIENT_HOST), kind, url)
        engine.dispose()
        return
    if pg_problem:
        skip_or_fail(pg_problem)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_BASE_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield Store(engine, make_sessionmaker(engine), Settings(data_dir=data_dir, database_url=url, allowed_hosts=TEST_CLIENT_HOST), kind, url)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path, pg_problem):
    """A fresh migrated store, once on SQLite and once on PostgreSQL."""
    yield from _make_store(request.param, tmp_path, pg_problem)


@pytest.fixture
def sqlite_store(tmp_path, pg_problem):
    """A fresh migrated SQLite store (for tests where the database does not matter)."""
    yield from _make_store("sqlite", tmp_path, pg_problem)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16000, subtype: str = "PCM_16") -> Path:
    """Write a real WAV file (float samples in [-1, 1] or int16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate, subtype=subtype)
    return path


def tone(seconds: float = 1.0, freq: float = 440.0, sample_rate: int = 16000, amp: float = 0.3,
         start: float = 0.0, stop: float | None = None) -> np.ndarray:
    """A sine burst from ``start`` to ``stop`` seconds inside an otherwise silent clip."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    out = np.zeros(n, dtype=np.float32)
    stop = seconds if stop is None else stop
    on = (t >= start) & (t < stop)
    out[on] = amp * np.sin(2 * np.pi * freq * t[on])
    return out


@pytest.fixture
def shared_sample() -> Path:
    """The 300 real Speech Commands v0.01 clips in ../shared (skipped when absent, failed in CI)."""
    if not SHARED_SAMPLE.is_dir():
        skip_or_fail(f"the shared sample is not at {SHARED_SAMPLE}")
    return SHARED_SAMPLE
