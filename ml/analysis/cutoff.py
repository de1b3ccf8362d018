"""Cut-off score: is the clip's word cut by the clip's end (or start)? A number in [0, 1].

Signal evidence comes from the stats ingest computed per clip (``ml.analysis.signal``):
  * energy still high in the last 50 ms (``end_energy_db`` close to the loudest frame) with no
    trailing silence: the word runs past the end;
  * no leading silence at all while the clip is otherwise quiet at the start of the word: the word
    was already going when the recording began (weaker evidence: many clean clips start early);
  * an onset so late that no word fits between it and the end.
Model evidence: the model disagrees with the label, or is unsure. Signal evidence is necessary (a
disagreement alone is not a cut-off); model evidence raises the score of clips with signal evidence.
With the defaults a clip reaches ``CUTOFF_THRESHOLD`` on end evidence only when ingest's
``cutoff_signal`` (loud last 50 ms in a clip with a real dynamic range) is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The score at or above which the UI and the 'cutoff' finding treat a clip as cut off.
CUTOFF_THRESHOLD = 0.5
END_DB_MID = -20.0  # end energy (dB below the loudest frame) where end evidence is one half
END_DB_SCALE = 3.0  # dB per logistic unit
TRAIL_MS_FULL = 20.0  # trailing silence up to this still counts fully as "still speaking at the end"
TRAIL_MS_ZERO = 120.0  # ... and from this on not at all
MIN_WORD_MS = 300.0  # a keyword needs at least this long after its onset
END_WITHOUT_INDICATOR = 0.5  # end evidence scale when ingest's cutoff_signal is off
STEADY_MS = 10.0  # leading and trailing silence both below this: sound throughout the clip
# Sound from the first frame reaches the threshold when the model is at least unsure of the clip
# (model term >= 0.17: it disagrees, or its confidence is <= 0.58); a confident, right model keeps it
# under. On the planted Arabic set (seed 0, bench/real_finders.py) 0.75 finds 72 of 96 start cut-offs
# (0.6 found 41) for 15 more unplanted flags, about a quarter of them words really under way at the start.
START_EVIDENCE = 0.75
SIGNAL_WEIGHT = 0.6  # score of a clip with full signal evidence whose prediction is confident and right
MODEL_WEIGHT = 1.0 - SIGNAL_WEIGHT


@dataclass
class CutoffEvidence:
    """Per-clip parts of the score, each in [0, 1], kept for descriptions and debugging."""

    end: np.ndarray
    start: np.ndarray
    late_onset: np.ndarray
    model: np.ndarray
    score: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _ramp_down(x: np.ndarray, full: float, zero: float) -> np.ndarray:
    """1 at or below ``full``, 0 at or above ``zero``, linear between."""
    return np.clip((zero - x) / (zero - full), 0.0, 1.0)


def cutoff_scores(
    end_energy_db: np.ndarray,
    trail_silence_ms: np.ndarray,
    lead_silence_ms: np.ndarray,
    duration_s: np.ndarray,
    cutoff_signal: np.ndarray,
    agree: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
) -> CutoffEvidence:
    """Cut-off evidence and score for n clips; every argument has shape (n,).

    ``agree`` (model prediction equals the label) and ``confidence`` (probability of the prediction)
    are optional: without them the score is the signal evidence scaled by ``SIGNAL_WEIGHT`` plus
    half the model weight (an uninformed model term).
    """
    end_db = np.asarray(end_energy_db, dtype=np.float64)
    trail = np.asarray(trail_silence_ms, dtype=np.float64)
    lead = np.asarray(lead_silence_ms, dtype=np.float64)
    dur_ms = np.asarray(duration_s, dtype=np.float64) * 1000.0
    flag = np.asarray(cutoff_signal, dtype=bool)
    n = end_db.shape[0]

    still_on = _ramp_down(trail, TRAIL_MS_FULL, TRAIL_MS_ZERO)
    # Sound in every frame (no silence at either edge) is steady noise or hum, not a word that runs
    # past the end; ingest's indicator, which checks the clip's dynamic range, can still say so.
    steady = (lead < STEADY_MS) & (trail < STEADY_MS)
    end = _sigmoid((end_db - END_DB_MID) / END_DB_SCALE) * still_on * ~steady
    # Ingest's indicator also checks that the clip has a real dynamic range (a word over a quieter
    # floor); without it, loud edges are as likely noise as a cut word, so they only rank clips.
    end = np.where(flag, np.maximum(end, 0.9), END_WITHOUT_INDICATOR * end)
    # Sound from the very first frame, while the clip does go quiet later: the word may have begun
    # before the recording. Weaker: alone it reaches the threshold only when the model is unsure too.
    start = np.where((lead <= 0.0) & (trail >= 100.0), START_EVIDENCE, 0.0)
    # The word begins so late that it cannot fit before the end, and sound is still on at the end.
    room = dur_ms - lead
    late_onset = np.where(room > 0, _ramp_down(room, 0.5 * MIN_WORD_MS, MIN_WORD_MS), 0.0) * still_on * ~steady

    if agree is None and confidence is None:
        model = np.full(n, 0.5)
    else:
        dis = 1.0 - np.asarray(agree, dtype=np.float64) if agree is not None else np.full(n, 0.5)
        unsure = 1.0 - np.asarray(confidence, dtype=np.float64) if confidence is not None else np.full(n, 0.5)
        model = np.clip(0.6 * dis + 0.4 * unsure, 0.0, 1.0)

    signal = np.maximum.reduce([end, start, late_onset])
    score = signal * (SIGNAL_WEIGHT + MODEL_WEIGHT * model)
    f32 = np.float32
    return CutoffEvidence(end.astype(f32), start.astype(f32), late_onset.astype(f32), model.astype(f32),
                          np.clip(score, 0.0, 1.0).astype(f32))
