"""Error clusters: HDBSCAN (scikit-learn) over the embeddings, ranked by size x disagreement rate.

Embeddings are L2-normalised (so distances follow cosine) and reduced with PCA before clustering;
density estimates are poor in hundreds of dimensions. Above ``max_fit`` points HDBSCAN is fitted on
a random subsample and every other point takes the cluster of its nearest fitted point, which keeps
105k clips to seconds.

Optionally the space is extended with the clips' signal stats (robustly scaled, ``signal_weight``):
a model that trained on its cut-off clips under their words embeds many of them next to clean
clips of the same word, so in embedding space alone they scatter over the word clusters; with the
signal stats they come out as one group that the model embeds alike *and* that sounds alike at the
edges. (On the demo run: embeddings alone gave 2 clusters, neither the cut-off clips; with the
signal stats the top cluster was 222 clips, all of them planted cut-offs.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ml.analysis.projection import pca

log = logging.getLogger(__name__)

PCA_DIMS = 16
MAX_FIT = 12_000
SIGNAL_WEIGHT = 0.5  # per signal stat, after robust scaling clipped to +-4 IQR; the PCA part has unit RMS norm
# The cut-off finder's verdict (score >= its threshold) joins the space as one more coordinate of this
# size, as far as a signal stat at its clip. On real speech a weak model embeds its cut-off clips among
# the words they were cut from, and the four signal stats alone left them in the one big cluster
# (planted Arabic set, seed 0: 2 clusters, neither of cut-off clips); with the verdict they come out
# as their own clusters (207 and 145 clips, 99-100% cut-offs; bench/real_finders.py).
CUTOFF_WEIGHT = 2.0
# A cluster must disagree with its labels at least this often, and at least MIN_LIFT times as often
# as the rest of the run, to be reported as an error cluster. (On the demo runs the cut-off cluster
# disagrees 33-37% against 6-7% overall, while every ordinary word cluster stays under 9%.)
# Both rates count only the clips the model did not train on (``judged``): a model fits its own
# training clips, cut-off ones included, so on real speech their agreement dilutes a cut-off
# cluster's rate below the bar (see ``rank_clusters``).
MIN_DISAGREE_RATE = 0.2
MIN_LIFT = 2.0
MIN_JUDGED = 5  # a cluster needs this many judged clips for its rate to mean anything


@dataclass
class Cluster:
    """One cluster: its id, member row indices, and how often its clips disagree with their label."""

    cluster_id: int
    members: np.ndarray
    disagree_rate: float
    score: float  # size x disagreement rate = the number of disagreeing clips it holds
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.members.size)


def default_min_cluster_size(n: int) -> int:
    """Half a percent of the clips, at least 5: big enough to mean something, small enough to see a defect."""
    return max(5, int(round(0.005 * n)))


def robust_scale(v: np.ndarray, clip: float = 4.0) -> np.ndarray:
    """Columns of ``v`` (n, f) centred on their median, in units of their interquartile range, clipped."""
    v = np.asarray(v, dtype=np.float64)
    q1, med, q3 = np.percentile(v, [25, 50, 75], axis=0)
    spread = np.maximum(q3 - q1, np.maximum(1e-3, 0.05 * np.abs(med)))
    return np.clip((v - med) / spread, -clip, clip)


def cluster_space(x: np.ndarray, signal: np.ndarray | None = None, signal_weight: float = SIGNAL_WEIGHT,
                  seed: int = 0, cut_off: np.ndarray | None = None) -> np.ndarray:
    """The points HDBSCAN sees: PCA of the normalised embeddings scaled to unit RMS norm, followed by
    the robustly scaled signal stats ``signal`` (n, f) times ``signal_weight`` when given, and by
    ``CUTOFF_WEIGHT`` times the cut-off verdict ``cut_off`` (n,) bool when given."""
    z = pca(x, PCA_DIMS, seed=seed).astype(np.float64)
    z /= max(float(np.sqrt((z**2).sum(axis=1).mean())), 1e-12)
    if signal is not None and signal.size and signal_weight > 0:
        z = np.hstack([z, signal_weight * robust_scale(signal)])
    if cut_off is not None:
        z = np.hstack([z, CUTOFF_WEIGHT * np.asarray(cut_off, dtype=np.float64)[:, None]])
    return z.astype(np.float32)


def cluster_embeddings(x: np.ndarray, min_cluster_size: int | None = None, max_fit: int = MAX_FIT,
                       seed: int = 0, signal: np.ndarray | None = None,
                       signal_weight: float = SIGNAL_WEIGHT, cut_off: np.ndarray | None = None) -> np.ndarray:
    """HDBSCAN cluster id per row of ``x`` (n, d); -1 is noise.

    ``min_cluster_size`` defaults to ``default_min_cluster_size(n)`` and is scaled down with the
    subsample when one is used. ``signal`` (n, f) optionally adds per-clip signal stats to the space,
    ``cut_off`` (n,) bool the cut-off finder's verdict.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.neighbors import NearestNeighbors

    n = x.shape[0]
    if n < 4:
        return np.full(n, -1, dtype=np.int64)
    z = cluster_space(x, signal, signal_weight, seed, cut_off)
    mcs = min_cluster_size or default_min_cluster_size(n)
    rng = np.random.default_rng(seed)
    if n > max_fit:
        fit_idx = np.sort(rng.choice(n, size=max_fit, replace=False))
        mcs = max(5, int(round(mcs * max_fit / n)))
    else:
        fit_idx = np.arange(n)
    model = HDBSCAN(min_cluster_size=min(mcs, fit_idx.size), min_samples=min(10, mcs), copy=True)
    fit_labels = model.fit_predict(z[fit_idx]).astype(np.int64)
    if fit_idx.size == n:
        return fit_labels
    labels = np.empty(n, dtype=np.int64)
    labels[fit_idx] = fit_labels
    rest = np.setdiff1d(np.arange(n), fit_idx, assume_unique=True)
    nn = NearestNeighbors(n_neighbors=1).fit(z[fit_idx])
    _, near = nn.kneighbors(z[rest])
    labels[rest] = fit_labels[near[:, 0]]
    return labels


