"""Label issues by confident learning (cleanlab) on probabilities the model did not train on,
confirmed by each clip's neighbourhood in embedding space.

The caller passes out-of-sample probabilities only: k-fold out-of-fold probabilities for the
training split, the ordinary ones for validation and test. Given labels are indices into the run's
classes. Classes that no clip is filed under are dropped before cleanlab sees the matrix (cleanlab
needs every class to have examples) and the rows renormalised.

With the labels of each clip's nearest clips (``neighbor_labels``), a cleanlab candidate counts as
an issue only when its neighbourhood agrees: none of its 10 nearest clips is filed under its label
and most share one other label. A model that is merely unsure (or weak: a few epochs on a CPU)
names many wrong classes; a clip filed under the wrong word sits among clips of its real word. On
the demo data set with a 5-epoch 2-fold run this lifted precision from 0.08 to 0.72 at recall 0.71.
The suggested label then blends the model (``MODEL_SHARE``) with the neighbours' vote, which named
the true word for 93% of the planted mislabels there (the model's argmax alone: 50%).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

MODEL_SHARE = 0.3  # weight of the model's probabilities against the neighbours' vote in the suggestion
VOTE_SMOOTHING = 0.1  # pseudo-count per class in the neighbours' vote
MIN_MAJORITY = 0.5  # share of neighbours that must agree on one other label to confirm an issue
MAX_GIVEN_PROB = 0.05  # the model gives the filed label at most this ...
MIN_OTHER_PROB = 0.6  # ... while giving another class at least this: an issue even if cleanlab passes it


@dataclass
class LabelIssues:
    """Per clip: ``issue`` (bool), ``quality`` in [0, 1] (low = likely wrong), ``suggested`` class index."""

    issue: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray


def neighbor_vote(neighbor_labels: np.ndarray, n_classes: int, smoothing: float = VOTE_SMOOTHING
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(vote counts (n, k), smoothed vote probabilities (n, k)) from neighbour label indices (n, m); -1 skipped."""
    nl = np.asarray(neighbor_labels, dtype=np.int64)
    n = nl.shape[0]
    counts = np.zeros((n, n_classes), dtype=np.float64)
    rows, cols = np.nonzero(nl >= 0)
    np.add.at(counts, (rows, nl[rows, cols]), 1.0)
    probs = (counts + smoothing) / (counts.sum(axis=1, keepdims=True) + smoothing * n_classes)
    return counts, probs


def find_label_issues(labels: np.ndarray, probs: np.ndarray, seed: int = 0,
                      neighbor_labels: np.ndarray | None = None) -> LabelIssues:
    """Confident learning over ``probs`` (n, k) and given ``labels`` (n,) in [0, k).

    Uses ``cleanlab.filter.find_label_issues`` (prune by noise rate) and
    ``cleanlab.rank.get_label_quality_scores`` (self-confidence), plus clips the model confidently
    puts in another class (``MAX_GIVEN_PROB``, ``MIN_OTHER_PROB``). The suggested label is the
    argmax of the probabilities. With fewer than two classes present nothing can be judged and no
    clip is an issue. ``neighbor_labels`` (n, m): the label indices of each clip's m nearest clips
    (-1 where missing); when given, issues must be confirmed by them (see the module doc) and the
    suggestion blends in their vote.
    """
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n = labels.shape[0]
    suggested = probs.argmax(axis=1) if n else np.zeros(0, np.int64)
    issue = np.zeros(n, dtype=bool)
    quality = np.ones(n, dtype=np.float64)
    present = np.unique(labels)
    if n == 0 or present.size < 2:
        return LabelIssues(issue, quality.astype(np.float32), suggested)

    # Keep only the classes clips are filed under; remap labels to 0..m-1.
    sub = probs[:, present]
    sub = sub / np.maximum(sub.sum(axis=1, keepdims=True), 1e-12)
    remap = np.full(probs.shape[1], -1, dtype=np.int64)
    remap[present] = np.arange(present.size)
    y = remap[labels]

    np.random.seed(seed)  # cleanlab breaks ties with numpy's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about small classes; the caller reports counts
        quality = get_label_quality_scores(y, sub, method="self_confidence")
        try:
            issue = cl_find(y, sub, filter_by="prune_by_noise_rate", n_jobs=1)
        except (ValueError, IndexError) as exc:  # degenerate joint estimates on tiny sets
            log.warning("cleanlab prune_by_noise_rate failed (%s); using confident-joint off-diagonals", exc)
            issue = cl_find(y, sub, filter_by="confident_learning", n_jobs=1)
    # Confident learning's per-class thresholds are class means, so a wrong clip whose probability
    # sits just under its class's mean escapes it; a model that gives the filed label almost nothing
    # while confidently naming another class is an issue too.
    p_given = sub[np.arange(n), y]
    p_top = sub.max(axis=1)
    confident_other = (p_given <= MAX_GIVEN_PROB) & (p_top >= MIN_OTHER_PROB)
    issue = np.asarray(issue, dtype=bool) | confident_other
    if neighbor_labels is not None and np.asarray(neighbor_labels).size:
        counts, vote = neighbor_vote(neighbor_labels, probs.shape[1])
        total = np.maximum(counts.sum(axis=1), 1.0)
        same = counts[np.arange(n), labels] / total
        majority = counts.argmax(axis=1)
        confirmed = (same == 0) & (counts.max(axis=1) / total >= MIN_MAJORITY) & (majority != labels)
        issue &= confirmed
        suggested = (MODEL_SHARE * probs + (1 - MODEL_SHARE) * vote).argmax(axis=1)
    # An issue whose suggestion is its own label is not actionable; argmax over all classes may pick
    # a class nobody is filed under, which is a useful suggestion (e.g. _unknown_), so keep it.
    issue = np.asarray(issue, dtype=bool) & (suggested != labels)
    return LabelIssues(issue, np.asarray(quality, dtype=np.float32), suggested.astype(np.int64))
