"""Each detector of ``ml.analysis`` on small constructed cases: a word cut at the end (real WAVs), a
clip filed under the wrong word, a pair of identical clips, one obvious outlier, an error cluster."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ml.analysis.clusters import cluster_embeddings, rank_clusters
from ml.analysis.cutoff import CUTOFF_THRESHOLD, cutoff_scores
from ml.analysis.describe import describe_group
from ml.analysis.label_issues import find_label_issues
from ml.analysis.neighbors import OUTLIER_Z, duplicate_of, duplicate_pairs, knn_cosine, outlier_scores
from ml.analysis.signal import signal_stats
from tests.conftest import tone, write_wav


def _word(start: float, stop: float, seed: int) -> np.ndarray:
    """A "word": a voiced-like harmonic burst with a little background noise, 1 s at 16 kHz."""
    rng = np.random.default_rng(seed)
    x = tone(1.0, 180, start=start, stop=stop, amp=0.25) + tone(1.0, 360, start=start, stop=stop, amp=0.1)
    return (x + rng.normal(0, 0.002, x.size)).astype(np.float32)


def _stats(paths):
    cols = {k: [] for k in ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "duration_s", "cutoff_signal")}
    for p in paths:
        x, sr = sf.read(str(p), dtype="float32")
        s = signal_stats(x, sr)
        for k in cols:
            cols[k].append(getattr(s, k))
    return {k: np.asarray(v) for k, v in cols.items()}


def test_cutoff_score_flags_a_word_cut_at_the_end(tmp_path):
    clean = [write_wav(tmp_path / f"clean{i}.wav", _word(0.2 + 0.05 * i, 0.65 + 0.05 * i, i)) for i in range(4)]
    cut = write_wav(tmp_path / "cut.wav", _word(0.45, 1.0, 9))  # the word runs into the clip's end
    late = write_wav(tmp_path / "late.wav", _word(0.9, 1.0, 10))  # starts 100 ms before the end
    st = _stats([*clean, cut, late])
    agree = np.array([1, 1, 1, 1, 1, 0], dtype=bool)
    conf = np.array([0.95, 0.9, 0.97, 0.92, 0.9, 0.4])
    ev = cutoff_scores(st["end_energy_db"], st["trail_silence_ms"], st["lead_silence_ms"], st["duration_s"],
                       st["cutoff_signal"], agree=agree, confidence=conf)
    assert ev.score.shape == (6,)
    assert ((ev.score >= 0) & (ev.score <= 1)).all()
    assert (ev.score[:4] < CUTOFF_THRESHOLD).all(), ev.score
    assert ev.score[4] >= CUTOFF_THRESHOLD and ev.score[5] >= CUTOFF_THRESHOLD, ev.score
    # Model evidence raises the score of a clip whose signal already says cut off.
    unsure = cutoff_scores(st["end_energy_db"][4:5], st["trail_silence_ms"][4:5], st["lead_silence_ms"][4:5],
                           st["duration_s"][4:5], st["cutoff_signal"][4:5], agree=np.array([False]),
                           confidence=np.array([0.3]))
    assert unsure.score[0] > ev.score[4]


def test_cutoff_score_ignores_disagreement_without_signal_evidence():
    n = 3
    ev = cutoff_scores(np.full(n, -60.0), np.full(n, 300.0), np.full(n, 200.0), np.ones(n), np.zeros(n, bool),
                       agree=np.zeros(n, bool), confidence=np.full(n, 0.2))
    assert (ev.score == 0).all()


def _confident_probs(true: np.ndarray, k: int, rng) -> np.ndarray:
    logits = rng.normal(0, 0.5, (true.size, k))
    logits[np.arange(true.size), true] += 4.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def test_label_issues_find_a_clip_filed_under_the_wrong_word():
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(4), 25)
    given = true.copy()
    given[7] = 2  # a word-0 clip filed under word 2
    probs = _confident_probs(true, 4, rng)
    li = find_label_issues(given, probs)
    assert li.issue[7]
    assert li.suggested[7] == 0
    assert li.issue.sum() <= 2
    assert li.quality[7] == li.quality.min()


def test_label_issues_handle_classes_nobody_is_filed_under():
    rng = np.random.default_rng(1)
    true = np.repeat(np.array([0, 1, 3]), 20)  # class 2 exists in the model, not in the labels
    given = true.copy()
    given[3] = 1
    li = find_label_issues(given, _confident_probs(true, 4, rng))
    assert li.issue[3] and li.suggested[3] == 0
    single = find_label_issues(np.zeros(5, int), _confident_probs(np.zeros(5, int), 3, rng))
    assert not single.issue.any()


def _blobs(n_per: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (k, d)) * 4
    lab = np.repeat(np.arange(k), n_per)
    return (centers[lab] + rng.normal(0, 0.5, (lab.size, d))).astype(np.float32), lab


def test_duplicates_find_a_pair_of_identical_clips():
    x, _ = _blobs(20, 3, 16, 2)
    x[41] = x[5]  # the same audio twice gives the same embedding
    hashes = [f"h{i}" for i in range(len(x))]
    hashes[41] = hashes[5]
    g = knn_cosine(x, k=5)
    pairs = duplicate_pairs(g, hashes)
    assert pairs == [(5, 41, pairs[0][2], True)]
    assert pairs[0][2] > 0.999
    dup = duplicate_of(len(x), pairs)
    assert dup[41] == 5 and (np.delete(dup, 41) == -1).all()
    # The content hash alone confirms copies even when the embeddings differ a little.
    hashes2 = [f"h{i}" for i in range(len(x))]
    hashes2[10] = hashes2[50]
    assert (10, 50, 1.0, True) in duplicate_pairs(knn_cosine(x, k=5), hashes2)


def test_outliers_rank_one_obvious_outlier_first():
    x, _ = _blobs(30, 4, 16, 3)
    x[17] = -x[17] * 3 + 20  # far from every blob
    g = knn_cosine(x, k=10)
    score, z = outlier_scores(g)
    assert int(np.argmax(z)) == 17
    assert z[17] >= OUTLIER_Z
    assert (np.delete(z, 17) < OUTLIER_Z).all()
    assert 0 <= score.min() and score.max() <= 1 and score[17] == score.max()


@pytest.mark.slow  # pynndescent compiles its numba kernels on first use (~35 s on 2 idle cores)
def test_knn_excludes_self_and_matches_exact_search_when_approximate():
    x, _ = _blobs(150, 4, 8, 4)
    exact = knn_cosine(x, k=5)
    assert not (exact.idx == np.arange(len(x))[:, None]).any()
    approx = knn_cosine(x, k=5, exact_max=10, seed=0)  # force pynndescent
    assert not (approx.idx == np.arange(len(x))[:, None]).any()
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact.idx, approx.idx, strict=True)])
    assert overlap > 0.9


def test_error_cluster_ranks_the_disagreeing_blob_first_and_says_cut_off():
    x, lab = _blobs(60, 4, 16, 5)
    n = len(x)
    clusters = cluster_embeddings(x, min_cluster_size=20)
    assert len(set(clusters.tolist()) - {-1}) == 4
    agree = np.ones(n, bool)
    bad = lab == 2
    agree[bad] = np.arange(n)[bad] % 5 == 0  # blob 2: 80% disagree
    agree[(lab == 0) & (np.arange(n) % 10 == 0)] = False  # blob 0: 10% disagree
    ranked = rank_clusters(clusters, ~agree)
    assert len(ranked) == 1
    top = ranked[0]
    assert set(top.members.tolist()) == set(np.flatnonzero(bad).tolist())
    end_db = np.where(bad, -3.0, -55.0)
    signal = {"end_energy_db": end_db, "trail_silence_ms": np.where(bad, 0.0, 250.0),
              "lead_silence_ms": np.full(n, 200.0), "rms_dbfs": np.full(n, -25.0)}
    labels = np.array(["yes", "no", "up", "down"])[lab]
    preds = np.where(agree, labels, "off")
    d = describe_group(top.members, labels, preds, agree, signal, np.where(bad, 0.8, 0.0), 0.5,
                       np.zeros(n, bool), labels)
    assert d.reason == "cutoff"
    assert "60 clips" in d.text and "80% disagree" in d.text and "energy still high at the end" in d.text
    assert "likely cut off" in d.text and "'up'" in d.text


def test_rank_clusters_needs_a_rate_well_above_the_runs():
    # 10 clusters of 100 clips; cluster 0 disagrees 33% of the time, the others 4% (a good model).
    labels = np.repeat(np.arange(10), 100)
    disagree = np.zeros(1000, bool)
    disagree[:33] = True
    for c in range(1, 10):
        disagree[c * 100: c * 100 + 4] = True
    ranked = rank_clusters(labels, disagree)
    assert [c.cluster_id for c in ranked] == [0] and ranked[0].score == pytest.approx(33.0)
    # The same cluster in a run that disagrees 20% of the time everywhere is no pocket of errors.
    disagree[100:] = (np.arange(900) % 5) == 0
    assert rank_clusters(labels, disagree) == []
    assert rank_clusters(labels, np.zeros(1000, bool)) == []


def test_cluster_embeddings_subsample_assigns_every_point():
    x, lab = _blobs(400, 3, 8, 6)
    clusters = cluster_embeddings(x, min_cluster_size=30, max_fit=300)
    assert clusters.shape == (1200,)
    # Each blob ends up (almost entirely) in one cluster.
    for b in range(3):
        vals, counts = np.unique(clusters[lab == b], return_counts=True)
        assert counts.max() / counts.sum() > 0.95 and vals[np.argmax(counts)] >= 0


def test_cutoff_score_does_not_take_steady_noise_for_a_cut_word(tmp_path):
    rng = np.random.default_rng(11)
    noise = write_wav(tmp_path / "noise.wav", (0.2 * rng.standard_normal(16000)).astype(np.float32))
    hum = write_wav(tmp_path / "hum.wav", tone(1.0, 50, amp=0.3) + tone(1.0, 100, amp=0.15))
    st = _stats([noise, hum])
    ev = cutoff_scores(st["end_energy_db"], st["trail_silence_ms"], st["lead_silence_ms"], st["duration_s"],
                       st["cutoff_signal"], agree=np.zeros(2, bool), confidence=np.full(2, 0.3))
    assert (ev.score < CUTOFF_THRESHOLD).all(), ev.score


def test_notable_duplicates_skip_same_speaker_takes_in_one_split():
    from ml.analysis.neighbors import notable_duplicates

    pairs = [(0, 1, 0.9995, False), (2, 3, 0.9995, False), (4, 5, 0.9995, False), (6, 7, 1.0, True)]
    splits = ["train", "train", "train", "test", "train", "train", "train", "train"]
    labels = ["yes", "yes", "no", "no", "up", "off", "go", "go"]
    assert notable_duplicates(pairs, splits, labels) == pairs[1:]


def test_cutoff_finding_leaves_out_clips_already_filed_as_cut_off():
    from ml.analysis.describe import Evidence, cutoff_finding

    n = 6
    ev = Evidence(labels=np.array(["a", "a", "_cutoff_", "b", "b", "a"]), preds=np.array(["a"] * n),
                  agree=np.ones(n, bool), splits=np.array(["train"] * n), signal={},
                  cutoff_score=np.array([0.9, 0.1, 0.9, 0.8, 0.2, 0.1]), cutoff_threshold=CUTOFF_THRESHOLD,
                  label_issue=np.zeros(n, bool), label_quality=np.ones(n), suggested=np.array(["a"] * n),
                  clusters=np.zeros(n, int), outlier_score=np.zeros(n), outlier_z=np.zeros(n), duplicate_pairs=[])
    f = cutoff_finding(ev)
    assert f.members.tolist() == [0, 3] and f.reason == "cutoff"
    assert "1 more already filed under _cutoff_" in f.description


def test_describe_calls_a_group_with_sound_throughout_noise_only():
    n = 100
    members = np.arange(10)
    lead = np.where(np.arange(n) < 10, 0.0, 200.0)
    trail = np.where(np.arange(n) < 10, 10.0, 300.0)
    signal = {"lead_silence_ms": lead, "trail_silence_ms": trail, "end_energy_db": np.full(n, -40.0),
              "rms_dbfs": np.where(np.arange(n) < 10, -50.0, -25.0)}
    labels = np.array(["yes", "no"] * 50)
    d = describe_group(members, labels, np.full(n, "up"), np.arange(n) >= 10, signal, np.zeros(n), 0.5,
                       np.zeros(n, bool), labels)
    assert d.reason == "noise_only" and "likely noise only" in d.text and "100% disagree" in d.text


def test_describe_calls_mostly_noise_with_some_cut_words_noise_only():
    # 45 noise-only clips (sound at both edges) clustered with 27 cut words (late start, loud end).
    n = 400
    idx = np.arange(n)
    noise, cut = idx < 45, (idx >= 45) & (idx < 72)
    members = idx[:72]
    signal = {"lead_silence_ms": np.select([noise, cut], [0.0, 900.0], 200.0),
              "trail_silence_ms": np.select([noise, cut], [0.0, 0.0], 300.0),
              "end_energy_db": np.select([noise, cut], [-3.0, -2.0], -40.0),
              "rms_dbfs": np.full(n, -30.0)}
    labels = np.array(["yes", "no"] * 200)
    cut_score = np.where(cut, 0.9, np.where(noise, 0.55, 0.0))  # noise's loud edges score too
    d = describe_group(members, labels, np.full(n, "up"), idx >= 72, signal, cut_score, 0.5,
                       np.zeros(n, bool), labels)
    assert d.reason == "noise_only", d.text
    assert "62% have sound from the first to the last frame" in d.text and "38% look cut off" in d.text
    d = describe_group(idx[27:72], labels, np.full(n, "up"), idx >= 72, signal, cut_score, 0.5,
                       np.zeros(n, bool), labels)
    assert d.reason == "cutoff", "with the cut words in the majority it is a cut-off group"


def test_describe_never_names_one_word_as_label_and_prediction_of_a_group_that_disagrees():
    """Arabic seed 1 (bench/real_finders.py): a cluster of silent clips, filed under many words, which the
    model calls 'two' out of sample; those filed as 'two' are in training and their fold models named
    other words. Every clip disagrees, yet the title read "mostly 'two' predicted as 'two'"."""
    labels = np.array(["two"] * 3 + ["one", "three", "four", "five", "six", "seven", "eight"] + ["nine"] * 30)
    preds = np.array(["six", "nine", "one"] + ["two"] * 7 + ["nine"] * 30)
    n, members = labels.size, np.arange(10)
    agree = labels == preds
    assert not agree[members].any()
    signal = {"lead_silence_ms": np.full(n, 200.0), "trail_silence_ms": np.full(n, 300.0),
              "end_energy_db": np.full(n, -40.0), "rms_dbfs": np.full(n, -25.0)}
    d = describe_group(members, labels, preds, agree, signal, np.zeros(n), 0.5, np.zeros(n, bool), labels)
    assert d.title.startswith("10 clips, 100% disagree"), d.title
    assert "'two' predicted as 'two'" not in d.title and "mostly 'two'" not in d.title, d.title
    assert d.title.endswith("various words predicted as 'two'"), d.title
    # Filed under many words and predicted as many (fold models each call silence another word): the
    # title says what sets the clips apart instead.
    preds3 = np.array(["one", "ok", "left", "one", "ok"] * 2 + ["nine"] * 30)
    quiet = {**signal, "rms_dbfs": np.where(np.arange(n) < 10, -120.0, -25.0)}
    d = describe_group(members, labels, preds3, labels == preds3, quiet, np.zeros(n), 0.5, np.zeros(n, bool), labels)
    assert d.title.endswith("disagree: various words, quieter than usual"), d.title
    # A group that is mostly one word, confused with one other word, says so.
    labels2 = np.where(np.arange(n) < 8, "six", "one")
    d = describe_group(members, labels2, np.full(n, "seven"), np.zeros(n, bool), signal, np.zeros(n), 0.5,
                       np.zeros(n, bool), labels2)
    assert d.title.endswith("mostly 'six' predicted as 'seven'"), d.title


def test_label_issues_need_the_neighbourhood_to_confirm_and_it_picks_the_suggestion():
    rng = np.random.default_rng(2)
    true = np.repeat(np.arange(4), 25)
    given = true.copy()
    given[7] = 2  # filed under the wrong word: its neighbours are word-0 clips
    probs = _confident_probs(true, 4, rng)
    probs[7] = [0.97, 0.01, 0.01, 0.01]
    probs[30] = [0.02, 0.02, 0.02, 0.94]  # the model says 3 for a word-1 clip ...
    neighbours = np.stack([np.where(true == true[i])[0][:10] for i in range(true.size)])
    neighbours[7] = np.arange(10, 20)  # word-0 clips (never itself)
    labels_of = given[neighbours]
    li = find_label_issues(given, probs, neighbor_labels=labels_of)
    assert li.issue[7] and li.suggested[7] == 0
    assert not li.issue[30]  # ... but its neighbours are all filed as 1: not confirmed
    assert li.issue.sum() == 1


def test_cutoff_signal_flags_real_words_cut_at_a_loud_part_and_not_the_clean_clips():
    """Real Speech Commands clips, each cut after 10-35 % of its word at a loud part, in both shapes."""
    from pathlib import Path

    from ml.audio import read_wav
    from ml.plant import plant_cutoff, word_span
    from tests.conftest import skip_or_fail

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech-commands-v0.01-sample"
    if not root.is_dir():
        skip_or_fail(f"real audio not found at {root} (see ../shared/data/README.md)")
    rels = ("house/2f813234_nohash_1.wav", "seven/51055bda_nohash_4.wav", "zero/563aa4e6_nohash_2.wav",
            "yes/439c84f4_nohash_1.wav", "bed/7ff085e1_nohash_0.wav")
    waves, rng = [], np.random.default_rng(5)
    for rel in rels:
        x, sr = read_wav(root / rel)
        waves.append(x)
        for shape in ("short_file", "late_start"):
            waves.append(plant_cutoff(x, sr, word_span(x, sr), rng, x.size, want="loud", shape=shape)[0])
    st = [signal_stats(x, 16000) for x in waves]
    cols = {k: np.array([getattr(s, k) for s in st]) for k in
            ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "duration_s", "cutoff_signal")}
    ev = cutoff_scores(cols["end_energy_db"], cols["trail_silence_ms"], cols["lead_silence_ms"], cols["duration_s"],
                       cols["cutoff_signal"])
    cut = np.arange(len(waves)) % 3 != 0
    assert (ev.score[cut] >= CUTOFF_THRESHOLD).all(), ev.score
    assert (ev.score[~cut] < CUTOFF_THRESHOLD).all(), ev.score


def _real_clips(folder: str, rels: tuple[str, ...]) -> list[np.ndarray]:
    from pathlib import Path

    from ml.audio import read_wav
    from tests.conftest import skip_or_fail

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / folder
    if not root.is_dir():
        skip_or_fail(f"real audio not found at {root} (see ../shared/data/README.md)")
    return [read_wav(root / r)[0] for r in rels]


def test_cutoff_signal_ignores_real_words_followed_by_rumble_and_flags_them_cut():
    """Complete real Arabic words whose recordings go on with low-frequency rumble or hum to the end
    (the plain-energy rule called them cut off) are not; the same words cut at a loud part are."""
    from ml.plant import plant_cutoff, word_span

    rels = ("dataset/backward/00000005_NO_03.flac", "dataset/close/00000003_NO_04.flac",
            "dataset/digit/00000003_NO_01.flac", "dataset/five/00000005_NO_04.flac",
            "dataset/nine/00000005_NO_03.flac", "dataset/right/00000004_NO_01.flac")
    clips = _real_clips("arabic-speech-commands", rels)
    assert not any(signal_stats(x, 16000).cutoff_signal for x in clips)
    rng = np.random.default_rng(7)
    cut = [plant_cutoff(x, 16000, word_span(x, 16000), rng, x.size, want="loud", shape="late_start")[0] for x in clips]
    assert all(signal_stats(y, 16000).cutoff_signal for y in cut)


def test_cutoff_signal_ignores_a_real_word_followed_by_digital_silence():
    from ml.plant import word_span

    clips = _real_clips("speech-commands-v0.01-sample", ("house/2f813234_nohash_1.wav", "yes/439c84f4_nohash_1.wav",
                                                          "seven/51055bda_nohash_4.wav"))
    for x in clips:
        on, off = word_span(x, 16000)
        y = x.copy()
        y[off:] = 0.0  # the recorder stopped writing samples after the word: exact zeros to the end
        st = signal_stats(y, 16000)
        assert not st.cutoff_signal, st
        assert st.trail_silence_ms >= 20


def test_lead_silence_skips_a_click_at_the_first_sample_but_not_a_word_under_way():
    from ml.plant import word_span

    for x in _real_clips("speech-commands-v0.01-sample", ("house/2f813234_nohash_1.wav", "yes/439c84f4_nohash_1.wav",
                                                           "seven/51055bda_nohash_4.wav")):
        on, off = word_span(x, 16000)
        clicked = x.copy()
        clicked[:80] = 0.9 * np.hanning(80)  # a 5 ms click as the recorder starts
        assert signal_stats(clicked, 16000).lead_silence_ms >= 0.5 * on / 16
        under_way = x[on + (off - on) // 3:]  # the word already going at the first sample
        assert signal_stats(under_way, 16000).lead_silence_ms == 0


def test_background_at_the_first_sample_is_not_a_start_cut_off_on_real_noisy_speakers():
    """Arabic speakers 00000003 and 00000005 record louder background for the first 50-120 ms, which
    fades before a clean, complete word: that is no word under way (a start cut-off), but the same
    clip with the first third of its word cut away is."""
    from ml.plant import word_span

    rels = ("dataset/cancel/00000003_NO_03.flac", "dataset/open/00000003_NO_02.flac",
            "dataset/digit/00000005_NO_02.flac", "dataset/record/00000005_NO_02.flac")
    for rel, x in zip(rels, _real_clips("arabic-speech-commands", rels), strict=True):
        on, off = word_span(x, 16000)
        st = signal_stats(x, 16000)
        assert st.lead_silence_ms >= 150 and st.trail_silence_ms >= 100, (rel, st)  # the word begins at 200-270 ms
        ev = cutoff_scores(*(np.array([getattr(st, k)]) for k in ("end_energy_db", "trail_silence_ms", "lead_silence_ms",
                                                                   "duration_s", "cutoff_signal")),
                           agree=np.array([False]), confidence=np.array([0.4]))
        assert ev.start[0] == 0 and ev.score[0] < CUTOFF_THRESHOLD, (rel, st)  # even a model that disagrees
        under_way = x[on + (off - on) // 3:]
        assert signal_stats(under_way, 16000).lead_silence_ms == 0, rel


def test_a_word_cut_at_a_soft_sound_is_under_way_at_the_first_sample():
    """Real Arabic words whose first 27-39 % is cut away at a soft sound (a consonant, 26-30 dB under
    the word's loudest part, below the activity threshold): the sound at the first sample runs into the
    word and is not the clip's background, so the lead is 0 (it read 10-80 ms)."""
    from ml.plant import _quiet, word_span

    rels = ("dataset/disable/00000019_NO_01.flac", "dataset/left/00000020_NO_04.flac",
            "dataset/previous/00000019_NO_04.flac")
    for rel, drop, x in zip(rels, (0.394, 0.271, 0.274), _real_clips("arabic-speech-commands", rels), strict=True):
        on, off = word_span(x, 16000)
        c = on + int(drop * (off - on))
        y = np.concatenate([x[c:], _quiet(x, (on, off), c, np.random.default_rng(0))])  # as ml.plant does
        st = signal_stats(y, 16000)
        assert st.lead_silence_ms == 0 and st.trail_silence_ms >= 100, (rel, st)


def test_a_weak_sound_after_the_word_and_a_quiet_gap_is_not_the_word_cut_by_the_end():
    """Real Arabic 'options' clips of speakers 00000023 and 00000024 end with a click or breath 100 ms
    after the word, 25-35 dB under it: no word runs past the end. Cut inside the word, they are cut off."""
    from ml.plant import plant_cutoff, word_span

    rels = ("dataset/options/00000024_NO_01.flac", "dataset/options/00000024_NO_02.flac",
            "dataset/options/00000023_NO_01.flac")
    rng = np.random.default_rng(0)
    for rel, x in zip(rels, _real_clips("arabic-speech-commands", rels), strict=True):
        assert not signal_stats(x, 16000).cutoff_signal, rel
        cut, _ = plant_cutoff(x, 16000, word_span(x, 16000), rng, x.size, want="loud", shape="short_file")
        assert signal_stats(cut, 16000).cutoff_signal, rel
