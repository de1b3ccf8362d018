"""Nearest neighbours in embedding space (cosine), and what they reveal: near-duplicates and outliers.

One k-nearest-neighbour graph serves the clip page's "10 nearest clips", the duplicate finder, the
outlier score and (as a precomputed graph) UMAP. Small sets are searched exactly with blocked float32
matrix products; large ones with pynndescent, which is installed with umap-learn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Above this many points the exact O(n^2) search costs more than the approximate one.
EXACT_MAX = 25_000
# Cosine similarity above which two clips count as near-duplicates of each other.
DUPLICATE_SIM = 0.999
# Robust z-score of the kNN distance above which a clip is an outlier.
OUTLIER_Z = 6.0


@dataclass
class KnnGraph:
    """The k nearest other clips of each clip: ``idx`` (n, k) row indices, ``sims`` (n, k) cosine."""

    idx: np.ndarray
    sims: np.ndarray


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _exact(xn: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    import torch

    xt = torch.from_numpy(xn)
    n = xn.shape[0]
    idx = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for s in range(0, n, block):
        e = min(n, s + block)
        block_sims = xt[s:e] @ xt.T  # (b, n)
        block_sims[torch.arange(e - s), torch.arange(s, e)] = -np.inf  # never your own neighbour
        v, i = torch.topk(block_sims, k, dim=1)
        idx[s:e], sims[s:e] = i.numpy(), v.numpy()
    return idx, sims


def _approximate(xn: np.ndarray, k: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    import pynndescent

    index = pynndescent.NNDescent(xn, metric="cosine", n_neighbors=k + 1, random_state=seed,
                                  low_memory=True, compressed=True)
    nn_idx, nn_dist = index.neighbor_graph  # (n, k+1), cosine *distance*, usually self first
    n = xn.shape[0]
    idx = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    rows = np.arange(n)[:, None]
    not_self = nn_idx != rows
    for i in range(n):  # drop self (or, if absent, the farthest) from each row
        keep = nn_idx[i][not_self[i]][:k]
        d = nn_dist[i][not_self[i]][:k]
        if keep.size < k:  # pynndescent marks missing neighbours with -1
            keep = np.pad(keep, (0, k - keep.size), constant_values=-1)
            d = np.pad(d, (0, k - d.size), constant_values=2.0)
        idx[i], sims[i] = keep, 1.0 - d
    return idx, sims


def knn_cosine(x: np.ndarray, k: int = 10, exact_max: int = EXACT_MAX, seed: int | None = 0) -> KnnGraph:
    """The ``k`` most cosine-similar other rows of ``x`` (n, d), best first.

    Exact (blocked matmul) up to ``exact_max`` rows, pynndescent above. ``k`` is clipped to n - 1.
    """
    xn = normalize(x)
    n = xn.shape[0]
    k = max(0, min(k, n - 1))
    if k == 0:
        return KnnGraph(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32))
    if n <= exact_max:
        idx, sims = _exact(xn, k)
    else:
        idx, sims = _approximate(xn, k, seed)
    order = np.argsort(-sims, axis=1, kind="stable")
    return KnnGraph(np.take_along_axis(idx, order, 1), np.clip(np.take_along_axis(sims, order, 1), -1, 1))


def outlier_scores(graph: KnnGraph, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: (score in [0, 1], robust z) from the mean cosine distance to its ``k`` neighbours.

    The z-score is (d - median) / (1.4826 * MAD); the score maps z through 1 - exp(-z / OUTLIER_Z),
    so a clip at the outlier threshold scores about 0.63 and ordinary clips score 0.
    """
    k = min(k, graph.sims.shape[1])
    if k == 0:
        n = graph.sims.shape[0]
        return np.zeros(n, np.float32), np.zeros(n, np.float32)
    dist = 1.0 - graph.sims[:, :k].astype(np.float64).mean(axis=1)
    med = np.median(dist)
    mad = 1.4826 * np.median(np.abs(dist - med))
    # Tight clouds have a tiny MAD; a floor keeps float noise from becoming an "outlier".
    z = (dist - med) / max(mad, 1e-3, 0.05 * med)
    score = 1.0 - np.exp(-np.clip(z, 0, None) / OUTLIER_Z)
    return score.astype(np.float32), z.astype(np.float32)


def duplicate_pairs(graph: KnnGraph, hashes: list[str] | None = None, sim: float = DUPLICATE_SIM
                    ) -> list[tuple[int, int, float, bool]]:
    """Pairs (i, j, cosine, same_content) with i < j that are near-duplicates.

    A pair counts when its cosine is at least ``sim`` in the kNN graph, or when both clips have the
    same content hash (identical decoded audio), found even if they are not in each other's lists.
    ``same_content`` says whether the content hash confirms it.
    """
    pairs: dict[tuple[int, int], tuple[float, bool]] = {}
    rows, cols = np.nonzero(graph.sims >= sim)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        j = int(graph.idx[r, c])
        if j < 0 or j == r:
            continue
        a, b = (r, j) if r < j else (j, r)
        same = bool(hashes is not None and hashes[a] == hashes[b])
        pairs[(a, b)] = (float(graph.sims[r, c]), same)
    if hashes is not None:
        groups: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            if h:
                groups.setdefault(h, []).append(i)
        for members in groups.values():
            for a in members[1:]:  # chain each copy to the group's first clip
                key = (members[0], a)
                if key not in pairs:
                    pairs[key] = (1.0, True)
                else:
                    pairs[key] = (pairs[key][0], True)
    return [(a, b, s, same) for (a, b), (s, same) in sorted(pairs.items())]


def duplicate_of(n: int, pairs: list[tuple[int, int, float, bool]]) -> np.ndarray:
    """Per row: the index of the earliest row it duplicates (union-find over ``pairs``), else -1."""
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    for a, b, _, _ in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)]) if n else np.zeros(0, int)
    out = np.where(roots != np.arange(n), roots, -1)
    return out.astype(np.int64)


def notable_duplicates(pairs: list[tuple[int, int, float, bool]], splits, labels
                       ) -> list[tuple[int, int, float, bool]]:
    """The pairs worth reporting: identical audio anywhere, or near-identical embeddings that cross
    splits (leakage) or carry different labels (one of them is likely wrong). Two takes of the same
    word by the same speaker in one split embed almost alike and are no problem."""
    return [p for p in pairs if p[3] or splits[p[0]] != splits[p[1]] or labels[p[0]] != labels[p[1]]]
