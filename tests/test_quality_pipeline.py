"""Audio-quality findings through the product, on real speech: each defect planted into real clips
(Speech Commands WAV, Arabic Speech Commands FLAC) written as real files, ingested into a real store
(SQLite and PostgreSQL), stored per clip, listed by the clip list's ``quality`` filter before any
analysis, found by ``earmark analyze`` as one finding per defect, and shown on the Issues page and the
clip page. Also: migration 0006 keeps a store's clips (NULL stats), and a re-ingest fills them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text, update

from app.pipeline.analyze import analyze_run
from app.pipeline.ingest import ingest
from app.store.db import table_names
from app.store.models import Clip, Dataset, Finding, FindingClip, utcnow
from app.web.main import create_app
from ml.analysis.quality import FINDINGS, defects_of
from ml.audio import read_wav
from ml.plant import QUALITY_KINDS, plant_quality
from tests.conftest import skip_or_fail
from tests.factories import make_run
from tests.test_quality import ARABIC_CLIPS, DATA, SC_CLIPS
from tests.test_store import _migrate

SC_ROOT = DATA / "speech-commands-v0.01-sample"
AR_ROOT = DATA / "arabic-speech-commands"
SPLITS = ("train", "validation", "test")


def _planted(kind: str, clips: list[tuple[np.ndarray, int]], j: int) -> np.ndarray:
    """``kind`` planted into clip ``j`` the way tests/test_quality.py plants it (the same draws)."""
    rng = np.random.default_rng(3)
    return [plant_quality(kind, x, sr, rng)[0] for x, sr in clips][j]


def _write(path: Path, y: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(np.asarray(y, np.float64), -1.0, 32767 / 32768), sr, subtype="PCM_16")


def build_set(source: str, root: Path) -> dict[str, str | None]:
    """A real data set folder: the clean real clips copied, and one copy of a clean clip per defect kind
    with the defect planted. ``sc``: Speech Commands folders of WAV; ``arabic``: FLAC with a manifest.
    Returns path -> planted kind (None for a clean clip)."""
    src, rels = (SC_ROOT, SC_CLIPS) if source == "sc" else (AR_ROOT, ARABIC_CLIPS)
    if not src.is_dir():
        skip_or_fail(f"real audio not found at {src} (see ../shared/data/README.md)")
    clips = [read_wav(src / r) for r in rels]
    truth: dict[str, str | None] = {}
    for rel, (x, sr) in zip(rels, clips, strict=True):
        word = rel.split("/")[-2]
        out = f"{word}/{Path(rel).stem}.wav" if source == "sc" else f"{word}/{Path(rel).stem}.flac"
        _write(root / out, x, sr)
        truth[out] = None
    for j, kind in enumerate(QUALITY_KINDS):
        i = j % len(rels)
        word, stem = rels[i].split("/")[-2], Path(rels[i]).stem
        out = f"{word}/{kind}{j}_nohash_{stem[-1]}.wav" if source == "sc" else f"{word}/{stem}_{kind}.flac"
        _write(root / out, _planted(kind, clips, i), clips[i][1])
        truth[out] = kind
    if source == "arabic":
        with open(root / "clips.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(("path", "label", "split"))
            w.writerows((p, p.split("/")[0], SPLITS[i % 3]) for i, p in enumerate(sorted(truth)))
    return truth


def _stored(store, dataset_id: int) -> dict[str, Clip]:
    with store.sessions() as s:
        clips = s.scalars(select(Clip).where(Clip.dataset_id == dataset_id)).all()
        s.expunge_all()
    return {c.path: c for c in clips}


@pytest.mark.parametrize("source", ["sc", "arabic"])
def test_planted_defects_are_stored_filtered_found_and_shown(store, tmp_path, source):
    truth = build_set(source, tmp_path / source)
    rep = ingest(store, tmp_path / source, name=f"q-{source}")
    assert rep.n_clips == len(truth) and not rep.rejects
    assert rep.quality == dict.fromkeys(FINDINGS, 1) and rep.quality_unmeasured == 0  # the ingest report counts them
    clips = _stored(store, rep.dataset_id)
    # ingest stored the stats each finding needs, and they raise exactly the planted defect
    for path, kind in truth.items():
        c = clips[path]
        assert None not in (c.plateau_share, c.dc_offset, c.band_step_db), path
        assert defects_of(c.peak, c.plateau_share, c.dc_offset, c.band_step_db) == ([kind] if kind else []), path
    ids = {clips[p].id: k for p, k in truth.items()}

    with store.sessions() as s:
        ds = s.get(Dataset, rep.dataset_id)
        fx = make_run(s, tmp_path / "unused", labels=sorted(ds.labels), with_scores=False,
                      dataset=(ds, sorted(ids)), disagree_every=1000)
    client = TestClient(create_app(store.settings))
    # the clip list's quality filter works from the clip columns, before any analysis
    for kind in FINDINGS:
        r = client.get(f"/api/clips?run={fx.run_id}&quality={kind}&per_page=200")
        assert r.status_code == 200, r.text
        assert {c["id"] for c in r.json()["items"]} == {i for i, k in ids.items() if k == kind}, kind
    page = client.get(f"/clips?run={fx.run_id}&quality=dc_offset")
    assert page.status_code == 200 and 'id="quality-filter"' in page.text
    assert re.search(r'<option value="dc_offset"[^>]*selected', page.text)
    # a hostile value is a 422 that names the choices, on the API and on the page, never a 500
    for bad in ("hum", "<script>alert(1)</script>", "clipped'--", "x" * 5000):
        r = client.get("/api/clips", params={"run": fx.run_id, "quality": bad})
        assert r.status_code == 422 and "too_quiet" in r.text, (bad[:20], r.status_code)
        r = client.get("/clips", params={"run": fx.run_id, "quality": bad})
        assert r.status_code == 422 and "<script>alert" not in r.text

    # analyze: one finding per defect, holding exactly its planted clips, with its threshold stated
    analyze_run(store, fx.run_id)
    with store.sessions() as s:
        found = {f.kind: f for f in s.scalars(select(Finding).where(Finding.run_id == fx.run_id))}
        members = {f.kind: set(s.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == f.id)))
                   for f in found.values()}
        s.expunge_all()
    for kind in FINDINGS:
        assert kind in found, sorted(found)
        assert members[kind] == {i for i, k in ids.items() if k == kind}, kind
        assert found[kind].reason == ("noise_only" if kind == "silent" else "other")
        assert found[kind].stats["defect"] == kind
    assert "-60 dBFS" in found["silent"].description and "-35 dBFS" in found["too_quiet"].description
    assert "0.2%" in found["clipped"].description and "0.02 of full scale" in found["dc_offset"].description
    assert "25 dB" in found["upsampled"].description
    assert all(f.score < 2 for k, f in found.items() if k in FINDINGS)  # one clip each, the model agreeing

    html = client.get(f"/issues?run={fx.run_id}").text
    for kind in FINDINGS:
        f = found[kind]
        assert f'id="finding-{f.id}"' in html and f'data-kind="{kind}"' in html and f.title in html
    assert "Flag all as noise only" in html and 'class="badge kind kind-dc_offset' in html
    assert 'id="quality-note"' not in html  # every clip was measured

    clip_id = next(i for i, k in ids.items() if k == "clipped")
    html = client.get(f"/clips/{clip_id}?run={fx.run_id}").text
    assert "quality-defect" in html and f"/clips?run={fx.run_id}&amp;quality=clipped" in html
    clean_id = next(i for i, k in ids.items() if k is None)
    html = client.get(f"/clips/{clean_id}?run={fx.run_id}").text
    assert "no defect found" in html and "quality-defect" not in html


def test_reingest_fills_the_stats_of_clips_ingested_before_they_existed(store, tmp_path):
    truth = build_set("sc", tmp_path / "sc")
    rep = ingest(store, tmp_path / "sc", name="old")
    before = {p: c.id for p, c in _stored(store, rep.dataset_id).items()}
    with store.sessions() as s:  # what a store ingested before migration 0006 holds
        s.execute(update(Clip).values(plateau_share=None, dc_offset=None, band_step_db=None))
        s.commit()
        ds = s.get(Dataset, rep.dataset_id)
        fx = make_run(s, tmp_path / "unused", labels=sorted(ds.labels), with_scores=False,
                      dataset=(ds, sorted(before.values())))
    client = TestClient(create_app(store.settings))
    # the pages say what is missing and the command that fills it
    command = f"earmark ingest {tmp_path / 'sc'} --name old"
    html = client.get(f"/issues?run={fx.run_id}").text
    assert 'id="quality-note"' in html and command in html and f"of {len(truth)} clips" in html
    clipped = before[next(p for p, k in truth.items() if k == "clipped")]
    html = client.get(f"/clips/{clipped}?run={fx.run_id}").text
    assert "ingested before earmark measured them" in html and command in html
    html = client.get(f"/clips?run={fx.run_id}&quality=clipped").text
    assert 'id="quality-note"' in html and command in html
    # silent and too quiet need only the peak: they work on the old clips
    silent = {c["id"] for c in client.get(f"/api/clips?run={fx.run_id}&quality=silent").json()["items"]}
    assert silent == {before[p] for p, k in truth.items() if k == "silent"}
    assert client.get(f"/api/clips?run={fx.run_id}&quality=clipped").json()["total"] == 0

    again = ingest(store, tmp_path / "sc", name="old")
    assert not again.unchanged and again.dataset_id == rep.dataset_id
    assert again.quality_unmeasured == 0 and again.quality == dict.fromkeys(FINDINGS, 1)
    after = _stored(store, rep.dataset_id)
    assert {p: c.id for p, c in after.items()} == before  # same clip ids: the run and its flags stay valid
    for path, kind in truth.items():
        c = after[path]
        assert defects_of(c.peak, c.plateau_share, c.dc_offset, c.band_step_db) == ([kind] if kind else [])
    assert ingest(store, tmp_path / "sc", name="old").unchanged  # now nothing is missing: kept as it is
    assert 'id="quality-note"' not in client.get(f"/issues?run={fx.run_id}").text
    ids = {c["id"] for c in client.get(f"/api/clips?run={fx.run_id}&quality=clipped").json()["items"]}
    assert ids == {clipped}


def test_migration_0006_keeps_clips_with_null_stats_both_ways(store):
    _migrate(store.engine, "0005", down=True)
    assert "plateau_share" not in {c["name"] for c in inspect(store.engine).get_columns("clips")}
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (id, name, root, layout, status, n_clips, n_rejects, sample_rate, "
                          "labels, split_source, list_stats, leakage, noise_files, created_at, updated_at, "
                          "meta_columns, speaker_leakage, source) VALUES (1, 'd', '/x', 'folders', 'ready', 2, 0, "
                          "16000, '[]', 'hash', '{}', '{}', '[]', :t, :t, '{}', 'not_checked', '{}')"), {"t": utcnow()})
        for cid in (1, 2):
            conn.execute(text("INSERT INTO clips (id, dataset_id, path, label, word, split, sample_rate, n_samples, "
                              "duration_s, channels, content_hash, rms_dbfs, peak, clipped_frac, lead_silence_ms, "
                              "trail_silence_ms, end_energy_db, cutoff_signal) VALUES (:id, 1, :p, 'yes', 'yes', "
                              "'train', 16000, 16000, 1.0, 1, 'h', -20, 0.5, 0, 0, 0, -60, false)"),
                         {"id": cid, "p": f"yes/{cid}.wav"})
    _migrate(store.engine, "head")
    with store.sessions() as s:
        rows = s.execute(select(Clip.id, Clip.path, Clip.peak, Clip.plateau_share, Clip.dc_offset,
                                Clip.band_step_db).order_by(Clip.id)).all()
    assert [tuple(r) for r in rows] == [(1, "yes/1.wav", 0.5, None, None, None), (2, "yes/2.wav", 0.5, None, None, None)]
    _migrate(store.engine, "0005", down=True)
    assert "plateau_share" not in {c["name"] for c in inspect(store.engine).get_columns("clips")}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clips")).scalar() == 2
    _migrate(store.engine, "head")
    assert "clips" in table_names(store.engine)
