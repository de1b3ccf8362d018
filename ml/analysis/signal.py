"""Per-clip signal statistics, computed once at ingest for every clip (so: vectorised and cheap).

All levels are in dB against full scale (a full-scale square wave is 0 dBFS). Frame energies use
non-overlapping 10 ms frames. A frame is "active" (speech or other sound) when it is within
``ACTIVE_BELOW_PEAK_DB`` of the loudest frame and clearly above the clip's own noise floor.

``cutoff_signal`` is a first, cheap indicator that the word runs past the end of the clip: the
last 50 ms still hold energy close to the loudest part and clearly above the clip's own noise
floor, up to the last frame, in a clip that has a real dynamic range (so steady noise is not
flagged). It is measured on the pre-emphasised signal (a first difference: the low-frequency
rumble and mains hum of real recordings, which outlast the word, count for little) against an
adaptive per-clip floor; digital silence (exact zeros) counts as a floor of ``DIGITAL_FLOOR_DB``
and never as the end of a word; a weaker sound after the word and a quiet gap (a click, a breath)
does not count either. The analysis stage refines this with the model's view;
``bench/plant_real.py`` measures it on real clips with planted cut-offs.

``lead_silence_ms`` is the time before the word's onset: 0 when a word is already under way at the
first sample, but not when the clip starts with its own background, louder for a moment (see
``START_SHAPE_DB``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

FRAME_MS = 10.0
END_MS = 50.0
ACTIVE_BELOW_PEAK_DB = 30.0  # frames within this many dB of the loudest frame count as sound
ABOVE_FLOOR_DB = 10.0  # ... and this far above the noise floor (10th percentile frame)
MIN_ACTIVE_DBFS = -60.0  # nothing quieter than this is ever "active"
CUTOFF_END_DB = -20.0  # last 50 ms within 20 dB of the loudest frame -> still speaking
CUTOFF_MIN_RANGE_DB = 15.0  # loudest frame at least this far above the floor (not steady noise)
# The cut-off indicator works on the pre-emphasised signal, y[n] = x[n] - 0.97 x[n-1], against the
# clip's own floor. On real clips with planted cut-offs (Arabic Speech Commands, seeds 0 and 1) it
# raises the recall of the old plain-energy rule from 0.90 / 0.87 to 0.94 / 0.93 and cuts its false
# alarms on clean clips from 32-35 to 11-12: most were words followed by rumble or hum, which the
# plain energy saw as "still loud at the end".
PRE_EMPHASIS = 0.97
CUTOFF_ABOVE_FLOOR_DB = 6.0  # the last 50 ms at least this far above the floor (10th percentile frame) ...
CUTOFF_LAST_FRAME_DB = 3.0  # ... and the very last 10 ms frame above it by this: sound up to the last sample
# Pre-emphasis mutes low-frequency sounds (/w/, /m/, /u/): a clip whose plain energy is still within
# 10 dB of its loudest frame, and 10 dB over its floor, at the end also counts (+0.02-0.04 recall).
CUTOFF_PLAIN_END_DB = -10.0
CUTOFF_PLAIN_ABOVE_FLOOR_DB = 10.0
# The leading silence ends where sound lasts ONSET_FRAMES frames (30 ms) in a row, so that a click as
# the recorder starts is not a word already under way at the first sample. On real clips this takes
# the clean clips with 'sound from the first frame' from 3.8 % to 1.4 % (Speech Commands) and from
# 1.0 % to 0.8 % (Arabic), while 74-100 % of the planted start cut-offs keep a zero lead.
ONSET_FRAMES = 3
# Sound from the first frame is not always a word under way, and a word under way does not always
# pass the activity threshold at once. Both are told by the first ONSET_FRAMES frames' spectral shape
# (dB in START_BANDS equal bands of 0-8 kHz, each shape's mean removed) against the shape of the
# clip's own noise floor (its quietest fifth of frames), an RMS distance in dB:
# * under START_SHAPE_DB, and START_NOISE_BELOW_PEAK_DB or more under the loudest frame: the clip's
#   background. Some devices (Arabic Speech Commands speakers 00000003 and 00000005) record 50-200 ms
#   of louder background as they start, which fades before the word: it passed the threshold and
#   the lead read 0, a start cut-off. The onset is then where sound rises START_RISE_DB above it.
# * START_SHAPE_DB or more, each frame START_SOUND_ABOVE_FLOOR_DB over the floor and no frame before
#   the onset back within ABOVE_FLOOR_DB of it: sound other than the background runs from the first
#   sample into the word (a soft consonant of a word under way, below the threshold): the lead is 0.
# On the planted Arabic sets (seeds 0 / 1) clean clips with a zero lead and silence after the word
# (start evidence) go from 26 / 24 to 9 / 8, planted start cut-offs with it from 71 / 73 to 77 / 78 of
# 96; bench/plant_real.py's cut-off flags on clean clips from 38 / 35 to 21 / 19 (start recall 0.75 /
# 0.79 to 0.81 / 0.84); on the Speech Commands sample 2 clips of 300 ('nine', 'off': words sounding
# from the first sample) gain a zero lead. With the default model (--folds 3) and the end rule below,
# start cut-offs flagged go from 58 / 66 to 63 / 70 of 96 and clean clips flagged from 19 / 20 to 8 /
# 10; on the real set with nothing planted, flags from 22 to 10. See docs/benchmarks.md, "Finders on
# real speech".
START_SHAPE_DB = 8.0
START_NOISE_BELOW_PEAK_DB = 12.0
START_RISE_DB = 10.0
START_SOUND_ABOVE_FLOOR_DB = 15.0
START_BANDS = 16
START_BAND_TOP_HZ = 8000.0
# A weaker sound after the word, past a quiet gap (a click, a breath or the recorder stopping), is no
# word running past the end: the end is separate when, after the loudest frame, END_GAP_FRAMES
# frames in a row lie within END_GAP_ABOVE_FLOOR_DB of the floor and nothing after them comes within
# END_SEPARATE_BELOW_PEAK_DB of the loudest frame (in the domain, plain or pre-emphasised, tested).
# On the planted Arabic sets (bench/plant_real.py, seeds 0 / 1) the cut-off flags on clean clips go
# from 21 / 19 to 15 / 14 (clicks after 'options' of speakers 00000023 and 00000024) at the same
# recall (374 / 371 of 384; 15 dB instead of 10: 17 / 15); on the real sets as they are 6 of 4,800
# Arabic and 2 of 300 Speech Commands clips lose the indicator, all complete words with a weak
# sound after them. In the pre-emphasised signal a click is only 10-13 dB under the word.
END_GAP_FRAMES = 10
END_GAP_ABOVE_FLOOR_DB = 6.0
END_SEPARATE_BELOW_PEAK_DB = 10.0
DIGITAL_FLOOR_DB = -100.0  # the floor of a clip padded with exact zeros: below any real recording's noise
CLIP_LEVEL = 32766.0 / 32768.0  # |x| at or above this is a clipped int16 sample
_EPS = 1e-12
_FLOOR_DB = -120.0


@dataclass(frozen=True)
class SignalStats:
    """Stats of one clip; field names match the ``clips`` table columns."""

    duration_s: float
    rms_dbfs: float
    peak: float
    clipped_frac: float
    lead_silence_ms: float
    trail_silence_ms: float
    end_energy_db: float  # energy of the last 50 ms relative to the loudest frame (<= ~0)
    cutoff_signal: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _db(power: np.ndarray | float) -> np.ndarray | float:
    return np.maximum(10.0 * np.log10(np.asarray(power) + _EPS), _FLOOR_DB)


def _frame_means(sq: np.ndarray, hop: int) -> np.ndarray:
    """Means of consecutive ``hop``-sample frames of ``sq``, shape (ceil(n / hop),); the last is partial."""
    n = sq.shape[0]
    full = (n // hop) * hop
    means = sq[:full].reshape(-1, hop).mean(axis=1) if full else np.empty(0, dtype=sq.dtype)
    if full < n:
        means = np.append(means, sq[full:].mean())
    return means


def frame_energies(x: np.ndarray, sample_rate: int, frame_ms: float = FRAME_MS) -> np.ndarray:
    """Mean-square energy of non-overlapping frames, shape (n_frames,); the last frame is partial."""
    hop = max(1, int(round(sample_rate * frame_ms / 1000.0)))
    return _frame_means(np.square(x, dtype=np.float64), hop)


def _onset(is_active: np.ndarray, first: int) -> int:
    """The first frame of the first run of ``ONSET_FRAMES`` active frames; ``first`` when there is none."""
    if is_active.size < ONSET_FRAMES:
        return first
    runs = np.flatnonzero(np.convolve(is_active.astype(np.int8), np.ones(ONSET_FRAMES, np.int8), "valid") == ONSET_FRAMES)
    return int(runs[0]) if runs.size else first


def _band_shapes(x: np.ndarray, frames: np.ndarray, hop: int, sample_rate: int) -> np.ndarray:
    """Spectral shape of each frame in ``frames`` (hop-sample frames of ``x``): dB in ``START_BANDS``
    equal bands of 0 to min(``START_BAND_TOP_HZ``, Nyquist), less the frame's mean; shape (len(frames), bands)."""
    n_fft = 1 << max(0, int(np.ceil(np.log2(hop))))
    segs = np.zeros((frames.size, hop), dtype=np.float64)
    for i, f in enumerate(frames.tolist()):
        seg = x[f * hop: (f + 1) * hop]
        segs[i, : seg.size] = seg
    power = np.abs(np.fft.rfft(segs * np.hanning(hop), n=n_fft, axis=1)) ** 2  # (k, n_fft // 2 + 1)
    top = int(min(START_BAND_TOP_HZ, sample_rate / 2.0) / sample_rate * n_fft)
    edges = np.linspace(1, max(top, START_BANDS + 1), START_BANDS + 1).astype(int)
    bands = np.add.reduceat(power[:, : edges[-1]], edges[:-1], axis=1)  # (k, bands)
    db = 10.0 * np.log10(bands + _EPS)
    return db - db.mean(axis=1, keepdims=True)


