"""Feature values against reference formulas written in numpy: mel filterbank, log-mel, SpecAugment, resampling."""

from __future__ import annotations

import numpy as np
import torch

from ml.config import TrainConfig
from ml.features import LOG_EPS, LogMel, mel_filterbank, n_frames, resample, spec_augment


def _np_mel_fb(n_fft: int, n_mels: int, sr: int) -> np.ndarray:
    """Textbook HTK triangular filters, one loop per filter."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(0.0), mel(sr / 2), n_mels + 2))
    fb = np.zeros((len(freqs), n_mels))
    for j in range(n_mels):
        lo, c, hi = edges[j], edges[j + 1], edges[j + 2]
        rise = (freqs - lo) / (c - lo)
        fall = (hi - freqs) / (hi - c)
        fb[:, j] = np.maximum(0, np.minimum(rise, fall))
    return fb


def _np_logmel(x: np.ndarray, sr=16000, n_fft=512, win=480, hop=160, n_mels=40) -> np.ndarray:
    """Centred frames (zero padded by n_fft/2), periodic Hann window centred in the FFT frame."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded_win = np.zeros(n_fft)
    off = (n_fft - win) // 2
    padded_win[off:off + win] = window
    xp = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = 1 + (len(xp) - n_fft) // hop
    spec = np.stack([np.abs(np.fft.rfft(xp[t * hop:t * hop + n_fft] * padded_win)) ** 2 for t in range(frames)], 1)
    return np.log(_np_mel_fb(n_fft, n_mels, sr).T @ spec + LOG_EPS)


def test_mel_filterbank_matches_numpy_reference():
    fb = mel_filterbank(512, 40, 16000).numpy()
    ref = _np_mel_fb(512, 40, 16000)
    assert fb.shape == (257, 40)
    np.testing.assert_allclose(fb, ref, atol=1e-6)
    assert (fb.sum(0) > 0).all()  # no empty filter at 40 mels / 512-point FFT


def test_logmel_matches_numpy_stft_reference():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(16000)).astype(np.float32)
    cfg = TrainConfig()
    lm = LogMel(cfg.sample_rate, cfg.n_mels, cfg.win_samples, cfg.hop_samples, cfg.n_fft)
    out = lm(torch.from_numpy(x).unsqueeze(0))[0].numpy()
    ref = _np_logmel(x.astype(np.float64))
    assert out.shape == (40, n_frames(16000, 160)) == ref.shape == (40, 101)
    np.testing.assert_allclose(out, ref, atol=2e-3, rtol=1e-4)


def test_logmel_tone_peaks_in_the_right_mel_bin():
    t = torch.arange(16000) / 16000
    lm = LogMel()
    out = lm(0.5 * torch.sin(2 * torch.pi * 1000 * t).unsqueeze(0))[0]  # (40, 101)
    fb = mel_filterbank(512, 40, 16000)
    expected = int(fb[round(1000 / (8000 / 256))].argmax())
    assert int(out[:, 50].argmax()) == expected


def test_spec_augment_masks_bands_and_is_reproducible():
    spec = torch.randn(8, 40, 101)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = spec_augment(spec, 2, 5, 2, 10, generator=g1)
    b = spec_augment(spec, 2, 5, 2, 10, generator=g2)
    assert torch.equal(a, b)
    changed = a != spec
    assert changed.any()
    # A frequency mask covers whole rows of one clip; at most 2 masks x 5 bins.
    for i in range(8):
        full_rows = changed[i].all(1).sum()
        assert full_rows <= 10
        full_cols = changed[i].all(0).sum()
        assert full_cols <= 20
    assert torch.equal(spec_augment(spec, 0, 5, 0, 10), spec)


def test_resample_keeps_passband_and_removes_aliases():
    t = torch.arange(16000) / 16000
    low = resample(torch.sin(2 * torch.pi * 1000 * t).unsqueeze(0), 16000, 8000)
    high = resample(torch.sin(2 * torch.pi * 6000 * t).unsqueeze(0), 16000, 8000)  # above the new Nyquist
    assert low.shape == (1, 8000)
    assert abs(float(low[0, 200:-200].abs().max()) - 1.0) < 0.01
    assert float(high[0, 200:-200].abs().max()) < 0.01
    spectrum = np.abs(np.fft.rfft(low[0].numpy()))
    assert abs(int(spectrum.argmax()) - 1000) <= 1  # 1 Hz bins at 8000 samples
