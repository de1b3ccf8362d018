"""The 'noise only' finding: clips filed under a word that hold only background noise.

A spoken word has a start and an end inside the clip (silence before and after it) and is peaky: a
vowel's peak stands far above the clip's mean level. A clip of steady background noise has sound from
its first frame to its last and a low crest factor (peak over RMS). ``noise_only_flags`` reads the
per-clip stats ingest already stores (``ml.analysis.signal``: lead and trail silence, linear peak and
RMS level), so it needs no model. ``noise_only_finding`` turns the flags into one
``ml.analysis.describe.FindingSpec``, scored as the audio-quality findings are.

Measured (``bench/real_finders.py``, Arabic Speech Commands with defects planted, 96 noise-only clips a
seed; negatives the clean, mislabeled and two-word clips, about 3,650): recall 0.71 / 0.68 at precision
0.90 / 0.88 (seeds 0 / 1, planted-only); on the set with nothing planted (4,800 clips) it flags 8.
"""

from __future__ import annotations

import numpy as np

from ml.analysis.quality import (
    DC_MAX,
    SILENT_PEAK_DBFS,
    group_evidence,
    peak_to_dbfs,
)

KIND = "noise_only"
REASON = "noise_only"  # app.flags.Reason.NOISE_ONLY

# Sound at both edges: ingest's onset detector finds less than 50 ms of silence before the first and
# after the last sound. A word recorded as a 1 s take almost always has a pause on at least one side:
# only 14 of the 3,648 real Arabic negatives (seed 0) have sound at both edges, while 69 of the 96
# planted noise-only clips do (the rest are quiet noise whose dips the onset detector reads as silence,
# up to 740 ms: the recall this rule loses). Tuned on seed 0: 100 ms gives recall 0.77 at precision 0.75
# (25 false alarms), 200 ms 0.83 at 0.24 (250): a word's short pause passes from there.
EDGE_SILENCE_MS = 50.0
# Crest factor (20 log10(peak) - RMS dBFS) below 14.5 dB. Real Arabic speech clips: 5th percentile
# 12.7 dB, median 16.9 dB; planted noise (background-noise files at -45..-25 dBFS): median 12.2 dB
# (Gaussian noise: about 12 dB in a 1 s clip, its peak 4 standard deviations out). It takes the 14 real
# negatives with sound at both edges down to 8 (loud, compressed takes, most of one speaker). Tuned on seed 0 between 13.5 and 15 dB: 13.5 gives
# recall 0.66 at precision 0.91 (6 false alarms), 14.0 and 14.5 recall 0.71 at 0.90 (8), 15.0 recall
# 0.72 at 0.90 (8, and 3 more cut-off clips). 14.5 kept: seed 1 recall 0.68 at 0.88 (9 false alarms),
# the unplanted set 8 of 4,800.
CREST_MAX_DB = 14.5


def crest_db(peak: np.ndarray, rms_dbfs: np.ndarray) -> np.ndarray:
    """Crest factor in dB from the stored linear peak and RMS level (NaN where either is missing)."""
    with np.errstate(invalid="ignore"):
        return peak_to_dbfs(peak) - np.asarray(rms_dbfs, dtype=np.float64)


def noise_only_flags(lead_silence_ms: np.ndarray, trail_silence_ms: np.ndarray, peak: np.ndarray,
                     rms_dbfs: np.ndarray, dc: np.ndarray | None = None) -> np.ndarray:
    """Which of n clips look like noise only (bool, (n,)). A (near-)silent clip is left to the 'silent'
    quality finding, and a clip with a DC offset to 'dc_offset': a constant offset raises the RMS level
    and so lowers the crest factor of any clip (on Arabic seed 0 the rule without this flags 35 of the
    36 planted DC-offset clips). NaN stats never raise the flag."""
    f64 = np.float64
    lead, trail = np.asarray(lead_silence_ms, f64), np.asarray(trail_silence_ms, f64)
    with np.errstate(invalid="ignore"):
        out = ((lead < EDGE_SILENCE_MS) & (trail < EDGE_SILENCE_MS) & (crest_db(peak, rms_dbfs) < CREST_MAX_DB)
               & (peak_to_dbfs(peak) >= SILENT_PEAK_DBFS))
        if dc is not None:
            out &= ~(np.abs(np.asarray(dc, f64)) >= DC_MAX)
    return out


def severity(peak: np.ndarray, rms_dbfs: np.ndarray) -> np.ndarray:
    """How far under the crest threshold a clip is, as an amplitude factor (1 at the threshold)."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = 10.0 ** ((CREST_MAX_DB - crest_db(peak, rms_dbfs)) / 20.0)
    return np.nan_to_num(out, nan=0.0, posinf=1e6)


RULE = (f"have sound from their first to their last {EDGE_SILENCE_MS:g} ms (no pause before or after a word) "
        f"and a crest factor under {CREST_MAX_DB:g} dB (peak over RMS level; spoken words sit near 17 dB, "
        "steady background noise near 12 dB): they sound like noise with no word in it")
TODO = ("Listen to the first few: a long, loud word that fills the whole clip can read as noise. When there is no "
        "word, flag them as noise only (train --apply-flags then files them under the cut-off class or drops "
        "them, by the cut-off policy); when a word is there over loud noise, keep it and consider noise "
        "augmentation.")


def noise_only_finding(lead_silence_ms: np.ndarray, trail_silence_ms: np.ndarray, peak: np.ndarray,
                       rms_dbfs: np.ndarray, dc: np.ndarray | None, labels: np.ndarray, agree: np.ndarray,
                       judged: np.ndarray | None = None):
    """The 'noise only' ``FindingSpec`` of a run's n clips, or None when no clip is flagged.

    A clip's score in the finding is ``1 - 1 / severity`` (0 at the crest threshold), lowest crest first.
    The finding's score counts a flagged clip ``DISAGREE_WEIGHT`` when the model disagrees with its label
    out of sample and ``COPED_WEIGHT`` otherwise, as the audio-quality findings do."""
    from ml.analysis.describe import FindingSpec

    labels = np.asarray(labels)
    agree = np.asarray(agree, dtype=bool)
    n_all = labels.size
    judged = np.ones(n_all, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    wrong = judged & ~agree
    flags = noise_only_flags(lead_silence_ms, trail_silence_ms, peak, rms_dbfs, dc)
    members = np.flatnonzero(flags)
    if members.size == 0:
        return None
    sev = severity(peak, rms_dbfs)
    members = members[np.argsort(-sev[members], kind="stable")]
    n = int(members.size)
    text, weights, group = group_evidence(members, labels, judged, wrong, RULE)
    text += " " + TODO
    crest = crest_db(peak, rms_dbfs)
    return FindingSpec(
        KIND, float(weights.sum()), f"{n:,} clips sound like noise only", text, REASON, None, members,
        (1.0 - 1.0 / np.maximum(sev[members], 1.0)).astype(np.float32), [None] * n,
        {"defect": KIND, **group, "median_crest_db": round(float(np.median(crest[members])), 2),
         "clip_score": f"1 - threshold / value on the crest factor as amplitude: 0 at {CREST_MAX_DB:g} dB, "
                       f"0.5 at {CREST_MAX_DB - 6:g} dB"})
