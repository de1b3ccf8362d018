"""Engine and session factory. SQLite gets WAL and a busy timeout; the schema comes from Alembic.

Use ``make_engine(url)`` and ``make_sessionmaker(engine)``; nothing is created at import time.
``open_store(settings)`` is what the CLI and the app call: it builds the engine, brings the
schema to ``head`` (a no-op when it is already there) and returns a ``Store``, the one handle every
pipeline entry point takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """True when the store is SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str) -> Engine:
    """Create an engine for ``url``. SQLite files get WAL, a busy timeout and foreign keys."""
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every sqlite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str):
    """An Alembic config pointing at earmark's migrations and ``url``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to Alembic ``head``. Safe to call on every start."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current == head:
        return
    log.info("migrating store from %s to %s", current, head)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass
class Store:
    """The store handle every pipeline entry point takes: the engine, its session factory and the
    settings it was opened with (paths, device). A step opens its own sessions from it, so it can
    commit a status early and write its results in one later transaction."""

    engine: Engine
    sessions: sessionmaker[Session]
    settings: Settings

    def session(self) -> Session:
        """A new session (use as a context manager; commit yourself)."""
        return self.sessions()


def open_store(settings: Settings) -> Store:
    """The configured store, schema at head."""
    engine = make_engine(settings.url)
    upgrade(engine)
    return Store(engine, make_sessionmaker(engine), settings)


def table_names(engine: Engine) -> set[str]:
    """Names of the tables that exist (tests and diagnostics)."""
    return set(inspect(engine).get_table_names())
