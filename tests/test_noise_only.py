"""The 'noise only' finding on real speech: the rule on real Arabic clips (a clean clip, and the same clip
made noise-only with ``ml.plant``'s noise-only planting from the set's own background-noise files), and
the finding through ingest, ``earmark analyze`` and the Issues page on a real SQLite store."""

from __future__ import annotations

import csv

import numpy as np
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from app.measured import score_help
from app.pipeline.analyze import analyze_run
from app.pipeline.ingest import ingest
from app.store.models import Dataset, Finding, FindingClip
from app.web.main import create_app
from ml.analysis.noise import CREST_MAX_DB, noise_only_flags
from ml.analysis.quality import quality_stats
from ml.analysis.signal import signal_stats
from ml.audio import read_wav
from ml.plant import _noise_only, _noise_sources, word_span
from tests.conftest import skip_or_fail
from tests.factories import make_run
from tests.test_quality import ARABIC_CLIPS
from tests.test_quality_pipeline import AR_ROOT, _stored, _write, build_set


def _noise_of(x: np.ndarray, sr: int, seed: int) -> np.ndarray:
    """Clip ``x`` made noise-only as ``ml.plant`` plants it into the Arabic set (its background-noise files)."""
    if not (AR_ROOT / "background_noise").is_dir():
        skip_or_fail(f"real audio not found at {AR_ROOT} (see ../shared/data/README.md)")
    y, _ = _noise_only(x, sr, word_span(x, sr), np.random.default_rng(seed), x.size, _noise_sources(AR_ROOT))
    return y.astype(np.float32)


def _flag(x: np.ndarray, sr: int) -> bool:
    s, q = signal_stats(x, sr), quality_stats(x, sr)
    return bool(noise_only_flags(np.array([s.lead_silence_ms]), np.array([s.trail_silence_ms]), np.array([s.peak]),
                                 np.array([s.rms_dbfs]), np.array([q.dc]))[0])


def test_real_words_are_not_noise_and_the_same_clips_made_noise_only_are():
    if not AR_ROOT.is_dir():
        skip_or_fail(f"real audio not found at {AR_ROOT} (see ../shared/data/README.md)")
    for rel in ARABIC_CLIPS:
        x, sr = read_wav(AR_ROOT / rel)
        assert not _flag(x, sr), rel
        for seed in (0, 1):
            assert _flag(_noise_of(x, sr, seed), sr), (rel, seed)


def test_noise_only_is_found_by_analyze_and_shown_on_the_issues_page(sqlite_store, tmp_path):
    store, root = sqlite_store, tmp_path / "arabic"
    truth = build_set("arabic", root)  # the clean real clips and one per audio-quality defect (silent, DC, ...)
    x, sr = read_wav(AR_ROOT / ARABIC_CLIPS[0])
    noise_path = "backward/00000025_NO_01_noise_only.flac"
    _write(root / noise_path, _noise_of(x, sr, 0), sr)
    with open(root / "clips.csv", "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow((noise_path, "backward", "test"))
    rep = ingest(store, root, name="noise-arabic")
    assert rep.n_clips == len(truth) + 1 and not rep.rejects
    clips = _stored(store, rep.dataset_id)
    with store.sessions() as s:
        ds = s.get(Dataset, rep.dataset_id)
        fx = make_run(s, tmp_path / "unused", labels=sorted(ds.labels), with_scores=False,
                      dataset=(ds, sorted(c.id for c in clips.values())), disagree_every=1000)

    summary = analyze_run(store, fx.run_id)
    assert summary.n_quality["noise_only"] == 1
    with store.sessions() as s:
        f = s.scalars(select(Finding).where(Finding.run_id == fx.run_id, Finding.kind == "noise_only")).one()
        members = set(s.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == f.id)))
        s.expunge_all()
    # exactly the noise clip: not the clean words, and not the silent or DC-offset clips (their own findings)
    assert members == {clips[noise_path].id}
    assert f.reason == "noise_only" and f.stats["defect"] == "noise_only" and f.stats["n"] == 1
    assert f"{CREST_MAX_DB:g} dB" in f.description and "flag them as noise only" in f.description
    assert f.score == 0.25  # the model copes with it (agrees): a quarter, as the audio-quality findings count

    html = TestClient(create_app(store.settings)).get(f"/issues?run={fx.run_id}").text
    assert f'id="finding-{f.id}"' in html and 'data-kind="noise_only"' in html and f.title in html
    assert 'class="badge kind kind-noise_only"' in html and ">noise only</span>" in html
    tip = score_help.kind_tooltip("noise_only")
    assert "real speech" in tip and "0.895" in tip and f'title="{escape(tip)}"' in html
