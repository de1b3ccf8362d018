"""The run's 2-D cloud coordinates (``projections``), written only by ``earmark project``."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.store.models import Projection
from app.store.writes import bulk_insert


def replace_projection(session: Session, run_id: int, clip_ids: np.ndarray, xy: np.ndarray) -> int:
    """Replace the run's coordinates: ``clip_ids`` (n,) and ``xy`` float (n, 2). Caller commits."""
    session.execute(delete(Projection).where(Projection.run_id == run_id))
    return bulk_insert(session, Projection, [
        dict(run_id=run_id, clip_id=int(c), x=float(p[0]), y=float(p[1]))
        for c, p in zip(clip_ids.tolist(), np.asarray(xy).tolist(), strict=True)])


def has_projection(session: Session, run_id: int) -> bool:
    """True when ``earmark project`` stored the run's cloud coordinates."""
    return bool(session.scalar(select(func.count()).select_from(Projection).where(Projection.run_id == run_id)))
