"""The model-side finders judge a model by clips it did not train on (issue 14).

A model fits its training clips, cut-off ones included, so on real speech a cluster of cut-off
clips disagrees with its labels only out of sample: on validation and test clips, and on training
clips through their out-of-fold predictions (``earmark train --folds K``).
"""

from __future__ import annotations

import numpy as np

from app.pipeline.analyze import out_of_sample
from app.store.predictions import RunData
from ml.analysis.clusters import rank_clusters

CLASSES = ["left", "right", "up"]


def _run_data(splits: list[str], labels: list[str], preds: list[str], oof: np.ndarray | None) -> RunData:
    n = len(splits)
    k = len(CLASSES)
    probs = np.zeros((n, k), np.float32)
    probs[np.arange(n), [CLASSES.index(p) for p in preds]] = 0.9
    return RunData(
        clip_ids=np.arange(1, n + 1), paths=[f"c{i}.wav" for i in range(n)], splits=np.array(splits),
        labels=np.array(labels), preds=np.array(preds), agree=np.array(labels) == np.array(preds),
        confidence=np.full(n, 0.9, np.float32), probs=probs, oof=oof, emb=np.zeros((n, 4), np.float32),
        hashes=[str(i) for i in range(n)], signal={}, duration_s=np.ones(n), cutoff_signal=np.zeros(n, bool))


def test_out_of_sample_takes_out_of_fold_predictions_for_training_clips():
    splits = ["train", "train", "train", "validation", "test"]
    labels = ["left", "right", "up", "left", "up"]
    preds = ["left", "right", "up", "right", "up"]  # the model fits every training clip
    oof = np.full((5, 3), np.nan, np.float32)
    oof[0] = [0.1, 0.7, 0.2]  # out of fold, the first training clip is 'right'
    oof[1] = [0.2, 0.6, 0.2]  # ... the second is still 'right'
    pred, agree, conf, judged = out_of_sample(_run_data(splits, labels, preds, oof), CLASSES)
    assert pred.tolist() == ["right", "right", "up", "right", "up"]
    assert agree.tolist() == [False, True, True, False, True]
    assert np.allclose(conf, [0.7, 0.6, 0.9, 0.9, 0.9])
    assert judged.tolist() == [True, True, False, True, True]  # the third has no out-of-fold row


def test_out_of_sample_without_folds_judges_held_out_clips_or_else_all():
    data = _run_data(["train", "validation"], ["left", "up"], ["left", "right"], None)
    pred, agree, _, judged = out_of_sample(data, CLASSES)
    assert pred.tolist() == ["left", "right"] and agree.tolist() == [True, False]
    assert judged.tolist() == [False, True]
    only_train = _run_data(["train", "train"], ["left", "up"], ["left", "right"], None)
    assert out_of_sample(only_train, CLASSES)[3].tolist() == [True, True]


def test_error_cluster_rate_counts_only_clips_the_model_did_not_train_on():
    """A cut-off cluster of 100 clips: its 60 training clips are fitted (agree), 16 of its 40 held-out
    clips disagree (40%); the rest of the run disagrees 8% out of sample. Over all its clips the
    cluster disagrees 16%, under the 20% bar; out of sample it is an error cluster."""
    rng = np.random.default_rng(0)
    n = 1000
    labels = np.repeat(np.arange(10), 100)  # cluster 0 is the cut-off group
    held = np.zeros(n, bool)
    held[rng.permutation(n)[:400]] = True
    held[:100] = np.arange(100) < 40
    disagree = np.zeros(n, bool)
    disagree[:16] = True
    rest = np.flatnonzero(held[100:]) + 100
    disagree[rng.choice(rest, int(0.08 * rest.size), replace=False)] = True
    assert rank_clusters(labels, disagree) == []
    ranked = rank_clusters(labels, disagree, judged=held)
    assert [c.cluster_id for c in ranked] == [0]
    assert ranked[0].size == 100 and abs(ranked[0].disagree_rate - 0.4) < 1e-9
    # Too few judged clips in a cluster: its rate means nothing, it is not reported.
    few = held.copy()
    few[4:100] = False
    assert rank_clusters(labels, disagree, judged=few) == []
