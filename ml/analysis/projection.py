"""2-D projection of embeddings for the cloud: PCA to at most 50 dimensions, then UMAP.

umap-learn compiles its kernels with numba the first time they run in a process (the "warm-up",
tens of seconds on a small CPU). ``warm_up()`` pays it on a tiny input so that it can be timed
apart from the real work; the web app never runs any of this, it reads stored coordinates.
"""

from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from ml.analysis.neighbors import KnnGraph, normalize

log = logging.getLogger(__name__)

PCA_MAX_DIMS = 50
N_NEIGHBORS = 15


def pca(x: np.ndarray, max_dims: int = PCA_MAX_DIMS, seed: int = 0) -> np.ndarray:
    """Unit-normalised rows of ``x`` (n, d) reduced to at most ``max_dims`` dimensions (float32)."""
    from sklearn.decomposition import PCA

    xn = normalize(x)
    dims = int(min(max_dims, xn.shape[1], max(1, xn.shape[0] - 1)))
    if dims >= xn.shape[1]:
        return xn
    return PCA(n_components=dims, random_state=seed, svd_solver="randomized").fit_transform(xn).astype(np.float32)


def _epochs(n: int) -> int:
    # umap's own default is 500 epochs below 10k points and 200 above; layouts of large clouds settle
    # well before that, and the epochs are most of the time at 105k.
    return 200 if n <= 10_000 else 120 if n <= 50_000 else 80


def umap_2d(x: np.ndarray, knn: KnnGraph | None = None, n_neighbors: int = N_NEIGHBORS,
            seed: int | None = None, n_epochs: int | None = None) -> np.ndarray:
    """2-D UMAP coordinates (n, 2) float32 of ``x`` (n, d), cosine metric.

    ``knn`` is an optional precomputed cosine kNN graph of the same rows (self excluded); with at
    least ``n_neighbors - 1`` neighbours per row UMAP reuses it instead of searching again.
    ``seed=None`` lets UMAP run its epochs in parallel (a fixed seed forces one thread).
    Fewer than 4 points are placed on a line (UMAP needs a neighbourhood).
    """
    import umap

    n = x.shape[0]
    if n < 4:
        return np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], axis=1)
    xr = pca(x)
    k = int(min(n_neighbors, n - 1))
    kwargs = {}
    if knn is not None and knn.idx.shape[1] >= k - 1 and (knn.idx[:, : k - 1] >= 0).all():
        # UMAP's graph includes each point as its own first neighbour at distance 0.
        self_col = np.arange(n, dtype=np.int64)[:, None]
        idx = np.hstack([self_col, knn.idx[:, : k - 1]]).astype(np.int32)
        dist = np.hstack([np.zeros((n, 1), np.float32), 1.0 - knn.sims[:, : k - 1]]).astype(np.float32)
        kwargs["precomputed_knn"] = (idx, np.maximum(dist, 0.0))
    reducer = umap.UMAP(n_components=2, n_neighbors=k, metric="cosine", min_dist=0.1, random_state=seed,
                        n_epochs=n_epochs or _epochs(n), low_memory=True, init="spectral" if n > 10 else "random",
                        **kwargs)
    with warnings.catch_warnings():
        # Without an NNDescent index UMAP warns that transform() is unavailable; we never call it.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        out = reducer.fit_transform(xr)
    return np.asarray(out, dtype=np.float32)


def warm_up(approximate_knn: bool = True) -> float:
    """Compile UMAP's (and, with ``approximate_knn``, pynndescent's) numba kernels on a tiny input.

    Returns the seconds it took: the one-off cost of the first projection in a process.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    from ml.analysis.neighbors import _approximate, _exact

    if approximate_knn:
        _approximate(normalize(x), 14, seed=None)
    idx, sims = _exact(normalize(x), 14)
    umap_2d(x, knn=KnnGraph(idx, sims), n_epochs=5)
    return time.perf_counter() - t0
