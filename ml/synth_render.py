"""Signal side of the demo data: speakers, clip rendering with planted defects, background noise.

Everything here is a pure function of its arguments and a ``numpy.random.Generator`` (plus the
eSpeak engine, see ``ml.synth_voice`` on determinism). ``ml.synth`` drives it from worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.synth_voice import ENGLISH_VOICES, OTHER_VOICES, TARGET_RATE, VARIANTS, Espeak, to_16k, trim

SR = TARGET_RATE
CLIP = SR  # a full clip is exactly one second
WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
    "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
LONG_WORDS = frozenset({"sheila", "marvin", "forward", "backward", "visual", "follow", "learn"})
DEFECTS = ("cutoff", "mislabeled", "multiple_words", "noise_only")
NOISE_KINDS = ("white", "pink", "brown", "hum")

# Per-clip defect probabilities. Cut-offs: (7 * 0.16 + 28 * 0.04) / 35 = 6.4 % overall.
P_CUTOFF_LONG = 0.16
P_CUTOFF = 0.04
P_MISLABELED = 0.025
P_MULTIPLE = 0.01
P_NOISE_ONLY = 0.01
P_SHORT = 0.08
P_FOREIGN = 0.1  # share of training speakers with another language's voice  # clean clips saved shorter than 1 s, as some real ones are

# Pairs people (and models) confuse; half of the mislabeled clips use one when there is one.
CONFUSABLE = {
    "tree": "three", "three": "tree", "bed": "bird", "bird": "bed", "no": "go", "go": "no", "off": "up",
    "up": "off", "dog": "down", "down": "dog", "four": "forward", "forward": "four", "learn": "left",
    "left": "learn", "on": "one", "one": "on", "five": "nine", "nine": "five", "follow": "forward",
}
# A cut-off clip keeps this share of its word's beginning (and at least KEEP_MIN_S seconds).
KEEP_MIN = 0.10
KEEP_MAX = 0.30
KEEP_MIN_S = 0.06
_TAIL = 0.06  # s of room a clean clip keeps after the word, so its last 50 ms are background only


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: a voice plus the habits of their recording set-up."""

    id: str  # 8 hex digits, like the real data set's
    split: str  # train | validation | test, from the published hashing rule
    voice: str  # eSpeak voice name with a variant, e.g. "en-us+f3"
    rate: int  # words per minute
    pitch: int  # eSpeak pitch, 0-99
    pitch_range: int  # eSpeak intonation range, 0-99
    peak_db: float  # speech peak level, dBFS
    onset_mean: float  # s, where the word usually starts
    onset_sd: float  # s
    noise_kind: str  # one of NOISE_KINDS
    noise_db: float  # RMS level of the recording's background noise, dBFS
    tilt: float  # one-tap microphone colouring, y[n] = x[n] + tilt * x[n-1]


def make_speaker(speaker_id: str, split: str, seed: int) -> Speaker:
    """Draw a speaker's voice and habits, deterministically from the seed and the id.

    About 1 training speaker in 10 gets another language's voice reading the English spelling (a
    strong accent). Held-out speakers always get an English accent: an accent a model has heard
    from one or two people cannot be learned, and the clean held-out accuracy should measure the
    model and the planted defects, not that.
    """
    rng = np.random.default_rng([seed, int(speaker_id, 16), 1])
    foreign = rng.random() < P_FOREIGN and split == "train"
    base = rng.choice(OTHER_VOICES) if foreign else rng.choice(ENGLISH_VOICES)
    peak_db = float(rng.uniform(-18.0, -3.0))
    return Speaker(
        id=speaker_id,
        split=split,
        voice=f"{base}+{rng.choice(VARIANTS)}",
        rate=int(rng.integers(140, 215)),
        pitch=int(rng.integers(25, 76)),
        pitch_range=int(rng.integers(30, 81)),
        peak_db=peak_db,
        onset_mean=float(rng.uniform(0.06, 0.32)),
        onset_sd=float(rng.uniform(0.02, 0.07)),
        noise_kind=str(rng.choice(NOISE_KINDS)),
        noise_db=peak_db - float(rng.uniform(38.0, 56.0)),
        tilt=float(rng.uniform(-0.4, 0.4)),
    )


