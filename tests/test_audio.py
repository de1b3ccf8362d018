"""ml.audio (reading, validation, shaping) and ml.analysis.signal (per-clip stats) on real WAV files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ml.analysis.signal import signal_stats
from ml.audio import REASONS, AudioError, _pcm16_wav, decode, fix_length, read_wav, resample
from tests.conftest import tone, write_wav


def test_decode_reads_int16_mono(tmp_path):
    x = tone(0.5, amp=0.5)
    d = decode(write_wav(tmp_path / "a.wav", x), sample_rate=16000, max_samples=16000)
    assert d.samples.dtype == np.int16 and d.samples.shape == (8000,)
    assert d.sample_rate == 16000 and d.channels == 1 and d.n_samples == 8000
    np.testing.assert_allclose(d.as_float(), x, atol=1 / 16000)


def _bad_file(kind: str, tmp_path):
    p = tmp_path / f"{kind}.wav"
    if kind == "corrupt":
        p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(7)) + b"\xff" * 40)
    elif kind == "random_bytes":
        p.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p.write_text("this is a text file, not a recording\n")
    elif kind == "header_only":
        write_wav(p, np.zeros(0, dtype=np.float32))
    elif kind == "8khz":
        write_wav(p, tone(1.0, sample_rate=8000), sample_rate=8000)
    elif kind == "stereo":
        write_wav(p, np.stack([tone(0.5), tone(0.5, freq=220)], axis=1))
    elif kind == "too_long":
        write_wav(p, tone(1.5))
    return p


@pytest.mark.parametrize("kind,reason", [
    ("corrupt", "unreadable"), ("random_bytes", "not_audio"), ("empty", "empty"), ("text", "not_audio"),
    ("header_only", "empty"), ("8khz", "sample_rate"), ("stereo", "channels"), ("too_long", "too_long"),
])
def test_decode_rejects_bad_file_with_reason(tmp_path, kind, reason):
    path = _bad_file(kind, tmp_path)
    with pytest.raises(AudioError) as err:
        decode(path, sample_rate=16000, max_samples=16000)
    assert err.value.reason == reason and reason in REASONS
    assert err.value.detail


def test_decode_missing_file_is_unreadable(tmp_path):
    with pytest.raises(AudioError) as err:
        decode(tmp_path / "nope.wav")
    assert err.value.reason == "unreadable"


def test_decode_accepts_any_rate_and_length_when_unchecked(tmp_path):
    d = decode(write_wav(tmp_path / "a.wav", tone(2.0, sample_rate=8000), sample_rate=8000),
               sample_rate=None, max_samples=None)
    assert d.sample_rate == 8000 and d.n_samples == 16000


def test_read_wav_mixes_stereo_to_mono_float32(tmp_path):
    left, right = tone(0.25, amp=0.4), np.zeros(4000, dtype=np.float32)
    x, sr = read_wav(write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1)))
    assert sr == 16000 and x.dtype == np.float32 and x.shape == (4000,)
    np.testing.assert_allclose(x, left / 2, atol=2 / 32768)


def test_read_wav_raises_typed_error_on_text(tmp_path):
    p = tmp_path / "t.wav"
    p.write_text("hello")
    with pytest.raises(AudioError) as err:
        read_wav(p)
    assert err.value.reason == "not_audio"


def test_fix_length_pads_and_trims():
    x = np.arange(1, 6, dtype=np.float32)
    assert fix_length(x, 8).tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert fix_length(x, 3).tolist() == [1, 2, 3]
    assert fix_length(x, 5) is x
    assert fix_length(np.ones((2, 3), dtype=np.float32), 4).shape == (2, 4)


def test_resample_keeps_the_tone():
    x = tone(1.0, freq=440.0, sample_rate=16000)
    y = resample(x, 16000, 8000)
    assert y.dtype == np.float32 and y.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 8000 / len(y) - 440.0) <= 1.0
    assert resample(x, 16000, 16000).shape == x.shape


def test_signal_stats_silence_and_levels():
    x = tone(1.0, amp=0.5, start=0.2, stop=0.6)
    s = signal_stats(x, 16000)
    assert s.duration_s == pytest.approx(1.0)
    assert s.peak == pytest.approx(0.5, abs=1e-3)
    # sine of amplitude 0.5 on 40% of the clip: mean square 0.125 * 0.4 = 0.05 -> -13.0 dBFS
    assert s.rms_dbfs == pytest.approx(10 * np.log10(0.05), abs=0.2)
    assert s.lead_silence_ms == pytest.approx(200, abs=10)
    assert s.trail_silence_ms == pytest.approx(400, abs=10)
    assert s.end_energy_db < -60 and not s.cutoff_signal
    assert s.clipped_frac == 0.0


def test_signal_stats_flags_speech_running_past_the_end():
    s = signal_stats(tone(1.0, amp=0.3, start=0.5), 16000)
    assert s.end_energy_db > -3 and s.trail_silence_ms == 0 and s.cutoff_signal


def test_signal_stats_steady_noise_is_not_cut_off():
    x = np.random.default_rng(1).normal(0, 0.05, 16000).astype(np.float32)
    assert not signal_stats(x, 16000).cutoff_signal


def test_signal_stats_clipping_and_digital_silence():
    x = np.clip(tone(1.0, amp=2.0), -1.0, 1.0)
    assert signal_stats(x, 16000).clipped_frac > 0.5
    z = signal_stats(np.zeros(16000, dtype=np.float32), 16000)
    assert z.peak == 0 and z.lead_silence_ms == 1000 and not z.cutoff_signal and z.rms_dbfs <= -100


def _with_list_chunk(src: bytes) -> bytes:
    """The same WAV with an odd-sized LIST chunk (padded) between 'fmt ' and 'data'."""
    i = src.index(b"data")
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx" + b"\0"
    out = src[:i] + extra + src[i:]
    return out[:4] + (len(out) - 8).to_bytes(4, "little") + out[8:]


def test_decode_fast_path_matches_libsndfile(tmp_path, shared_sample):
    files = sorted(shared_sample.glob("*/*.wav"))[::10]
    base = write_wav(tmp_path / "base.wav", tone(0.5, amp=0.4)).read_bytes()
    (tmp_path / "list.wav").write_bytes(_with_list_chunk(base))
    (tmp_path / "cut.wav").write_bytes(base[: len(base) - 1001])  # truncated mid-sample
    files += [tmp_path / "base.wav", tmp_path / "list.wav", tmp_path / "cut.wav"]
    for p in files:
        assert _pcm16_wav(p) is not None, p  # the fast path handled it ...
        expected, sr = sf.read(str(p), dtype="int16")
        got = decode(p, sample_rate=None, max_samples=None)
        assert got.sample_rate == sr and got.samples.flags.writeable
        np.testing.assert_array_equal(got.samples, expected)  # ... and agrees with libsndfile
    stereo = write_wav(tmp_path / "st.wav", np.stack([tone(0.2), tone(0.2, freq=300)], axis=1))
    expected = np.round(sf.read(str(stereo), dtype="int16")[0].astype(np.float32).mean(axis=1)).astype(np.int16)
    np.testing.assert_array_equal(decode(stereo, require_mono=False).samples, expected)


def test_decode_other_encodings_go_through_libsndfile(tmp_path):
    for subtype in ("FLOAT", "PCM_24", "PCM_U8"):
        p = write_wav(tmp_path / f"{subtype}.wav", tone(0.3, amp=0.5), subtype=subtype)
        assert _pcm16_wav(p) is None
        d = decode(p)
        np.testing.assert_allclose(d.as_float(), tone(0.3, amp=0.5), atol=2e-2 if subtype == "PCM_U8" else 1e-4)
    flac = tmp_path / "a.flac"
    sf.write(str(flac), tone(0.3), 16000, format="FLAC")
    assert decode(flac).n_samples == 4800
