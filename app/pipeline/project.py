"""``earmark project``: the run's 2-D UMAP cloud and each clip's 10 nearest clips, precomputed.

Reads the run's embeddings, computes one cosine kNN graph (used for the clip page's neighbours and
reused by UMAP and by ``earmark analyze``), lays the cloud out with UMAP, and replaces the run's
Projection rows and its neighbour lists (``app.store.neighbors``, whose only writer this is) in one
transaction. The web app only reads the stored coordinates, so no page ever pays numba's compile time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from app.errors import Conflict
from app.pipeline.common import Progress, no_progress
from app.store import clips as clips_store
from app.store import predictions
from app.store.db import Store
from app.store.models import Run
from app.store.neighbors import N_NEIGHBORS, replace_neighbors
from app.store.projections import replace_projection
from app.store.runs import resolve_run

log = logging.getLogger(__name__)

# The graph keeps a few more neighbours than the page shows, so UMAP can reuse it (it wants 15).
GRAPH_K = 14


@dataclass
class ProjectSummary:
    """What ``project_run`` did, with its timings in seconds."""

    run_id: int
    n_clips: int
    warmup_s: float
    neighbors_s: float
    umap_s: float
    write_s: float


def load_embeddings(session, run: Run) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids (n,), embeddings (n, d) float32) of ``run``, ordered by clip id; a Conflict when it has none."""
    ids, x = predictions.embeddings(session, run.id)
    if not len(ids):
        imported = "import" in (run.config or {})
        raise Conflict(
            f"run {run.id} ({run.name}) has no embeddings",
            detail="it was imported without embeddings" if imported else f"its status is {run.status!r}",
            hint="import the run again with an `embedding` column (the cloud needs one vector per clip)" if imported
            else f"run `earmark infer --run {run.id}` first",
        )
    return ids, x


def neighbor_lists(clip_ids: np.ndarray, idx: np.ndarray, sims: np.ndarray, k: int = N_NEIGHBORS
                   ) -> tuple[list[list[int]], list[list[float]]]:
    """Row-index neighbour graph -> per clip: the ``k`` nearest clip ids and their cosines (4 decimals)."""
    ids_out, sims_out = [], []
    for row_idx, row_sims in zip(idx[:, :k].tolist(), np.round(sims[:, :k], 4).tolist(), strict=True):
        keep = [(int(clip_ids[j]), float(s)) for j, s in zip(row_idx, row_sims, strict=True) if j >= 0]
        ids_out.append([c for c, _ in keep])
        sims_out.append([s for _, s in keep])
    return ids_out, sims_out


def project_run(store: Store, run_ref: str | int | None, progress: Progress | None = None,
                seed: int | None = None, neighbors: bool = True) -> ProjectSummary:
    """Compute and store the UMAP projection (and, with ``neighbors``, the 10 nearest clips) of a run."""
    from ml.analysis.neighbors import EXACT_MAX, knn_cosine
    from ml.analysis.projection import umap_2d, warm_up

    progress = progress or no_progress
    total = 5
    with store.session() as session:
        run = resolve_run(session, run_ref)
        progress("loading embeddings", 0, total)
        clip_ids, x = load_embeddings(session, run)
        # Make sure the clips still exist (a data set re-ingest would cascade them away).
        if not clips_store.existing_clip_ids(session, [int(clip_ids[0])]):
            raise Conflict(f"run {run.id}'s clips are gone", hint="re-run `earmark infer` on the current data set")
        run_id = run.id
        session.commit()  # no read transaction held open through the long computation
    n = len(clip_ids)

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
    with store.session() as session, session.begin():  # ONE transaction: coordinates and neighbours
        replace_projection(session, run_id, clip_ids, xy)
        if neighbors:
            nb_ids, nb_sims = neighbor_lists(clip_ids, graph.idx, graph.sims)
            replace_neighbors(session, run_id, zip(clip_ids.tolist(), nb_ids, nb_sims, strict=True))
    t_write = time.perf_counter() - t0
    progress("done", total, total)
    log.info("projected run %s: %d clips, knn %.1fs, umap %.1fs, write %.1fs", run_id, n, t_knn, t_umap, t_write)
    return ProjectSummary(run_id, n, warm, t_knn, t_umap, t_write)
