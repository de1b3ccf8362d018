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
