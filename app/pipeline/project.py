"""``earmark project``: the run's 2-D UMAP cloud and each clip's 10 nearest clips, precomputed.

Reads the run's embeddings, computes one cosine kNN graph (used for the clip page's neighbours and
reused by UMAP), lays the cloud out with UMAP, and replaces the run's Projection rows and the
``neighbors``/``neighbor_sims`` of its ClipScore rows in one transaction. The web app only reads
the stored coordinates, so no page ever pays numba's compile time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.pipeline.common import resolve_run
from app.store.models import Clip, ClipScore, Embedding, Projection, Run
from app.store.writes import bulk_insert

log = logging.getLogger(__name__)

N_NEIGHBORS = 10
# The graph keeps a few more neighbours than the page shows, so UMAP can reuse it (it wants 15).
GRAPH_K = 14
Progress = Callable[[str, int, int], None]
CLIP_SCORE_COLUMNS = ("cutoff_score", "label_quality", "suggested_label", "label_issue", "outlier_score",
                      "cluster", "duplicate_of", "neighbors", "neighbor_sims")


@dataclass
class ProjectSummary:
    """What ``project_run`` did, with its timings in seconds."""

    run_id: int
    n_clips: int
    warmup_s: float
    neighbors_s: float
    umap_s: float
    write_s: float


def _noop(step: str, done: int, total: int) -> None:
    log.info("%s (%d/%d)", step, done, total)


def load_embeddings(session: Session, run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids (n,), embeddings (n, d) float32) of ``run``, ordered by clip id."""
    rows = session.execute(
        select(Embedding.clip_id, Embedding.vector).where(Embedding.run_id == run.id).order_by(Embedding.clip_id)
    ).all()
    if not rows:
        raise Conflict(
            f"run {run.id} ({run.name}) has no embeddings",
            detail=f"its status is {run.status!r}",
            hint=f"run `earmark infer --run {run.id}` first",
        )
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    dim = len(rows[0][1]) // 4
    x = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return ids, np.ascontiguousarray(x, dtype=np.float32)


def neighbor_lists(clip_ids: np.ndarray, idx: np.ndarray, sims: np.ndarray, k: int = N_NEIGHBORS
                   ) -> tuple[list[list[int]], list[list[float]]]:
    """Row-index neighbour graph -> per clip: the ``k`` nearest clip ids and their cosines (4 decimals)."""
    ids_out, sims_out = [], []
    for row_idx, row_sims in zip(idx[:, :k].tolist(), np.round(sims[:, :k], 4).tolist(), strict=True):
        keep = [(int(clip_ids[j]), float(s)) for j, s in zip(row_idx, row_sims, strict=True) if j >= 0]
        ids_out.append([c for c, _ in keep])
        sims_out.append([s for _, s in keep])
    return ids_out, sims_out


def merge_clip_scores(session: Session, run_id: int, updates: dict[int, dict], replace: bool = False) -> None:
    """Replace the run's ClipScore rows, keeping every stored column that ``updates`` does not set.

    ``updates`` maps clip id -> column values. Clips with a stored row but no update keep it as is.
    With ``replace`` the stored rows are not read: ``updates`` becomes the whole set (each update
    sets every column). Done as delete + bulk insert, the same on either database; caller commits.
    """
    cols = [getattr(ClipScore, c) for c in CLIP_SCORE_COLUMNS]
    existing = {} if replace else {
        r[0]: dict(zip(CLIP_SCORE_COLUMNS, r[1:], strict=True))
        for r in session.execute(select(ClipScore.clip_id, *cols).where(ClipScore.run_id == run_id))}
    defaults = {"cutoff_score": 0.0, "label_quality": None, "suggested_label": None, "label_issue": False,
                "outlier_score": None, "cluster": None, "duplicate_of": None, "neighbors": None,
                "neighbor_sims": None}
    rows = []
    for clip_id in sorted(set(existing) | set(updates)):
        row = dict(defaults)
        row.update(existing.get(clip_id, {}))
        row.update(updates.get(clip_id, {}))
        row.update(run_id=run_id, clip_id=clip_id)
        rows.append(row)
    session.execute(delete(ClipScore).where(ClipScore.run_id == run_id))
    bulk_insert(session, ClipScore, rows)


def project_run(session: Session, run_ref: str | int | None, progress: Progress | None = None,
                seed: int | None = None, neighbors: bool = True) -> ProjectSummary:
    """Compute and store the UMAP projection (and, with ``neighbors``, the 10 nearest clips) of a run."""
    from ml.analysis.neighbors import EXACT_MAX, knn_cosine
    from ml.analysis.projection import umap_2d, warm_up

    progress = progress or _noop
    run = resolve_run(session, run_ref)
    total = 5
    progress("loading embeddings", 0, total)
    clip_ids, x = load_embeddings(session, run)
    n = len(clip_ids)
    # Make sure the clips still exist (a data set re-ingest would cascade them away).
    n_clips = session.scalar(select(Clip.id).where(Clip.id == int(clip_ids[0])))
    if n_clips is None:
        raise Conflict(f"run {run.id}'s clips are gone", hint="re-run `earmark infer` on the current data set")

    progress("compiling UMAP (numba warm-up, once per process)", 1, total)
    warm = warm_up(approximate_knn=n > EXACT_MAX)
    progress("nearest neighbours", 2, total)
    t0 = time.perf_counter()
    graph = knn_cosine(x, k=min(GRAPH_K, max(0, n - 1)), seed=seed)
    t_knn = time.perf_counter() - t0
    progress("UMAP layout", 3, total)
    t0 = time.perf_counter()
    xy = umap_2d(x, knn=graph, seed=seed)
    t_umap = time.perf_counter() - t0

    progress("writing", 4, total)
    t0 = time.perf_counter()
    session.execute(delete(Projection).where(Projection.run_id == run.id))
    bulk_insert(session, Projection, [
        dict(run_id=run.id, clip_id=int(c), x=float(p[0]), y=float(p[1]))
        for c, p in zip(clip_ids.tolist(), xy.tolist(), strict=True)
    ])
    if neighbors:
        nb_ids, nb_sims = neighbor_lists(clip_ids, graph.idx, graph.sims)
        merge_clip_scores(session, run.id, {
            int(c): {"neighbors": ids, "neighbor_sims": sims}
            for c, ids, sims in zip(clip_ids.tolist(), nb_ids, nb_sims, strict=True)
        })
    session.commit()
    t_write = time.perf_counter() - t0
    progress("done", total, total)
    log.info("projected run %s: %d clips, knn %.1fs, umap %.1fs, write %.1fs", run.id, n, t_knn, t_umap, t_write)
    return ProjectSummary(run.id, n, warm, t_knn, t_umap, t_write)
