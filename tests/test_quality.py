"""Audio-quality findings on real clips: each planted defect is found by its finder, and the clean
real clips it was planted into are not flagged (real Speech Commands and Arabic Speech Commands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.analysis.quality import FINDINGS, flags_of, quality_stats
from ml.audio import read_wav
from ml.plant import QUALITY_KINDS, plant_quality
from tests.conftest import skip_or_fail

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# Real clips with no quality defect (a few Speech Commands devices give real DC offsets, quiet or
# band-limited takes: these were checked to be free of them).
SC_CLIPS = ("yes/439c84f4_nohash_1.wav", "no/2f813234_nohash_1.wav", "bed/7ff085e1_nohash_0.wav",
            "house/2f813234_nohash_1.wav", "seven/51055bda_nohash_4.wav", "zero/563aa4e6_nohash_2.wav")
ARABIC_CLIPS = ("dataset/backward/00000025_NO_01.flac", "dataset/enable/00000005_NO_02.flac",
                "dataset/digit/00000021_NO_03.flac", "dataset/cancel/00000001_NO_04.flac")


def _real(root: Path, rels: tuple[str, ...]) -> list[tuple[np.ndarray, int]]:
    if not root.is_dir():
        skip_or_fail(f"real audio not found at {root} (see ../shared/data/README.md)")
    return [read_wav(root / r) for r in rels]


@pytest.mark.parametrize("root,rels", [(DATA / "speech-commands-v0.01-sample", SC_CLIPS),
                                       (DATA / "arabic-speech-commands", ARABIC_CLIPS)], ids=["sc", "arabic"])
def test_quality_findings_find_each_planted_defect_and_only_it(root, rels):
    clips = _real(root, rels)
    clean = flags_of([quality_stats(x, sr) for x, sr in clips])
    for k in FINDINGS:
        assert not clean[k].any(), f"{k} flagged on clean real clips: {np.flatnonzero(clean[k])}"
    for kind in QUALITY_KINDS:
        rng = np.random.default_rng(3)
        planted = [plant_quality(kind, x, sr, rng)[0] for x, sr in clips]
        # Written as 16-bit PCM by ml.plant: quantise the same way.
        planted = [np.round(np.clip(y, -1, 32767 / 32768) * 32768) / 32768 for y in planted]
        flags = flags_of([quality_stats(y, sr) for y, (_, sr) in zip(planted, clips, strict=True)])
        assert flags[kind].all(), f"{kind}: found on {flags[kind].sum()} of {len(clips)}"
        others = [k for k in FINDINGS if k != kind and flags[k].any()]
        assert not others, f"planting {kind} also raised {others}"


def test_quality_stats_measure_what_they_say():
    sr = 16000
    t = np.arange(sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    st = quality_stats(x + 0.1, sr)
    assert st.dc == pytest.approx(0.1, abs=1e-3) and st.peak_dbfs == pytest.approx(20 * np.log10(0.6), abs=0.01)
    assert st.plateau_share == 0.0
    hard = np.clip(3 * x, -1, 1)
    assert quality_stats(hard, sr).plateau_share > 0.3
    assert quality_stats(np.zeros(sr, np.float32), sr).peak_dbfs == -120.0
    assert quality_stats(x[:100], 8000).band_step_db == 0.0  # too short and too low a rate to measure


def test_plant_quality_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown audio-quality defect 'hum'"):
        plant_quality("hum", np.zeros(100, np.float32), 16000, np.random.default_rng(0))
