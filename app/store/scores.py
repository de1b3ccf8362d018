"""Per-clip detector outputs (``clip_scores``): written only by ``earmark analyze``, read by the pages."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.store.models import ClipScore
from app.store.writes import bulk_insert


def replace_clip_scores(session: Session, run_id: int, rows: dict[int, dict]) -> int:
    """Replace the run's ClipScore rows: clip id -> column values (every column of the row). Caller commits."""
    session.execute(delete(ClipScore).where(ClipScore.run_id == run_id))
    return bulk_insert(session, ClipScore, [dict(values, run_id=run_id, clip_id=int(c))
                                            for c, values in sorted(rows.items())])


def get_score(session: Session, run_id: int, clip_id: int) -> ClipScore | None:
    """One clip's scores under a run, or None (not analyzed)."""
    return session.get(ClipScore, (run_id, clip_id))


def has_scores(session: Session, run_id: int) -> bool:
    """True when ``earmark analyze`` has stored scores for the run."""
    return bool(session.scalar(select(func.count()).select_from(ClipScore).where(ClipScore.run_id == run_id)))
