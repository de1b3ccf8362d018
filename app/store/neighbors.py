"""Each clip's nearest clips under a run: the ``neighbor_lists`` table (written only by
``earmark project``) and, for a run that was never projected, the same answer computed from the
embeddings (``top_cosine``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.store.models import NeighborList
from app.store.writes import bulk_insert

N_NEIGHBORS = 10  # how many nearest clips a stored list holds


def replace_neighbors(session: Session, run_id: int, lists: Iterable[tuple[int, list[int], list[float]]]) -> int:
    """Replace the run's neighbour lists with ``(clip id, neighbour ids, similarities)``; returns the count.
    Caller commits. Only ``earmark project`` calls this."""
    session.execute(delete(NeighborList).where(NeighborList.run_id == run_id))
    return bulk_insert(session, NeighborList, [
        dict(run_id=run_id, clip_id=int(c), neighbor_ids=[int(i) for i in ids], similarities=[float(s) for s in sims])
        for c, ids, sims in lists])


def neighbors_of(session: Session, run_id: int, clip_id: int, k: int = N_NEIGHBORS) -> list[tuple[int, float]] | None:
    """The stored nearest clips of one clip, (clip id, cosine) best first; None when none are stored."""
    row = session.get(NeighborList, (run_id, clip_id))
    if row is None or not row.neighbor_ids:
        return None
    return [(int(c), float(s)) for c, s in zip(row.neighbor_ids[:k], row.similarities[:k], strict=False)]


def all_neighbors(session: Session, run_id: int) -> dict[int, tuple[list[int], list[float]]]:
    """clip id -> (neighbour ids, similarities) for every stored list of a run."""
    rows = session.execute(select(NeighborList.clip_id, NeighborList.neighbor_ids, NeighborList.similarities)
                           .where(NeighborList.run_id == run_id)).all()
    return {int(c): (list(ids or []), list(sims or [])) for c, ids, sims in rows}


def top_cosine(ids: np.ndarray, unit: np.ndarray, clip_id: int, k: int) -> list[tuple[int, float]]:
    """The ``k`` rows of ``unit`` (unit-norm float32 (n, d), rows ordered like the sorted ``ids``) nearest
    to ``clip_id``'s row by cosine, itself excluded: (clip id, similarity), best first; [] if absent."""
    i = int(np.searchsorted(ids, clip_id))
    if i >= len(ids) or ids[i] != clip_id:
        return []
    sims = unit @ unit[i]  # (n,)
    sims[i] = -np.inf
    top = np.argpartition(-sims, min(k, len(sims) - 1))[:k] if len(sims) > k else np.arange(len(sims))
    top = top[np.argsort(-sims[top])]
    return [(int(ids[j]), float(sims[j])) for j in top if np.isfinite(sims[j])]
