"""Reading, validating and shaping audio: WAV (or FLAC/OGG) in, float32 mono arrays out.

Everything that touches audio files goes through here, so a bad file always turns into the same
typed problem, ``AudioError(reason, detail)``, whose ``reason`` is one of ``REASONS``. The
happy path costs one ``soundfile`` open per file; the header is only sniffed again after a
failure, to tell "not audio at all" from "an audio file that is broken".
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

# Files ingest considers audio; anything else in a class folder is ignored.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

# Why a file can be rejected. Stored as ``Reject.reason``.
REASONS = {
    "unreadable": "the file is damaged or cannot be opened",
    "empty": "the file holds no audio samples",
    "not_audio": "the file is not an audio file",
    "sample_rate": "the sample rate differs from the data set's",
    "channels": "the file is not mono",
    "too_long": "the clip is longer than the allowed maximum",
}

# Leading bytes of the containers libsndfile reads; a failing file without one of them is "not audio".
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b".snd", b"caff", b"wvpk", b"BW64")


class AudioError(Exception):
    """A file that cannot be used as a clip. ``reason`` is a key of ``REASONS``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Decoded:
    """A validated clip as stored on disk: int16 samples (mono, shape (n,)) and its format."""

    samples: np.ndarray  # int16, shape (n,)
    sample_rate: int
    channels: int

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    def as_float(self) -> np.ndarray:
        """float32 in [-1, 1), shape (n,)."""
        return self.samples.astype(np.float32) * np.float32(1.0 / 32768.0)


def _classify_open_failure(path: Path, exc: Exception) -> AudioError:
    """Turn a soundfile/OS failure into the right typed problem."""
    try:
        size = os.path.getsize(path)
    except OSError as os_exc:
        return AudioError("unreadable", f"cannot access the file: {os_exc.strerror or os_exc}")
    if size == 0:
        return AudioError("empty", "the file is 0 bytes long")
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as os_exc:
        return AudioError("unreadable", f"cannot read the file: {os_exc.strerror or os_exc}")
    if not any(head.startswith(m) for m in _MAGIC) and not head.startswith(b"ID3"):
        # The detail never quotes the bytes: they may be anything (a linked /etc/passwd, say).
        return AudioError("not_audio", "no audio header (not a WAV, FLAC, Ogg or other sound file)")
    return AudioError("unreadable", f"corrupt audio: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}")


# The fast path reads whole files; anything bigger goes through libsndfile, which checks the
# length from the header before reading.
_FAST_MAX_BYTES = 4 << 20


def _pcm16_wav(path: Path) -> tuple[np.ndarray, int, int] | None:
    """(int16 samples (frames, channels), sample rate, channels) of a plain 16-bit PCM WAV, else None.

    A few microseconds instead of libsndfile's ~40: ingest decodes every clip, and the data sets
    are almost all plain PCM WAV. Anything unusual (other encodings, WAVE_FORMAT_EXTENSIBLE, odd
    chunks, big files) returns None and goes to libsndfile, so both paths give the same samples.
    """
    try:
        if os.path.getsize(path) > _FAST_MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            if size < 16 or body + 16 > len(data):
                return None
            tag, channels, sr, _rate, align, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (tag, channels, sr, align, bits)
        elif cid == b"data":
            if fmt is None:
                return None
            tag, channels, sr, align, bits = fmt
            if tag != 1 or bits != 16 or channels < 1 or align != 2 * channels or sr <= 0:
                return None
            end = min(body + size, len(data))  # a truncated data chunk holds what is there, as in libsndfile
            n_frames = (end - body) // align
            samples = np.frombuffer(data, dtype="<i2", count=n_frames * channels, offset=body)
            return samples.reshape(n_frames, channels), sr, channels
        pos = body + size + (size & 1)
    return None


def _validate(frames: int, sr: int, channels: int, sample_rate: int | None, max_samples: int | None,
              require_mono: bool) -> None:
    if frames <= 0:
        raise AudioError("empty", "the file has a header but no samples")
    if sample_rate is not None and sr != sample_rate:
        raise AudioError("sample_rate", f"{sr} Hz, expected {sample_rate} Hz")
    if require_mono and channels != 1:
        raise AudioError("channels", f"{channels} channels, expected mono")
    if max_samples is not None and frames > max_samples:
        raise AudioError("too_long", f"{frames / sr:.3f} s ({frames} samples), at most {max_samples / sr:.3f} s allowed")


