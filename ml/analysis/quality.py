"""Audio-quality findings on waveforms: clipped, too quiet, DC offset, (near-)silent, upsampled.

``quality_stats(x, sr)`` measures one clip (pure numpy, about 1 ms for a 1 s clip); ``quality_flags``
turns the stats of n clips into one boolean array per finding. Every threshold is a named constant
below, with the reason for its value. The thresholds were set on the real clips of the Speech
Commands v0.01 sample and the Arabic Speech Commands set (clean real clips as negatives) and the
defects ``ml.plant`` plants into them (``bench/plant_real.py`` measures precision and recall).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

FINDINGS = ("clipped", "too_quiet", "dc_offset", "silent", "upsampled")

# Clipping leaves plateaus: runs of consecutive samples at the clip's extreme value. A natural peak
# touches its maximum once or twice; in real clips the share of samples in such pairs stays below
# 0.001 (the largest of 5,100 real clips: 0.0009), while clipping worth flagging puts at least
# half a percent of the samples there. 0.002 sits between, with room on both sides.
CLIPPED_MIN_SHARE = 0.002
# A plateau at a tiny peak is quantisation (a few LSB of noise), not clipping: only clips whose peak
# reaches -20 dBFS can be called clipped (ADC and AGC clipping happens at loud levels).
CLIPPED_MIN_PEAK = 0.1
# Near-silent: the peak below -60 dBFS (about 33 LSB in 16 bits). No real clip of either set peaks
# that low (the quietest: -53 dBFS); a word at that level is below a typical recording's own noise.
SILENT_PEAK_DBFS = -60.0
# Too quiet: sound, but peaking below -35 dBFS (1.8 % of full scale; 30 dB under the usual -5 dBFS of
# a speaker close to the mic). 0.5 % of the real Speech Commands clips are there and none of the Arabic
# ones; a model's front end sees such a clip mostly as its noise floor.
QUIET_PEAK_DBFS = -35.0
# DC offset: a mean of at least 0.02 of full scale (-34 dBFS). Real Arabic clips stay under 0.001; a
# few Speech Commands devices reach 0.03-0.05 (real defects). Speech itself has no DC, so a word's
# low-frequency energy cannot reach this.
DC_MAX = 0.02
# Upsampled from 8 kHz: nothing above the old Nyquist frequency but the resampler's leak, in the word
# AND in the pauses. The step is the power at 4.5-7.5 kHz minus the power at 2.8-3.8 kHz, taken over
# the louder half of the frames (the word) and over the quieter half (the recording's noise), and the
# higher (weaker) of the two counts. Retuned with the pauses (was: the louder half alone at -30 dB):
# on the real Arabic clips that rule flagged 184 clean clips (5 %), words of a few speakers with no
# fricative whose voice fades above 4 kHz while their background noise stays full-band; such a clip is
# not band-limited, and its pauses show it (quiet-half step -2 dB in the median, against -24 dB or
# lower for every planted upsampled clip). Both halves at -25 dB or lower: the planted clips keep a
# recall of 0.98, the clean clips flagged fall from 184 to 6 (bench/plant_real.py, Arabic seed 0).
UPSAMPLED_STEP_DB = -25.0
# Pauses whose upper band holds nothing but 16-bit rounding noise (within 10 dB of it) show no sound
# above 4.5 kHz either, however far their lower band stands above that noise: such a clip is judged by
# its word alone (a quiet recording upsampled from 8 kHz; without this, recall 0.83 on Speech Commands).
_QUANT_MARGIN_DB = 10.0
BAND_BELOW_HZ = (2800.0, 3800.0)  # just under the 4 kHz Nyquist frequency of 8 kHz audio
BAND_ABOVE_HZ = (4500.0, 7500.0)  # above it, clear of the resampler's transition band
_NFFT = 512


@dataclass(frozen=True)
class QualityStats:
    """What the quality findings read from one clip."""

    peak_dbfs: float
    plateau_share: float  # share of samples in pairs of consecutive samples at the peak value
    dc: float  # mean sample value, full scale = 1
    band_step_db: float  # power 4.5-7.5 kHz minus 2.8-3.8 kHz, dB, word or pauses (0 when it cannot be measured)

    def as_dict(self) -> dict:
        return asdict(self)


_WINDOW = np.hanning(_NFFT)
_QUANT_POWER = (1.0 / 32768.0) ** 2 / 12.0 * float(np.sum(_WINDOW**2))  # 16-bit rounding noise, per bin


@lru_cache(maxsize=16)
def _band_bins(sample_rate: int) -> tuple[slice, slice]:
    """The rfft bins of the band below and of the band above (contiguous ranges)."""
    f = np.fft.rfftfreq(_NFFT, 1.0 / sample_rate)
    lo = np.flatnonzero((f >= BAND_BELOW_HZ[0]) & (f < BAND_BELOW_HZ[1]))
    hi = np.flatnonzero((f >= BAND_ABOVE_HZ[0]) & (f < BAND_ABOVE_HZ[1]))
    return slice(int(lo[0]), int(lo[-1]) + 1), slice(int(hi[0]), int(hi[-1]) + 1)


def _band_step(x: np.ndarray, sample_rate: int) -> float:
    """Power above the 8 kHz-rate band minus power just below it: the higher of the louder half of the
    frames (the word) and the quieter half (the pauses), or the louder half alone when the pauses hold
    nothing above 4.5 kHz but 16-bit rounding noise."""
    if sample_rate < 2 * BAND_ABOVE_HZ[1] or x.size < _NFFT:
        return 0.0  # the clip's own rate is too low to hold the upper band: nothing to say
    n = x.size // _NFFT
    frames = x[: n * _NFFT].reshape(n, _NFFT) * _WINDOW  # (n_frames, NFFT), non-overlapping
    energy = np.einsum("ij,ij->i", frames, frames)
    loud = energy >= np.partition(energy, n // 2)[n // 2]  # the louder half (the median frame and up)
    lo, hi = _band_bins(sample_rate)
    spec = np.fft.rfft(frames, axis=1)
    spec = np.concatenate([spec[:, lo], spec[:, hi]], axis=1)  # only the two bands
    power = spec.real**2 + spec.imag**2
    n_lo = lo.stop - lo.start

    def step(p: np.ndarray) -> float | None:
        below = p[:n_lo].mean()
        return None if below <= 0.0 else float(10.0 * np.log10((p[n_lo:].mean() + 1e-30) / below))

    word = step(power[loud].mean(axis=0))
    if word is None:
        return 0.0
    if loud.all():
        return word
    pauses = power[~loud].mean(axis=0)
    if pauses[n_lo:].mean() < _QUANT_POWER * 10 ** (_QUANT_MARGIN_DB / 10):
        return word
    quiet = step(pauses)
    return word if quiet is None else max(word, quiet)


def quality_stats(x: np.ndarray, sample_rate: int) -> QualityStats:
    """Quality stats of a float waveform ``x`` of shape (n,) in [-1, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return QualityStats(-120.0, 0.0, 0.0, 0.0)
    a = np.abs(x)
    peak = float(a.max())
    near = a >= peak - 1.5 / 32768.0  # at the peak, within a 16-bit quantisation step
    plateau = float(np.count_nonzero(near[1:] & near[:-1])) / x.size
    return QualityStats(
        peak_dbfs=float(20.0 * np.log10(peak)) if peak > 0 else -120.0,
        plateau_share=plateau,
        dc=float(x.mean(dtype=np.float64)),
        band_step_db=_band_step(x, sample_rate),
    )


def quality_flags(peak_dbfs: np.ndarray, plateau_share: np.ndarray, dc: np.ndarray,
                  band_step_db: np.ndarray) -> dict[str, np.ndarray]:
    """One boolean array of shape (n,) per finding in ``FINDINGS``, from the stats of n clips.

    A silent clip is only 'silent' (it is not also too quiet, and its spectrum says nothing). A too
    quiet clip is not judged 'upsampled' either: its upper band sits at the 16-bit rounding noise, so its
    band cannot be told (on the real Speech Commands sample, the one clean clip at -53 dBFS was).
    """
    peak_db = np.asarray(peak_dbfs, dtype=np.float64)
    silent = peak_db < SILENT_PEAK_DBFS
    quiet = ~silent & (peak_db < QUIET_PEAK_DBFS)
    return {
        "clipped": (np.asarray(plateau_share) >= CLIPPED_MIN_SHARE) & (peak_db >= 20 * np.log10(CLIPPED_MIN_PEAK)),
        "too_quiet": quiet,
        "dc_offset": np.abs(np.asarray(dc)) >= DC_MAX,
        "silent": silent,
        "upsampled": ~silent & ~quiet & (np.asarray(band_step_db) <= UPSAMPLED_STEP_DB),
    }


def flags_of(stats: list[QualityStats]) -> dict[str, np.ndarray]:
    """``quality_flags`` for a list of per-clip stats."""
    cols = {k: np.array([getattr(s, k) for s in stats], dtype=np.float64)
            for k in ("peak_dbfs", "plateau_share", "dc", "band_step_db")}
    return quality_flags(**cols)


# ----------------------------------------------------------------------------------- from stored columns

# The stat each finding reads besides the peak (None: the peak alone). Ingest stores the peak as a linear
# value (``clips.peak``, from ``ml.analysis.signal``) and these three next to it; a clip ingested before
# they were measured has NaN there, and only the findings that need that stat leave it out.
NEEDS = {"clipped": "plateau_share", "too_quiet": None, "dc_offset": "dc", "silent": None,
         "upsampled": "band_step_db"}


def peak_to_dbfs(peak: np.ndarray | float) -> np.ndarray:
    """dBFS of linear peaks (as ``quality_stats`` gives them: -120 for a peak of 0; NaN stays NaN)."""
    p = np.asarray(peak, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, 20.0 * np.log10(np.where(p > 0, p, 1.0)), np.where(np.isnan(p), np.nan, -120.0))


def flags_from_columns(peak: np.ndarray, plateau_share: np.ndarray, dc: np.ndarray,
                       band_step_db: np.ndarray) -> dict[str, np.ndarray]:
    """``quality_flags`` from stored columns: the linear peak, and NaN where a stat was not measured
    (a NaN never raises a flag)."""
    f64 = np.float64
    with np.errstate(invalid="ignore"):
        return quality_flags(peak_to_dbfs(peak), np.asarray(plateau_share, f64), np.asarray(dc, f64),
                             np.asarray(band_step_db, f64))


def measured(kind: str, plateau_share: np.ndarray, dc: np.ndarray, band_step_db: np.ndarray) -> np.ndarray:
    """Which clips have the stat finding ``kind`` needs (bool, per clip)."""
    cols = {"plateau_share": plateau_share, "dc": dc, "band_step_db": band_step_db}
    need = NEEDS[kind]
    n = len(np.asarray(plateau_share))
    return np.ones(n, dtype=bool) if need is None else ~np.isnan(np.asarray(cols[need], dtype=np.float64))


def defects_of(peak: float, plateau_share: float | None, dc: float | None, band_step_db: float | None) -> list[str]:
    """The findings (of ``FINDINGS``) one clip's stored stats raise, in ``FINDINGS`` order."""
    nan = float("nan")
    flags = flags_from_columns(np.array([peak]), np.array([nan if plateau_share is None else plateau_share]),
                               np.array([nan if dc is None else dc]),
                               np.array([nan if band_step_db is None else band_step_db]))
    return [k for k in FINDINGS if flags[k][0]]


def severity(kind: str, peak: np.ndarray, plateau_share: np.ndarray, dc: np.ndarray,
             band_step_db: np.ndarray) -> np.ndarray:
    """How far past its threshold each clip is, as a factor (1 at the threshold; levels in dB become
    amplitude factors, 20 dB = 10x): it orders a finding's clips, worst first (``quality_findings``)."""
    f64 = np.float64
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "clipped":
            out = np.asarray(plateau_share, f64) / CLIPPED_MIN_SHARE
        elif kind == "dc_offset":
            out = np.abs(np.asarray(dc, f64)) / DC_MAX
        elif kind == "upsampled":
            out = 10.0 ** ((UPSAMPLED_STEP_DB - np.asarray(band_step_db, f64)) / 20.0)
        else:
            ref = QUIET_PEAK_DBFS if kind == "too_quiet" else SILENT_PEAK_DBFS
            out = 10.0 ** ((ref - peak_to_dbfs(peak)) / 20.0)
    return np.nan_to_num(out, nan=0.0, posinf=1e6)


# ----------------------------------------------------------------------------------- findings

@dataclass(frozen=True)
class QualityWords:
    """How a finding names its clips, states its threshold and says what to do."""

    label: str  # short name, for badges and menus
    title: str  # "{n} clips ..." with {n}
    rule: str  # the threshold, as a clause after "N clips"
    todo: str
    reason: str  # the flag reason it suggests (app.flags.Reason)


WORDS = {
    "clipped": QualityWords(
        "clipped", "{n} clips are clipped",
        f"have at least {CLIPPED_MIN_SHARE:.1%} of their samples in runs at the clip's own peak value, with that peak "
        f"at {20 * np.log10(CLIPPED_MIN_PEAK):.0f} dBFS or louder: the recorder or a gain stage clipped the sound",
        "Listen to the worst first. Drop or re-record the badly clipped takes (or fix the gain of the device "
        "that made them); if the audio your model will hear clips too, keep them and add clipping to the "
        "training augmentation.", "other"),
    "too_quiet": QualityWords(
        "too quiet", "{n} clips are too quiet",
        f"peak below {QUIET_PEAK_DBFS:g} dBFS (but above {SILENT_PEAK_DBFS:g}): a word there is 30 dB under "
        "a speaker close to the mic, and the model's front end sees mostly the recording's noise floor",
        "Listen: when the word is audible, normalise the level (peak normalisation before training, or a gain "
        "augmentation that reaches this low); when it is not, flag the clip as noise only.", "other"),
    "dc_offset": QualityWords(
        "DC offset", "{n} clips have a DC offset",
        f"have a mean sample value of at least {DC_MAX:g} of full scale ({20 * np.log10(DC_MAX):.0f} dBFS), "
        "which speech never has: a fault of the recording chain",
        "Remove the mean (or high-pass filter at about 20 Hz) in the front end or before training; "
        "the words themselves are usually fine.", "other"),
    "silent": QualityWords(
        "silent", "{n} clips are (near-)silent",
        f"peak below {SILENT_PEAK_DBFS:g} dBFS (about 33 steps of 16-bit audio), quieter than any real "
        "recording's own noise: no word can be heard",
        "They are filed under a word but hold none: flag them as noise only (train --apply-flags then moves "
        "or drops them), or find out which step of the pipeline wrote empty files.", "noise_only"),
    "upsampled": QualityWords(
        "upsampled", "{n} clips look upsampled",
        f"lose {-UPSAMPLED_STEP_DB:g} dB or more from {BAND_BELOW_HZ[0] / 1000:g}-{BAND_BELOW_HZ[1] / 1000:g} "
        f"kHz to {BAND_ABOVE_HZ[0] / 1000:g}-{BAND_ABOVE_HZ[1] / 1000:g} kHz in the word and in the pauses: "
        "nothing above 4 kHz, as in 8 kHz audio stored at a higher rate",
        "If the audio your model will hear is full-band, these clips teach it a narrower sound: re-record or "
        "keep them out of the test split; if it is telephone-band, keep them (and low-pass the rest in "
        "augmentation).", "other"),
}
DISAGREE_WEIGHT = 1.0  # a flagged clip the model gets wrong out of sample: an error with a named cause
COPED_WEIGHT = 0.25  # a flagged clip the model copes with: a data problem of no visible cost yet
TOP_SPEAKER_SHARE = 0.3  # name the speakers when the top one holds this share of a finding's clips
LABEL_SHARE = 0.25  # name the labels when the top one holds this share; else say how spread they are


def group_evidence(members: np.ndarray, labels: np.ndarray, judged: np.ndarray, wrong: np.ndarray,
                   rule: str) -> tuple[str, np.ndarray, dict]:
    """What a finding built from per-clip stats says of its clips (row indices ``members``, worst first):
    its opening sentences (how many, ``rule``, how often the model disagrees out of sample against the
    rest of the run, which labels), each member's weight in the finding's score, and its stats.
    ``labels``, ``judged`` and ``wrong`` (judged and disagreeing) are per clip of the run (n,)."""
    from ml.analysis.describe import _fmt_top, _top

    n_all, n = labels.size, int(members.size)
    n_judged, n_wrong = int(judged[members].sum()), int(wrong[members].sum())
    rest = np.ones(n_all, dtype=bool)
    rest[members] = False
    rest_judged = int((judged & rest).sum())
    rest_rate = float(wrong[rest].sum()) / rest_judged if rest_judged else 0.0
    weights = np.where(wrong[members], DISAGREE_WEIGHT, COPED_WEIGHT)
    text = f"{n:,} clips ({n / max(1, n_all):.1%} of the run) {rule}."
    if n_judged:
        text += (f" {n_wrong:,} of the {n_judged:,} judged out of sample ({n_wrong / n_judged:.0%}) disagree "
                 f"with their label, against {rest_rate:.0%} of the other clips.")
    top_labels = _top(labels[members])
    if top_labels[0][1] >= LABEL_SHARE:
        text += f" Mostly filed as {_fmt_top(top_labels)}."
    else:  # a defect of the recording, not of a word
        text += (f" Spread over {len(set(labels[members].tolist())):,} labels (the most, '{top_labels[0][0]}', "
                 f"{top_labels[0][1]:.0%}).")
    stats = {"n": n, "judged": n_judged, "disagree": n_wrong,
             "disagree_rate": round(n_wrong / n_judged, 4) if n_judged else None,
             "rest_disagree_rate": round(rest_rate, 4), "top_labels": [[v, round(sh, 4)] for v, sh in top_labels]}
    return text, weights, stats


def quality_findings(peak: np.ndarray, plateau_share: np.ndarray, dc: np.ndarray, band_step_db: np.ndarray,
                     labels: np.ndarray, agree: np.ndarray, judged: np.ndarray | None = None,
                     speakers: np.ndarray | None = None) -> list:
    """One ``ml.analysis.describe.FindingSpec`` per finding of ``FINDINGS`` that flags any clip.

    Inputs are per clip of the run (n,): the stored stats (linear peak; NaN where a stat was not
    measured), the labels, whether the model agrees with each label, which of those agreements are out
    of sample (``judged``; None: all) and the speakers (None: unknown). A clip's score in a finding is
    ``1 - 1 / severity`` (0 at the threshold, towards 1 far past it), worst first. Score: a (near-)silent clip
    holds no word, so it counts ``DISAGREE_WEIGHT``; any other flagged clip counts ``DISAGREE_WEIGHT``
    when the model disagrees with its label out of sample and ``COPED_WEIGHT`` otherwise, so a
    defect the model copes with ranks below error clusters and cut-offs of the same size.
    """
    from collections import Counter

    from ml.analysis.describe import FindingSpec

    labels = np.asarray(labels)
    agree = np.asarray(agree, dtype=bool)
    n_all = labels.size
    judged = np.ones(n_all, dtype=bool) if judged is None else np.asarray(judged, dtype=bool)
    wrong = judged & ~agree
    flags = flags_from_columns(peak, plateau_share, dc, band_step_db)
    out = []
    for kind in FINDINGS:
        members = np.flatnonzero(flags[kind])
        if members.size == 0:
            continue
        w = WORDS[kind]
        sev = severity(kind, peak, plateau_share, dc, band_step_db)
        members = members[np.argsort(-sev[members], kind="stable")]
        n = int(members.size)
        text, weights, group = group_evidence(members, labels, judged, wrong, w.rule)
        if kind == "silent":
            weights = np.full(n, DISAGREE_WEIGHT)
        top_speakers: list = []
        if speakers is not None:
            spk = [s for s in np.asarray(speakers, dtype=object)[members].tolist() if s]
            if spk:
                top_speakers = [(s, c / n) for s, c in Counter(spk).most_common(3)]
                if n >= 3 and top_speakers[0][1] >= TOP_SPEAKER_SHARE:
                    text += (" Most come from a few speakers (one device?): "
                             + ", ".join(f"'{s}' ({share:.0%})" for s, share in top_speakers if share >= 0.1) + ".")
        unmeasured = int((~measured(kind, plateau_share, dc, band_step_db)).sum())
        if unmeasured:
            text += f" Not checked: {unmeasured:,} clips ingested before earmark measured this."
        text += " " + w.todo
        out.append(FindingSpec(
            kind, float(weights.sum()), w.title.format(n=f"{n:,}"), text, w.reason, None, members,
            (1.0 - 1.0 / np.maximum(sev[members], 1.0)).astype(np.float32), [None] * n,
            {"defect": kind, **group, "unmeasured": unmeasured,
             "top_speakers": [[v, round(s, 4)] for v, s in top_speakers],
             "clip_score": "1 - threshold / value: 0 at the threshold, 0.9 at 10 times it (levels as amplitude: "
                           "20 dB past it = 0.9), 1 for a digital zero"}))
    return out