def _power_db(frame_db: np.ndarray) -> float:
    """The level of frames together (their mean power), in dB."""
    return float(_db(np.mean(10.0 ** (frame_db / 10.0))))


def _lead_onset(x: np.ndarray, frame_db: np.ndarray, threshold: float, floor_db: float, first: int, hop: int,
                sample_rate: int) -> int:
    """The frame where the word begins: the first run of ``ONSET_FRAMES`` frames at or above
    ``threshold`` (``first``, the first such frame, when there is none), told apart from background at
    the start and moved to 0 for a word already under way, by the first frames' spectral shape (see
    ``START_SHAPE_DB``). ``frame_db``: the clip's frame levels, ``floor_db`` its noise floor."""
    onset = _onset(frame_db >= threshold, first)
    n = frame_db.size - (1 if x.size % hop else 0)  # whole frames only
    head = frame_db[:ONSET_FRAMES]
    if n < 3 * ONSET_FRAMES or hop < 16 or floor_db <= DIGITAL_FLOOR_DB:
        return onset
    start_db = _power_db(head)
    if onset == 0:
        if start_db > float(frame_db.max()) - START_NOISE_BELOW_PEAK_DB:
            return 0
    elif not (float(head.min()) >= floor_db + START_SOUND_ABOVE_FLOOR_DB
              and float(frame_db[:onset].min()) >= floor_db + ABOVE_FLOOR_DB):
        return onset
    quiet = np.argsort(frame_db[:n], kind="stable")[: max(ONSET_FRAMES, n // 5)]
    shapes = _band_shapes(x, np.concatenate([np.arange(ONSET_FRAMES), quiet]), hop, sample_rate)
    distance = float(np.sqrt(np.mean((shapes[:ONSET_FRAMES].mean(axis=0) - shapes[ONSET_FRAMES:].mean(axis=0)) ** 2)))
    if onset > 0:
        return 0 if distance >= START_SHAPE_DB else onset
    if distance >= START_SHAPE_DB:
        return 0
    return _onset(frame_db >= max(threshold, start_db + START_RISE_DB), 0)


def _end_levels(frame_db: np.ndarray, end_power: float) -> tuple[float, float, float, float, float]:
    """(range, end - loudest, end - floor, last frame - floor, end in dBFS), in dB, from the frame levels
    and the mean power of the last 50 ms."""
    k = max(0, int(0.1 * (len(frame_db) - 1)))
    floor_db = max(float(np.partition(frame_db, k)[k]), DIGITAL_FLOOR_DB)
    top_db = float(frame_db.max())
    end_db = float(_db(end_power))
    return top_db - floor_db, end_db - top_db, end_db - floor_db, float(frame_db[-1]) - floor_db, end_db


def _separate_end(frame_db: np.ndarray) -> bool:
    """The clip's last sound comes after a quiet gap that follows its loudest frame, and is much weaker
    than that frame: a sound after the word, not the word cut by the end (see ``END_GAP_FRAMES``)."""
    k = max(0, int(0.1 * (len(frame_db) - 1)))
    floor_db = max(float(np.partition(frame_db, k)[k]), DIGITAL_FLOOR_DB)
    top = int(np.argmax(frame_db))
    quiet = frame_db[top:] <= floor_db + END_GAP_ABOVE_FLOOR_DB
    if quiet.size < END_GAP_FRAMES:
        return False
    gaps = np.flatnonzero(np.convolve(quiet.astype(np.int16), np.ones(END_GAP_FRAMES, np.int16), "valid") == END_GAP_FRAMES)
    if not gaps.size:
        return False
    tail = frame_db[top + int(gaps[-1]) + END_GAP_FRAMES:]
    return bool(tail.size == 0 or float(tail.max()) <= float(frame_db[top]) - END_SEPARATE_BELOW_PEAK_DB)


def _ends_in_sound(x: np.ndarray, frame_db: np.ndarray, end_power: float, hop: int, end_n: int) -> bool:
    """The cut-off indicator: the clip's last ``end_n`` samples are loud and above its own floor up to the
    last frame, in a clip with a real dynamic range; on the pre-emphasised clip, or (for words whose end
    is mostly low-frequency, like /w/, /m/ or /u/) much louder still on the plain one, whose frame
    levels ``frame_db`` and last-50-ms power ``end_power`` the caller has."""
    rng, to_top, to_floor, last, end_db = _end_levels(frame_db, end_power)
    if (rng >= CUTOFF_MIN_RANGE_DB and to_top > CUTOFF_PLAIN_END_DB and to_floor >= CUTOFF_PLAIN_ABOVE_FLOOR_DB
            and last >= CUTOFF_LAST_FRAME_DB and end_db > MIN_ACTIVE_DBFS - 10.0 and not _separate_end(frame_db)):
        return True
    y = np.empty_like(x)
    y[0] = x[0]
    np.subtract(x[1:], PRE_EMPHASIS * x[:-1], out=y[1:])
    sq = np.square(y, dtype=np.float64)  # (n,)
    pre_db = _db(_frame_means(sq, hop))
    rng, to_top, to_floor, last, end_db = _end_levels(pre_db, float(sq[-end_n:].mean()))
    return (rng >= CUTOFF_MIN_RANGE_DB and to_top > CUTOFF_END_DB and to_floor >= CUTOFF_ABOVE_FLOOR_DB
            and last >= CUTOFF_LAST_FRAME_DB and end_db > MIN_ACTIVE_DBFS - 10.0 and not _separate_end(pre_db))


def signal_stats(x: np.ndarray, sample_rate: int) -> SignalStats:
    """Stats of a float waveform ``x`` of shape (n,) in [-1, 1]."""
    x = np.asarray(x, dtype=np.float32)
    n = int(x.shape[0])
    duration_s = n / float(sample_rate)
    if n == 0:
        return SignalStats(0.0, _FLOOR_DB, 0.0, 0.0, 0.0, 0.0, _FLOOR_DB, False)
    peak = float(max(x.max(), -x.min()))
    clipped_frac = 0.0
    if peak >= CLIP_LEVEL:  # rare: only then look for clipped samples
        clipped_frac = float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / n
    sq = np.square(x, dtype=np.float64)  # (n,), reused for every energy below
    rms_dbfs = float(_db(float(sq.mean())))

    frame_ms = FRAME_MS
    hop = max(1, int(round(sample_rate * frame_ms / 1000.0)))
    energies = _frame_means(sq, hop)  # (n_frames,)
    frame_db = _db(energies)
    loudest_db = float(frame_db.max())
    k = max(0, int(0.1 * (len(frame_db) - 1)))
    floor_db = float(np.partition(frame_db, k)[k])
    threshold = max(loudest_db - ACTIVE_BELOW_PEAK_DB, min(floor_db + ABOVE_FLOOR_DB, loudest_db - 6.0), MIN_ACTIVE_DBFS)
    active = np.flatnonzero(frame_db >= threshold) if loudest_db > MIN_ACTIVE_DBFS else np.empty(0, dtype=np.int64)
    total_ms = duration_s * 1000.0
    if active.size:
        onset = _lead_onset(x, frame_db, threshold, floor_db, int(active[0]), hop, sample_rate)
        lead_ms = min(float(onset) * frame_ms, total_ms)
        trail_ms = min(float(len(frame_db) - 1 - active[-1]) * frame_ms, total_ms)
    else:
        lead_ms = trail_ms = total_ms

    end_n = max(1, int(round(sample_rate * END_MS / 1000.0)))
    end_power = float(sq[-end_n:].mean())
    end_energy_db = float(_db(end_power)) - loudest_db if loudest_db > _FLOOR_DB else 0.0
    cutoff = bool(active.size > 0 and _ends_in_sound(x, frame_db, end_power, hop, end_n))
    return SignalStats(
        duration_s=duration_s,
        rms_dbfs=rms_dbfs,
        peak=peak,
        clipped_frac=clipped_frac,
        lead_silence_ms=lead_ms,
        trail_silence_ms=trail_ms,
        end_energy_db=end_energy_db,
        cutoff_signal=cutoff,
    )
