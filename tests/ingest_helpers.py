"""Builders of small, real data set folders in each layout ingest reads (tests only)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from ml.speech_commands import which_set
from tests.conftest import tone, write_wav

SPEAKERS = ("0a7c2a8d", "1b4c9b89", "2c5d0e3f", "3d6e1f40", "4e7f2051", "5f803162", "60914273", "71a25384")


def clip(seed: int, seconds: float = 0.5) -> np.ndarray:
    """A short, unique tone burst (unique so that no two clips share a content hash)."""
    rng = np.random.default_rng(seed)
    return tone(seconds, freq=200 + 7 * seed, amp=0.3, start=0.05, stop=seconds * 0.8) + \
        rng.normal(0, 0.002, int(seconds * 16000)).astype(np.float32)


def write_wav_fast(path: Path, x: np.ndarray, sample_rate: int = 16000) -> Path:
    """Like ``write_wav`` but encodes in memory first: libsndfile's own file writes are slow here."""
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, subtype="PCM_16", format="WAV")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path


def make_training_layout(root: Path, words=("yes", "no", "up"), speakers=SPEAKERS, per_speaker: int = 1,
                         noise: bool = True, lists: bool = True, missing_listed: int = 3) -> list[str]:
    """A v0.01/v0.02-style training folder; split lists follow the hashing rule. Returns clip paths."""
    paths, seed = [], 0
    for w in words:
        for s in speakers:
            for n in range(per_speaker):
                rel = f"{w}/{s}_nohash_{n}.wav"
                write_wav(root / rel, clip(seed))
                paths.append(rel)
                seed += 1
    if lists:
        val = [p for p in paths if which_set(p) == "validation"]
        test = [p for p in paths if which_set(p) == "test"]
        ghosts = [f"{words[0]}/ffff{i:04d}_nohash_0.wav" for i in range(missing_listed)]
        (root / "validation_list.txt").write_text("\n".join(val + ghosts) + "\n")
        (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    if noise:
        write_wav(root / "_background_noise_" / "white_noise.wav",
                  np.random.default_rng(99).normal(0, 0.1, 32000).astype(np.float32))
        (root / "_background_noise_" / "README.md").write_text("noise")
    return paths


def make_test_archive(root: Path) -> None:
    """The official test-set archive layout: keywords, _unknown_ (word-prefixed names), _silence_."""
    seed = 100
    for w in ("yes", "no"):
        for s in SPEAKERS[:3]:
            write_wav(root / w / f"{s}_nohash_0.wav", clip(seed))
            seed += 1
    for w, s in (("bed", SPEAKERS[3]), ("marvin", SPEAKERS[4]), ("bed", SPEAKERS[5])):
        write_wav(root / "_unknown_" / f"{w}_{s}_nohash_1.wav", clip(seed))
        seed += 1
    for i in range(2):
        write_wav(root / "_silence_" / f"silence_{i}.wav",
                  np.random.default_rng(i).normal(0, 0.001, 16000).astype(np.float32))


def make_folder_layout(root: Path) -> list[str]:
    """A plain folder-per-class set (no lists, no noise), names with and without ``_nohash_``."""
    paths = []
    for ci, cls in enumerate(("cat", "dog")):
        for i in range(6):
            rel = f"{cls}/{SPEAKERS[i]}_nohash_{ci}.wav" if i < 4 else f"{cls}/recording {i}.wav"
            write_wav(root / rel, clip(200 + 10 * ci + i))
            paths.append(rel)
    (root / "notes.txt").write_text("not a class")
    return paths
