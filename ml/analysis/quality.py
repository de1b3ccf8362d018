"""Audio-quality findings on waveforms: clipped, too quiet, DC offset, (near-)silent, upsampled.

``quality_stats(x, sr)`` measures one clip (pure numpy, about 1 ms for a 1 s clip); ``quality_flags``
turns the stats of n clips into one boolean array per finding. Every threshold is a named constant
below, with the reason for its value. The thresholds were set on the real clips of the Speech
Commands v0.01 sample and the Arabic Speech Commands set (clean real clips as negatives) and the
defects ``ml.plant`` plants into them (``bench/plant_real.py`` measures precision and recall).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
# Upsampled from 8 kHz: the mean power spectrum of the clip's louder half of frames drops by more
# than 30 dB from 2.8-3.8 kHz to 4.5-7.5 kHz (nothing above the old Nyquist frequency but the
# resampler's leak). Real full-band speech falls by 10 dB in the median; 2-5 % of real clips fall
# further, nearly all from a few speakers whose devices recorded band-limited (real defects too).
UPSAMPLED_STEP_DB = -30.0
BAND_BELOW_HZ = (2800.0, 3800.0)  # just under the 4 kHz Nyquist frequency of 8 kHz audio
BAND_ABOVE_HZ = (4500.0, 7500.0)  # above it, clear of the resampler's transition band
_NFFT = 512


@dataclass(frozen=True)
class QualityStats:
    """What the quality findings read from one clip."""

    peak_dbfs: float
    plateau_share: float  # share of samples in pairs of consecutive samples at the peak value
    dc: float  # mean sample value, full scale = 1
    band_step_db: float  # power 4.5-7.5 kHz minus power 2.8-3.8 kHz, dB (0 when it cannot be measured)

    def as_dict(self) -> dict:
        return asdict(self)


def _band_step(x: np.ndarray, sample_rate: int) -> float:
    """Power above the 8 kHz-rate band minus power just below it, over the louder half of the frames."""
    if sample_rate < 2 * BAND_ABOVE_HZ[1] or x.size < _NFFT:
        return 0.0  # the clip's own rate is too low to hold the upper band: nothing to say
    frames = np.lib.stride_tricks.sliding_window_view(x, _NFFT)[::_NFFT] * np.hanning(_NFFT)  # (n_frames, NFFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (n_frames, NFFT/2 + 1)
    energy = power.sum(axis=1)
    spec = power[energy >= np.median(energy)].mean(axis=0)  # louder half: the word, not the pauses
    f = np.fft.rfftfreq(_NFFT, 1.0 / sample_rate)
    below = spec[(f >= BAND_BELOW_HZ[0]) & (f < BAND_BELOW_HZ[1])].mean()
    above = spec[(f >= BAND_ABOVE_HZ[0]) & (f < BAND_ABOVE_HZ[1])].mean()
    if below <= 0.0:
        return 0.0
    return float(10.0 * np.log10((above + 1e-30) / below))


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

    A silent clip is only 'silent' (it is not also too quiet, and its spectrum says nothing).
    """
    peak_db = np.asarray(peak_dbfs, dtype=np.float64)
    silent = peak_db < SILENT_PEAK_DBFS
    return {
        "clipped": (np.asarray(plateau_share) >= CLIPPED_MIN_SHARE) & (peak_db >= 20 * np.log10(CLIPPED_MIN_PEAK)),
        "too_quiet": ~silent & (peak_db < QUIET_PEAK_DBFS),
        "dc_offset": np.abs(np.asarray(dc)) >= DC_MAX,
        "silent": silent,
        "upsampled": ~silent & (np.asarray(band_step_db) <= UPSAMPLED_STEP_DB),
    }


def flags_of(stats: list[QualityStats]) -> dict[str, np.ndarray]:
    """``quality_flags`` for a list of per-clip stats."""
    cols = {k: np.array([getattr(s, k) for s in stats], dtype=np.float64)
            for k in ("peak_dbfs", "plateau_share", "dc", "band_step_db")}
    return quality_flags(**cols)
