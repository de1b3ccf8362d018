"""Bulk inserts, in large executemany batches, the same on SQLite and PostgreSQL (flag writes: ``app.store.flags``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

# SQLite allows 32,766 bound parameters per statement; stay well under it for wide rows.
_MAX_PARAMS = 30_000


def bulk_insert(session: Session, model: type, rows: Sequence[dict[str, Any]] | Iterable[dict[str, Any]]) -> int:
    """Insert ``rows`` (dicts of column values) in large executemany batches; returns the count."""
    rows = list(rows)
    if not rows:
        return 0
    per_stmt = max(1, _MAX_PARAMS // max(1, len(rows[0])))
    for start in range(0, len(rows), per_stmt):
        session.execute(insert(model), rows[start:start + per_stmt])
    return len(rows)


def insert_tuples(session: Session, model: type, columns: Sequence[str], rows: Sequence[tuple]) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) with the driver's own executemany: no per-row ORM
    or bind processing, for the widest writes (an import's 105k predictions and embeddings). Values
    must already be plain Python (int, float, str, bool, bytes, None). Returns the count."""
    if not rows:
        return 0
    conn = session.connection()
    table, names = model.__table__.name, ", ".join(columns)
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and hasattr(raw, "cursor") and hasattr(raw.cursor(), "copy"):
        # psycopg 3: COPY inside the session's own transaction, several times faster than INSERTs.
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return len(rows)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({', '.join([mark] * len(columns))})", list(rows))
    return len(rows)
