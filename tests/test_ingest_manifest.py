"""Manifests and name patterns through ``earmark ingest``: native rates and lengths, metadata, and every
case of issue 12's "Bad input" list giving a clear message with nothing half-ingested."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.errors import EarmarkError
from app.pipeline.ingest import IngestOptions, ingest
from app.pipeline.window import fit_window
from app.store.clips import clip_durations, clip_meta
from app.store.models import Clip, Dataset, Reject
from ml.config import TrainConfig
from ml.data import load_waveforms
from tests.conftest import tone, write_wav


def _set(root: Path, rows: list[tuple[str, str, float, int]], header: str = "path,label,split,mic,native",
         extra=lambda i: f",{'usb' if i % 2 else 'phone'},{'true' if i % 3 else 'false'}") -> Path:
    """WAVs (path, label, seconds, rate) and a manifest.csv naming them with split and two metadata columns."""
    lines = [header]
    for i, (rel, label, seconds, rate) in enumerate(rows):
        write_wav(root / rel, tone(seconds, freq=200 + 40 * i, sample_rate=rate), sample_rate=rate)
        split = ("train", "train", "validation", "test")[i % 4]
        lines.append(f"{rel},{label},{split}" + extra(i))
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _n(store, model) -> int:
    with store.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


ROWS = [("a/one.wav", "cat", 0.5, 8000), ("a/two.wav", "dog", 12.0, 44100), ("b/three.wav", "cat", 0.8, 22050),
        ("b/four.wav", "dog", 2.0, 48000), ("c/five.wav", "cat", 31.0, 16000), ("c/six.wav", "dog", 0.5, 4000)]


def test_manifest_keeps_native_rates_lengths_and_typed_metadata(sqlite_store, tmp_path):
    manifest = _set(tmp_path / "set", ROWS)
    rep = ingest(sqlite_store, manifest)  # the manifest file itself as the path
    assert rep.layout == "manifest" and rep.split_source == "column" and rep.n_clips == 4
    assert {k: v["count"] for k, v in rep.rejects.items()} == {"too_long": 1, "sample_rate": 1}  # 31 s, 4 kHz
    assert rep.meta_columns == {"mic": "text", "native": "boolean"}
    assert rep.speaker_leakage == "not_checked" and rep.leakage["speaker_leakage"] == "not_checked"
    with sqlite_store.sessions() as s:
        clips = {c.path: c for c in s.scalars(select(Clip))}
        assert {p: c.sample_rate for p, c in clips.items()} == {"a/one.wav": 8000, "a/two.wav": 44100,
                                                                "b/three.wav": 22050, "b/four.wav": 48000}
        assert abs(clips["a/two.wav"].duration_s - 12.0) < 0.01  # longer than 10 s, kept whole
        assert clip_meta(s, clips["a/two.wav"].id) == {"mic": "usb", "native": True}
        ds = s.get(Dataset, rep.dataset_id)
        assert ds.source["kind"] == "manifest" and ds.source["sample_rates"] == {
            "8000": 1, "22050": 1, "44100": 1, "48000": 1}
        cfg, window = fit_window(TrainConfig(), ds.layout, clip_durations(s, ds.id))
        paths = sorted(clips)
    # a mixed-rate set decodes at the model rate into the fitted window (p95 of 0.5/0.8/2/12 s -> 10 s cap)
    assert window["seconds"] == 10.0 and cfg.clip_samples == 160000
    waves, cache, hit = load_waveforms(tmp_path / "set", paths, cfg.sample_rate, cfg.clip_samples,
                                       tmp_path / "cache")
    assert waves.shape == (4, 160000) and not hit and str(cfg.clip_samples) in str(cache) or len(cache.name) > 10
    two = waves[paths.index("a/two.wav")].astype(np.float32) / 32768
    assert np.abs(two[-16000:]).max() > 0.1  # 12 s cropped to 10 s: sound to the end
    one = waves[paths.index("a/one.wav")].astype(np.float32) / 32768
    assert np.abs(one[:7000]).max() > 0.1 and np.abs(one[9000:]).max() == 0  # 0.5 s at 8 kHz -> 8000 at 16 kHz


def test_cli_ingest_dir_with_manifest_and_column_options(sqlite_store, tmp_path):
    from app.cli import app

    _set(tmp_path / "set", ROWS[:4], header="file_name,kind,split,mic,native")
    (tmp_path / "set" / "manifest.csv").rename(tmp_path / "set" / "clips.table.csv")
    env = {"EARMARK_DATA_DIR": str(sqlite_store.settings.data_dir), "EARMARK_DATABASE_URL": sqlite_store.url,
           "COLUMNS": "300"}
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "set"), "--manifest", "clips.table.csv"], env=env)
    assert res.exit_code == 1 and "label" in res.output and "--label-column" in res.output  # no label column
    assert "Traceback" not in res.output and _n(sqlite_store, Dataset) == 0
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "set"), "--manifest", "clips.table.csv",
                                   "--label-column", "kind", "--split-column", ""], env=env)
    assert res.exit_code == 0, res.output
    assert "speaker leakage not checked" in res.output and "mic (text)" in res.output
    with sqlite_store.sessions() as s:
        assert {c.label for c in s.scalars(select(Clip))} == {"cat", "dog"}
        assert s.scalar(select(Dataset.split_source)) == "file_hash"  # --split-column '' ignored the column


def _bad(store, path: Path, options: IngestOptions | None = None) -> EarmarkError:
    with pytest.raises(EarmarkError) as err:
        ingest(store, path, options=options)
    assert err.value.title and err.value.status == 422
    assert _n(store, Dataset) == 0 and _n(store, Clip) == 0 and _n(store, Reject) == 0  # nothing half-ingested
    return err.value


def test_each_bad_manifest_gives_a_clear_message_and_ingests_nothing(sqlite_store, tmp_path):
    root = tmp_path / "set"
    manifest = _set(root, ROWS[:4])
    good = manifest.read_text()
    cases = {
        "missing": (good + "a/gone.wav,cat,train,usb,true\n", "gone.wav"),
        "outside": (good + "../elsewhere.wav,cat,train,usb,true\n", "climb out"),
        "duplicate": (good + "a/one.wav,dog,train,usb,true\n", "a/one.wav"),
        "split": (good.replace("validation", "holdout", 1), "holdout"),
        "no_label": (good.replace("path,label,", "path,tag,"), "label"),
        "quote": (good + '"a/one.wav,cat,train,usb,true\n', "quote"),
    }
    for name, (text, needle) in cases.items():
        manifest.write_text(text)
        err = _bad(sqlite_store, manifest)
        assert needle in f"{err.title} {err.detail} {err.hint}".lower() or needle in err.detail, (name, err.as_dict())
    manifest.write_bytes(good.encode() + "c/caf\xe9.wav,cat,train,usb,true\n".encode("latin-1"))
    err = _bad(sqlite_store, manifest)
    assert "utf-8" in (err.title + err.detail).lower()


def test_pattern_problems_conflicts_and_reserved_names(sqlite_store, tmp_path):
    root = tmp_path / "digits"
    for d, spk, take in [(1, "ann", 0), (2, "bob", 0), (3, "ann", 1), (4, "cyd", 0)]:
        write_wav(root / f"{d}_{spk}_{take}.wav", tone(0.3, sample_rate=8000), sample_rate=8000)
    write_wav(root / "notes-take.wav", tone(0.3, sample_rate=8000), sample_rate=8000)
    pattern = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"
    rep = ingest(sqlite_store, root, options=IngestOptions(name_pattern=pattern))  # only some files match
    assert rep.n_clips == 4 and set(rep.rejects) == {"name_pattern"}
    assert rep.rejects["name_pattern"]["examples"][0]["path"] == "notes-take.wav"
    assert rep.speaker_leakage == "checked" and rep.n_speakers == 3

    other = tmp_path / "other"
    for d, spk in [(1, "ann"), (2, "bob")]:
        write_wav(other / f"{d}_{spk}_0.wav", tone(0.3, sample_rate=8000), sample_rate=8000)
    (other / "labels.csv").write_text("path,label,loss,duration_s\n1_ann_0.wav,1,0.5,9\n2_bob_0.wav,7,0.1,9\n")
    with pytest.raises(EarmarkError) as err:  # the name says 2, the manifest says 7
        ingest(sqlite_store, other, options=IngestOptions(name_pattern=pattern))
    assert "another label" in err.value.title and "line 3: '7' vs '2'" in err.value.detail
    assert _n(sqlite_store, Dataset) == 1  # only the first data set
    (other / "labels.csv").write_text("path,label,loss,duration_s\n1_ann_0.wav,1,0.5,9\n2_bob_0.wav,2,0.1,9\n")
    rep = ingest(sqlite_store, other, options=IngestOptions(name_pattern=pattern))
    # metadata named like earmark's own fields is kept under another name, and the report says so
    assert set(rep.meta_columns) == {"meta_loss", "meta_duration_s", "take"}
    assert any("meta_loss" in n for n in rep.notes)


def test_leakage_report_never_claims_unchecked_speakers(sqlite_store, tmp_path):
    from app.web.leakage import leakage_checks

    root = tmp_path / "mixed"
    rows = ["path,label,speaker"]
    for i in range(8):
        write_wav(root / f"c{i}.wav", tone(0.3, freq=300 + 50 * i, sample_rate=16000))
        speaker = f"s{i % 3}" if i < 5 else ""
        rows.append(f"c{i}.wav,{'ab'[i % 2]},{speaker}")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    rep = ingest(sqlite_store, root / "m.csv")
    assert rep.speaker_leakage == "partial" and rep.split_source == "mixed_hash"
    words = leakage_checks(rep.leakage)
    assert "Speaker leakage only partly checked: some clips name no speaker." in words["notes"]

    (root / "m.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")  # no speaker column
    rep = ingest(sqlite_store, root / "m.csv", name="nospk")
    assert rep.speaker_leakage == "not_checked" and rep.split_source == "file_hash"
    words = leakage_checks(rep.leakage)
    assert "Speaker leakage not checked: this data set names no speakers." in words["notes"]
    assert words["clean"] is None or "speaker" not in words["clean"]