def rank_clusters(labels: np.ndarray, disagree: np.ndarray, min_rate: float = MIN_DISAGREE_RATE,
                  min_lift: float = MIN_LIFT, judged: np.ndarray | None = None) -> list[Cluster]:
    """Clusters (noise excluded) whose disagreement rate is at least ``min_rate`` and at least
    ``min_lift`` times the rate of the rest of the run, ranked by size x disagreement rate, highest first.

    ``judged`` (bool, per row): the clips whose disagreement is out of sample (held-out splits, and
    training clips with out-of-fold predictions); both rates are taken over those only, and a
    cluster with fewer than ``MIN_JUDGED`` of them is not reported. None: every clip counts.
    """
    labels = np.asarray(labels)
    disagree = np.asarray(disagree, dtype=bool)
    judged = np.ones(disagree.shape, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    overall = float(disagree[judged].mean()) if judged.any() else 0.0
    out = []
    for cid in np.unique(labels):
        if cid < 0:
            continue
        members = np.flatnonzero(labels == cid)
        seen = members[judged[members]]
        if seen.size < min(MIN_JUDGED, members.size):
            continue
        rate = float(disagree[seen].mean())
        # Against the rest of the run, not the whole: a big cluster of errors raises the run's own rate
        # (on the planted Arabic set, 489 cut-off clips at 84% against 38% overall and 33% for the rest).
        rest = judged.copy()
        rest[members] = False
        base = float(disagree[rest].mean()) if rest.any() else overall
        if rate < min_rate or rate < min_lift * base or rate == 0.0:
            continue
        out.append(Cluster(int(cid), members, rate, rate * members.size))
    out.sort(key=lambda c: (-c.score, c.cluster_id))
    return out