def choose_defect(word: str, rng: np.random.Generator, scale: float = 1.0) -> str:
    """Decide what a clip slot holds: "clean" or one of DEFECTS (``scale`` multiplies the rates)."""
    u = rng.random() / scale
    for kind, p in (
        ("cutoff", P_CUTOFF_LONG if word in LONG_WORDS else P_CUTOFF),
        ("mislabeled", P_MISLABELED),
        ("multiple_words", P_MULTIPLE),
        ("noise_only", P_NOISE_ONLY),
    ):
        if u < p:
            return kind
        u -= p
    return "clean"


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of ``n`` samples: white, pink (1/f), brown (1/f^2) or mains hum."""
    if kind == "hum":
        t = np.arange(n) / SR
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(a * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
                for k, a in ((1, 1.0), (2, 0.5), (3, 0.35), (5, 0.15)))
        x = x + 0.05 * colored_noise("pink", n, rng)  # a hum never comes alone
    else:
        alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        f[0] = f[1] if n > 1 else 1.0
        spec *= np.maximum(f, 20.0) ** (-alpha / 2)  # flatten below 20 Hz so brown noise does not drift
        x = np.fft.irfft(spec, n)
    x = np.asarray(x, dtype=np.float64)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def _say(es: Espeak, sp: Speaker, text: str, rng: np.random.Generator, rate_factor: float = 1.0) -> np.ndarray:
    """One utterance by this speaker with small take-to-take jitter; trimmed, peak-normalised, 16 kHz."""
    rate = int(np.clip(sp.rate * rate_factor * rng.uniform(0.93, 1.07), 80, 450))
    pitch = int(np.clip(sp.pitch + rng.integers(-4, 5), 0, 99))
    x = trim(to_16k(es.speak(text, sp.voice, rate, pitch, sp.pitch_range, seed=int(rng.integers(2**31)))))
    return x / (np.abs(x).max() + 1e-9)


def _fitting(es: Espeak, sp: Speaker, text: str, rng: np.random.Generator, max_s: float,
             rate_factor: float = 1.0) -> np.ndarray:
    """Speak until the utterance lasts at most ``max_s`` seconds, a bit faster each try."""
    for _ in range(8):
        w = _say(es, sp, text, rng, rate_factor)
        if w.size <= max_s * SR:
            return w
        rate_factor *= 1.15
    return w[: int(max_s * SR)]


def _frame_rms_db(x: np.ndarray, win: int = 800, hop: int = 160) -> np.ndarray:
    """RMS in dB of 50 ms windows every 10 ms (one value per window start)."""
    if x.size < win:
        return np.array([20 * np.log10(np.sqrt(np.mean(x**2)) + 1e-9)])
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, x.size - win + 1, hop)
    return 10 * np.log10((c[starts + win] - c[starts]) / win + 1e-18)


def _cut_point(w: np.ndarray, rng: np.random.Generator, max_c: int) -> int:
    """Where to end a cut-off word: keep only its beginning, ``KEEP_MIN``-``KEEP_MAX`` of it and at
    least ``KEEP_MIN_S``, at a point where the fragment is still loud (the 50 ms before the cut
    within 12 dB of the fragment's loudest 50 ms).

    So little of the word is left that a model names the filed word for only about two thirds of
    such clips (the demo's baseline), and they gather in one region of the embedding space with
    many disagreements: the cluster earmark's error-cluster finding should rank first.
    """
    db = _frame_rms_db(w)  # 50 ms windows starting every 10 ms
    lo = min(max(int(KEEP_MIN * w.size), int(KEEP_MIN_S * SR)), max_c - 1)
    hi = min(max(int(KEEP_MAX * w.size), lo + 1), max_c)
    for _ in range(24):
        c = int(rng.integers(lo, hi))
        # The windows inside w[:c] are the first (c - 800) // 160 + 1.
        if c >= 800 and _frame_rms_db(w[c - 800: c]).max() >= db[: (c - 800) // 160 + 1].max() - 12.0:
            return c
    # Fall back to the loudest window end in range.
    ends = np.arange(db.size) * 160 + 800
    ok = (ends >= lo) & (ends <= hi)
    return int(ends[ok][np.argmax(db[ok])]) if ok.any() else int(ends[np.argmax(db)])


def render_clip(es: Espeak, sp: Speaker, word: str, kind: str,
                rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """Render one clip filed under ``word``; returns (int16 samples, true label, detail)."""
    length = CLIP
    true_label, detail = word, ""
    if kind == "noise_only":
        speech, onset, true_label = np.zeros(0, np.float32), 0, ""
        noise_boost = float(rng.uniform(3.0, 12.0))
        detail = f"{sp.noise_kind} noise only, no speech"
    else:
        noise_boost = 0.0
        if kind == "cutoff":
            slow = rng.random() < 0.5  # half late onsets, half a drawn-out word
            w = _say(es, sp, word, rng, rate_factor=float(rng.uniform(0.55, 0.75)) if slow else 1.0)
            c = _cut_point(w, rng, max_c=CLIP - int(0.02 * SR))
            speech, onset = w[:c], CLIP - c
            detail = (f"{'drawn-out word' if slow else 'late onset'}: starts at {onset / SR:.3f} s, "
                      f"word {w.size / SR:.3f} s, {c / w.size:.0%} kept")
        else:
            if kind == "mislabeled":
                other = CONFUSABLE.get(word) if rng.random() < 0.5 else None
                true_label = other or str(rng.choice([x for x in WORDS if x != word]))
                detail = f"says {true_label!r}, filed under {word!r}"
                speech = _fitting(es, sp, true_label, rng, 0.9)
            elif kind == "multiple_words":
                other = str(rng.choice([x for x in WORDS if x != word]))
                pair = (word, other) if rng.random() < 0.5 else (other, word)
                true_label = "+".join(pair)
                speech = _two_words(es, sp, pair, rng)
                detail = f"says {pair[0]!r} then {pair[1]!r}"
            else:
                speech = _fitting(es, sp, word, rng, 0.9)
            latest = max(0.02, 1.0 - speech.size / SR - _TAIL)
            onset = int(SR * float(np.clip(rng.normal(sp.onset_mean, sp.onset_sd), 0.02, latest)))
            if kind == "clean" and rng.random() < P_SHORT:
                end = onset + speech.size + int(_TAIL * SR)
                length = int(rng.integers(min(end, CLIP), CLIP + 1))
    return _mix(sp, speech, onset, length, noise_boost, rng), true_label, detail


def _two_words(es: Espeak, sp: Speaker, pair: tuple[str, str], rng: np.random.Generator) -> np.ndarray:
    """Two words with a short pause, sped up until both fit in the clip."""
    factor = 1.2
    for _ in range(8):
        a, b = _say(es, sp, pair[0], rng, factor), _say(es, sp, pair[1], rng, factor)
        gap = np.zeros(int(SR * rng.uniform(0.04, 0.12)), np.float32)
        both = np.concatenate([a, gap, b])
        if both.size <= 0.9 * SR:
            return both
        factor *= 1.15
    return both[: int(0.9 * SR)]


def _mix(sp: Speaker, speech: np.ndarray, onset: int, length: int, noise_boost: float,
         rng: np.random.Generator) -> np.ndarray:
    """Place the speech at ``onset``, add the speaker's background noise, colour, quantise."""
    x = np.zeros(length, np.float32)
    n = min(speech.size, length - onset)
    if n > 0:
        gain = 10 ** ((sp.peak_db + rng.normal(0.0, 1.5)) / 20)
        x[onset: onset + n] = speech[:n] * gain
    noise_db = sp.noise_db + rng.normal(0.0, 2.0) + noise_boost
    x += colored_noise(sp.noise_kind, length, rng) * np.float32(10 ** (noise_db / 20))
    x[1:] += np.float32(sp.tilt) * x[:-1].copy()
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def background_noise(es: Espeak, seconds: float, seed: int) -> dict[str, np.ndarray]:
    """The ``_background_noise_`` files: white, pink, brown, mains hum and speech babble (int16)."""
    rng = np.random.default_rng([seed, 0xB6])
    n = int(seconds * SR)
    out = {}
    for name, kind, db in (("white_noise", "white", -24.0), ("pink_noise", "pink", -22.0),
                           ("brown_noise", "brown", -20.0), ("mains_hum", "hum", -26.0)):
        out[name] = colored_noise(kind, n, rng) * 10 ** (db / 20)
    out["babble"] = _babble(es, n, rng) * 10 ** (-24.0 / 20)
    return {k: np.clip(np.round(v * 32767), -32768, 32767).astype(np.int16) for k, v in out.items()}


_FILLER = ("the of and to in is you that it he was for on are as with his they at be this have from "
           "or had by word but what some we can out other were all there when your how said an each "
           "she which do their time if will way about many then them write would like so these her").split()


def _babble(es: Espeak, n: int, rng: np.random.Generator) -> np.ndarray:
    """Six overlapping talkers reading random filler words, as in a busy room (unit RMS)."""
    acc = np.zeros(n, np.float64)
    for _ in range(6):
        voice = f"{rng.choice(ENGLISH_VOICES)}+{rng.choice(VARIANTS)}"
        pos = int(rng.integers(0, SR))
        while pos < n:
            text = " ".join(rng.choice(_FILLER, size=40))
            s = to_16k(es.speak(text, voice, int(rng.integers(150, 220)), int(rng.integers(20, 80)),
                                seed=int(rng.integers(2**31))))
            s = s / (np.sqrt(np.mean(s**2)) + 1e-9) * rng.uniform(0.5, 1.0)
            m = min(s.size, n - pos)
            acc[pos: pos + m] += s[:m]
            pos += m + int(rng.integers(0, SR // 2))
    return (acc / (np.sqrt(np.mean(acc**2)) + 1e-12)).astype(np.float32)
