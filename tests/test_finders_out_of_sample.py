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


def test_cut_off_clips_of_real_speech_form_their_own_error_cluster():
    """Real Arabic clips (8 words x 30 speakers), 48 of them cut mid-word by ``ml.plant`` (both shapes,
    loud and soft cuts). As the weak models of the planted Arabic runs do, the embedding puts each clip
    among its word's clips, the cut ones included, and gets 80% of the cut ones wrong out of sample.
    With the cut-off verdict in the clustering space they form an error cluster of their own, ranked
    first; with the signal stats alone they stay in the word clusters."""
    from pathlib import Path

    from ml.analysis.clusters import cluster_embeddings
    from ml.analysis.cutoff import CUTOFF_THRESHOLD, cutoff_scores
    from ml.analysis.signal import signal_stats
    from ml.audio import read_wav
    from ml.plant import plant_cutoff, word_span
    from tests.conftest import skip_or_fail

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "arabic-speech-commands" / "dataset"
    if not root.is_dir():
        skip_or_fail(f"real audio not found at {root} (see ../shared/data/README.md)")
    words = ["backward", "digit", "down", "five", "left", "open", "record", "send"]
    rng = np.random.default_rng(3)
    stats, word_of, cut = [], [], []
    for w, word in enumerate(words):
        for j, path in enumerate(sorted((root / word).glob("*_NO_01.flac"))[:30]):
            x, sr = read_wav(path)
            span = word_span(x, sr)
            is_cut = j % 5 == 0 and span is not None
            if is_cut:
                x = plant_cutoff(x, sr, span, rng, x.size, want=("loud", "soft")[j % 2],
                                 shape=("short_file", "late_start")[(j // 5) % 2])[0]
            stats.append(signal_stats(x, sr))
            word_of.append(w)
            cut.append(is_cut)
    cut, word_of = np.array(cut), np.array(word_of)
    cols = {k: np.array([getattr(s, k) for s in stats]) for k in
            ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "duration_s", "cutoff_signal", "rms_dbfs")}
    verdict = cutoff_scores(cols["end_energy_db"], cols["trail_silence_ms"], cols["lead_silence_ms"],
                            cols["duration_s"], cols["cutoff_signal"]).score >= CUTOFF_THRESHOLD
    assert verdict[cut].mean() >= 0.85 and verdict[~cut].mean() <= 0.05
    n = cut.size
    centres = rng.normal(0, 1, (len(words), 32)) * 3
    emb = (centres[word_of] + rng.normal(0, 0.6, (n, 32))).astype(np.float32)
    disagree = np.zeros(n, bool)
    disagree[np.flatnonzero(cut)[rng.permutation(int(cut.sum()))[: int(0.8 * cut.sum())]]] = True
    disagree[rng.choice(np.flatnonzero(~cut), int(0.1 * (~cut).sum()), replace=False)] = True
    signal = np.stack([cols[k] for k in ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "rms_dbfs")], axis=1)

    def cut_share_of_top(labels):
        ranked = rank_clusters(labels, disagree)
        return (float(cut[ranked[0].members].mean()), ranked[0].members) if ranked else (0.0, np.zeros(0, int))

    share, members = cut_share_of_top(cluster_embeddings(emb, min_cluster_size=15, signal=signal, cut_off=verdict))
    assert share >= 0.9 and np.isin(np.flatnonzero(cut), members).mean() >= 0.8, (share, members.size)
    share_without, _ = cut_share_of_top(cluster_embeddings(emb, min_cluster_size=15, signal=signal))
    assert share_without < 0.5
    # A weak model (the 8-epoch Arabic runs): 35% wrong on the clean clips, 90% on the cut ones. The run's
    # own rate is then 46%, and no cluster can be twice that; against the rest of the run it stands out.
    disagree[:] = False
    disagree[np.flatnonzero(cut)[rng.permutation(int(cut.sum()))[: int(0.9 * cut.sum())]]] = True
    disagree[rng.choice(np.flatnonzero(~cut), int(0.35 * (~cut).sum()), replace=False)] = True
    share, members = cut_share_of_top(cluster_embeddings(emb, min_cluster_size=15, signal=signal, cut_off=verdict))
    assert share >= 0.9 and np.isin(np.flatnonzero(cut), members).mean() >= 0.8, (share, members.size)


def test_real_words_under_way_at_the_first_sample_are_cut_off_when_the_model_is_unsure():
    """Real Arabic clips whose first 20-50 % of the word is cut away (``ml.plant``): sound from the
    first frame is cut-off evidence that reaches the threshold when the model is unsure of the clip,
    not when it is confident and right; the clean originals stay under either way."""
    from pathlib import Path

    from ml.analysis.cutoff import CUTOFF_THRESHOLD, cutoff_scores
    from ml.analysis.signal import signal_stats
    from ml.audio import read_wav
    from ml.plant import _start_cutoff, word_span
    from tests.conftest import skip_or_fail

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "arabic-speech-commands" / "dataset"
    if not root.is_dir():
        skip_or_fail(f"real audio not found at {root} (see ../shared/data/README.md)")
    rng = np.random.default_rng(1)
    clean, cut = [], []
    for word in ("open", "record", "send", "left", "digit", "five"):
        for path in sorted((root / word).glob("*_NO_02.flac"))[:4]:
            x, sr = read_wav(path)
            span = word_span(x, sr)
            if span is None:
                continue
            clean.append(signal_stats(x, sr))
            cut.append(signal_stats(_start_cutoff(x, sr, span, rng, x.size)[0], sr))
    assert len(cut) >= 20

    def flagged(stats, confidence):
        cols = {k: np.array([getattr(s, k) for s in stats]) for k in
                ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "duration_s", "cutoff_signal")}
        n = len(stats)
        return cutoff_scores(cols["end_energy_db"], cols["trail_silence_ms"], cols["lead_silence_ms"],
                             cols["duration_s"], cols["cutoff_signal"], agree=np.ones(n, bool),
                             confidence=np.full(n, confidence)).score >= CUTOFF_THRESHOLD

    assert flagged(cut, 0.5).mean() >= 0.6  # right but unsure: most start cut-offs are found
    assert flagged(cut, 0.95).mean() <= 0.1  # confident and right: the model vouches for the clip
    # One clean original starts with sound at its first frame too: only an unsure model lets it through.
    assert flagged(clean, 0.5).sum() <= 1 and not flagged(clean, 0.95).any()