def decode(path: str | Path, sample_rate: int | None = 16000, max_samples: int | None = 16000,
           require_mono: bool = True) -> Decoded:
    """Open, validate and decode one file as int16.

    Raises ``AudioError`` when the file is unreadable, empty, not audio, at another sample rate
    than ``sample_rate`` (None accepts any), not mono (when ``require_mono``), or longer than
    ``max_samples`` (None accepts any length). Stereo is mixed down when allowed.
    """
    path = Path(path)
    fast = _pcm16_wav(path)
    if fast is not None:
        data, sr, channels = fast
        _validate(data.shape[0], sr, channels, sample_rate, max_samples, require_mono)
        data = data[:, 0].copy() if channels == 1 else data  # copy: own, writable memory
    else:
        try:
            with sf.SoundFile(str(path)) as f:
                sr, channels = int(f.samplerate), int(f.channels)
                _validate(int(f.frames), sr, channels, sample_rate, max_samples, require_mono)
                # Read float and quantise here: libsndfile's int16 read of a float WAV gives all zeros.
                x = f.read(dtype="float32", always_2d=False)
            data = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
        except AudioError:
            raise
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError, EOFError) as exc:
            raise _classify_open_failure(path, exc) from None
    if data.ndim == 2:  # (n, channels) -> mono
        data = np.round(data.astype(np.float32).mean(axis=1)).astype(np.int16)
    if data.shape[0] == 0:
        raise AudioError("empty", "no samples could be decoded")
    return Decoded(np.ascontiguousarray(data), sr, channels)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any readable audio file as (float32 mono array of shape (n,), sample rate).

    No sample-rate or length checks (use ``decode`` for those); raises ``AudioError`` when the
    file cannot be used at all.
    """
    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, EOFError) as exc:
        raise _classify_open_failure(path, exc) from None
    if data.shape[0] == 0:
        raise AudioError("empty", "the file holds no samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)  # (n, ch) -> (n,)
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def fix_length(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or trim the end so that the last axis has exactly ``n`` samples."""
    length = x.shape[-1]
    if length == n:
        return x
    if length > n:
        return x[..., :n]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n - length)]
    return np.pad(x, pad)


def resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Polyphase resampling along the last axis (float32 out)."""
    if sr_from == sr_to:
        return np.asarray(x, dtype=np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr_from), int(sr_to))
    y = resample_poly(np.asarray(x, dtype=np.float32), int(sr_to) // g, int(sr_from) // g, axis=-1)
    return y.astype(np.float32, copy=False)


def write_wav(path: str | Path, x: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write float samples in [-1, 1] (or int16) as a 16-bit PCM WAV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sample_rate, subtype="PCM_16")
    return path


# Native-rate reading for data sets not shaped like Speech Commands: any rate in this range, clips
# up to MAX_CLIP_SECONDS by default, nothing resampled at ingest (the trainer resamples).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
MAX_CLIP_SECONDS = 30.0  # the default longest clip; a longer file is a "too_long" reject


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding it."""

    sample_rate: int
    frames: int
    channels: int
    format: str  # WAV, FLAC, OGG, ...
    subtype: str  # PCM_16, FLOAT, VORBIS, ...

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def probe(path: str | Path) -> AudioInfo:
    """Read a file's header (rate, length, channels, format); raises ``AudioError`` when it is not usable audio."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, EOFError) as exc:
        raise _classify_open_failure(path, exc) from None
    if info.frames <= 0:
        raise AudioError("empty", "the file has a header but no samples")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels), str(info.format), str(info.subtype))


def decode_native(path: str | Path, max_seconds: float | None = MAX_CLIP_SECONDS,
                  min_rate: int = MIN_SAMPLE_RATE, max_rate: int = MAX_SAMPLE_RATE,
                  require_mono: bool = True) -> Decoded:
    """Decode a clip at its own sample rate: any rate in [min_rate, max_rate], at most ``max_seconds`` long.

    Like ``decode`` (same fast WAV path, same ``AudioError`` reasons), but the limits are a rate
    range and a duration in seconds rather than one rate and a sample count. None: no length limit.
    """
    cap = None if max_seconds is None else int(max_seconds * max_rate) + 1  # no rate allows more samples
    try:
        d = decode(path, sample_rate=None, max_samples=cap, require_mono=require_mono)
    except AudioError as exc:
        if exc.reason != "too_long":
            raise
        info = probe(path)
        raise AudioError("too_long", f"{info.duration_s:.3f} s at {info.sample_rate} Hz, "
                                     f"at most {max_seconds:g} s allowed") from None
    if not min_rate <= d.sample_rate <= max_rate:
        raise AudioError("sample_rate", f"{d.sample_rate} Hz, outside the {min_rate}-{max_rate} Hz earmark reads")
    if max_seconds is not None and d.n_samples > max_seconds * d.sample_rate:
        raise AudioError("too_long", f"{d.n_samples / d.sample_rate:.3f} s at {d.sample_rate} Hz, "
                                     f"at most {max_seconds:g} s allowed")
    return d
