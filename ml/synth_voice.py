"""eSpeak NG through ctypes: the voice engine behind ``ml.synth``.

The library (``libespeak-ng.so`` and its ``espeak-ng-data``) comes from the ``espeakng_loader``
wheel, so no system package is needed. libespeak-ng keeps global state, so there is one
``Espeak`` per process, made by a worker initializer.

Determinism: eSpeak carries a little state from one utterance to the next (the glottal phase and
a pitch-flutter index that no API resets), so the same call can give slightly different samples
depending on what the process spoke before. ``ml.synth`` therefore renders each chunk of work in
a fresh worker process (``maxtasksperchild=1``) and speaks the chunk's clips in a fixed order;
with ``espeak_ng_SetRandSeed`` before each utterance, the output is then a pure function of the
inputs. A test checks that twice the same seed gives byte-identical files.
"""

from __future__ import annotations

import ctypes
from math import gcd
from pathlib import Path

import numpy as np

ESPEAK_RATE = 22050  # eSpeak NG's fixed output rate
TARGET_RATE = 16000

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}

# Base voices: eSpeak's English accents, then other languages reading the English spelling
# (an accent, the way non-native speakers in the real data set sound).
ENGLISH_VOICES = (
    "en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
# Germanic languages only: their spelling rules keep most of the 35 words recognisable; Romance
# ones (es, it, pt) turn "five" into "fee-veh" and make a speaker unlearnable from 40 others.
OTHER_VOICES = ("nl", "de", "sv")
# Voice variants (voices/!v): timbre, gender, breathiness. Left out: robot-like and Klatt-synthesiser
# ones (david, adam, klatt*, ...) and the extremes (zac: a child at 1.45x formants; travis: half F1),
# because a timbre that only one or two speakers have cannot be learned from 40 speakers.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "Andy", "Annie", "aunty", "linda", "max", "norbert", "paul", "quincy", "rob", "steph",
)

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Espeak:
    """One initialised libespeak-ng in synchronous (retrieval) mode. Make at most one per process."""

    def __init__(self) -> None:
        import espeakng_loader  # only the wheel's paths; imported here so ml.synth loads without it

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        # espeak-ng-data's parent folder is the path eSpeak wants.
        data_parent = str(Path(espeakng_loader.get_data_path()).parent)
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"libespeak-ng failed to initialise (returned {rate}) from {data_parent}")
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds only the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, _events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = keep going

    def speak(self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50,
              seed: int = 0) -> np.ndarray:
        """Speak ``text`` and return int16 samples at 22,050 Hz (leading/trailing silence included).

        ``rate`` is words per minute (80-450), ``pitch`` and ``pitch_range`` 0-100.
        """
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        for name, value in (("rate", rate), ("volume", 100), ("pitch", pitch), ("range", pitch_range)):
            self._lib.espeak_SetParameter(_PARAM[name], int(value), 0)
        self._lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        self._chunks.clear()
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} for {text!r} in voice {voice!r}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)


_TAPS_HALF = 32  # kernel half-length in input samples: ~60 dB stopband, 6.9-8.1 kHz transition
_KERNEL: dict[tuple[int, int], np.ndarray] = {}


def _polyphase_kernel(up: int, down: int) -> np.ndarray:
    """Kaiser-windowed sinc, one row of 2*_TAPS_HALF weights per output phase: (up, 2H)."""
    key = (up, down)
    if key not in _KERNEL:
        cutoff = 0.5 * min(1.0, up / down) * 0.94  # cycles per input sample, just below the new Nyquist
        j = np.arange(-_TAPS_HALF + 1, _TAPS_HALF + 1)
        u = np.arange(up)[:, None] / up - j[None, :]  # distance from the output instant, input samples
        w = 2 * cutoff * np.sinc(2 * cutoff * u) * np.kaiser(2 * _TAPS_HALF + 1, 8.0)[
            np.clip(np.round(u + _TAPS_HALF).astype(int), 0, 2 * _TAPS_HALF)]
        _KERNEL[key] = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    return _KERNEL[key]


def to_16k(x: np.ndarray) -> np.ndarray:
    """Resample eSpeak's 22,050 Hz int16 output to 16 kHz float32 in [-1, 1] (polyphase FIR, numpy)."""
    g = gcd(ESPEAK_RATE, TARGET_RATE)
    up, down = TARGET_RATE // g, ESPEAK_RATE // g  # 320, 441
    x = x.astype(np.float32) / 32768.0
    n_out = -(-x.size * up // down)
    if n_out == 0:
        return np.zeros(0, np.float32)
    pos = np.arange(n_out) * down  # output n sits at input time pos / up
    base, phase = pos // up, pos % up
    xp = np.pad(x, (_TAPS_HALF, _TAPS_HALF + 1))
    idx = base[:, None] + np.arange(1, 2 * _TAPS_HALF + 1)[None, :]  # (n_out, 2H) into the padded input
    return np.einsum("ij,ij->i", xp[idx], _polyphase_kernel(up, down)[phase]).astype(np.float32)


def trim(x: np.ndarray, floor_db: float = -45.0, frame: int = 160) -> np.ndarray:
    """Cut leading and trailing silence: keep from the first to the last 10 ms frame whose RMS is
    within ``floor_db`` of the loudest frame."""
    if x.size < frame:
        return x
    n = x.size // frame
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > floor_db)[0]
    if loud.size == 0:
        return x[:0]
    return x[loud[0] * frame: min(x.size, (loud[-1] + 1) * frame)]
