"""Bulk writes and upserts, one transaction per unit of work, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.store.models import FLAG_REASONS, Flag, utcnow

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


def _dialect_insert(session: Session, model: type):
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise EarmarkError(f"unsupported database dialect {name!r}", hint="use SQLite or PostgreSQL")


def validate_flag(reason: str, corrected_label: str | None, labels: Sequence[str] | None = None) -> str | None:
    """Check a flag's reason and corrected label; returns the normalised corrected label."""
    if reason not in FLAG_REASONS:
        raise EarmarkError(
            f"unknown flag reason {reason!r}", hint=f"use one of: {', '.join(FLAG_REASONS)}", status=422
        )
    label = (corrected_label or "").strip() or None
    if reason == "mislabeled" and not label:
        raise EarmarkError("a 'mislabeled' flag needs the correct label", status=422)
    if label is not None and labels is not None and label not in labels:
        raise EarmarkError(f"unknown label {label!r}", hint="pick one of the data set's labels", status=422)
    return label


def upsert_flag(
    session: Session,
    clip_id: int,
    reason: str,
    corrected_label: str | None = None,
    note: str = "",
    author: str = "anonymous",
    finding_id: int | None = None,
) -> None:
    """Set the one flag of ``clip_id`` atomically; the last write wins. Caller commits."""
    corrected_label = validate_flag(reason, corrected_label)
    now = utcnow()
    values = dict(clip_id=clip_id, reason=reason, corrected_label=corrected_label, note=note or "",
                  author=author or "anonymous", finding_id=finding_id, created_at=now, updated_at=now)
    stmt = _dialect_insert(session, Flag).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Flag.clip_id],
        set_={k: stmt.excluded[k] for k in ("reason", "corrected_label", "note", "author", "finding_id", "updated_at")},
    )
    session.execute(stmt)


def clear_flag(session: Session, clip_id: int) -> bool:
    """Remove the flag of ``clip_id``; True when there was one. Caller commits."""
    flag = session.query(Flag).filter(Flag.clip_id == clip_id).one_or_none()
    if flag is None:
        return False
    session.delete(flag)
    return True
