"""Planting defects into real data sets (``ml.plant``): layout kept, truth as ``earmark synth`` writes it,
cut-offs keep 10-35 % of the word in both shapes, the same seed gives the same files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.audio import read_wav
from ml.plant import ATTRIBUTION, KINDS, plant, plant_cutoff, word_span
from ml.synth import DEFECT_COLUMNS
from tests.conftest import skip_or_fail

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SC = DATA / "speech-commands-v0.01-sample"
ARABIC = DATA / "arabic-speech-commands"


def _need(root: Path) -> Path:
    if not root.is_dir():
        skip_or_fail(f"real audio not found at {root} (see ../shared/data/README.md)")
    return root


def _truth(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def sc_planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("plant_sc")
    return plant(_need(SC), out, seed=0)


def test_plant_keeps_the_speech_commands_layout_and_writes_the_truth(sc_planted):
    rep = sc_planted
    root = rep.dataset_dir
    assert rep.layout == "speech_commands" and rep.defects_csv == root.parent / "defects.csv"
    cols, rows = _truth(rep.defects_csv)
    assert tuple(cols) == DEFECT_COLUMNS
    assert {r["defect"] for r in rows} == set(KINDS) and all(rep.counts[k] > 0 for k in KINDS)
    assert all((root / r["path"]).is_file() for r in rows)
    wavs = sorted(p for p in root.glob("*/*.wav"))
    assert len(wavs) == rep.n_clips and {p.parent.name for p in wavs} == {p.name for p in SC.iterdir() if p.is_dir()}
    listed = (root / "testing_list.txt").read_text().split()
    assert listed and all((root / p).is_file() for p in listed)
    assert "Pete Warden" in (root / ATTRIBUTION).read_text() and (root / "LICENSE").is_file()
    for r in rows:
        d = json.loads(r["detail"])
        if r["defect"] == "mislabeled":  # the real clip, unchanged, filed under another word
            assert r["filed_label"] != r["true_label"] and r["path"].startswith(r["filed_label"] + "/")
            assert (root / r["path"]).read_bytes() == (SC / d["source"]).read_bytes()
        if r["defect"] == "noise_only":
            assert r["true_label"] == ""


def test_plant_cutoffs_keep_10_to_35_percent_in_both_shapes_and_cut_loud_and_soft(sc_planted):
    _, rows = _truth(sc_planted.defects_csv)
    cuts = [(r, json.loads(r["detail"])) for r in rows if r["defect"] == "cutoff"]
    assert {d["shape"] for _, d in cuts} == {"short_file", "late_start"}
    assert {"loud", "soft"} <= {d["cut_at"] for _, d in cuts}
    for r, d in cuts:
        assert 0.10 <= d["keep"] <= 0.35, d
        x, sr = read_wav(sc_planted.dataset_dir / r["path"])
        src, _ = read_wav(SC / d["source"])
        if d["shape"] == "short_file":
            assert x.size < src.size and abs(x.size / sr - d["length_s"]) < 1e-3
        else:
            assert x.size == src.size


def test_plant_cutoff_ends_inside_the_word_at_the_asked_level():
    x, sr = read_wav(_need(SC) / "house/2f813234_nohash_1.wav")
    span = word_span(x, sr)
    assert span is not None and 0 < span[0] < span[1] < x.size
    for want in ("loud", "soft"):
        y, d = plant_cutoff(x, sr, span, np.random.default_rng(1), x.size, want=want, shape="short_file")
        assert d["cut_at"] == want, d
        assert span[0] + 0.10 * (span[1] - span[0]) <= y.size <= span[0] + 0.35 * (span[1] - span[0]) + 1
        assert np.array_equal(y, x[: y.size])  # the real clip, stopped mid-word


def test_plant_same_seed_same_files_other_seed_other_defects(tmp_path, sc_planted):
    again = plant(SC, tmp_path / "again", seed=0)
    assert again.defects_csv.read_bytes() == sc_planted.defects_csv.read_bytes()
    _, rows = _truth(again.defects_csv)
    for r in rows[:20]:
        assert (again.dataset_dir / r["path"]).read_bytes() == (sc_planted.dataset_dir / r["path"]).read_bytes()
    other = plant(SC, tmp_path / "other", seed=1)
    assert other.defects_csv.read_bytes() != sc_planted.defects_csv.read_bytes()


def test_plant_keeps_the_arabic_layout_with_its_csvs_and_background_noise(tmp_path):
    root = _need(ARABIC)
    src = tmp_path / "src"  # a small copy of the real set in its own layout: 2 speakers x 20 words
    words = sorted(p.name for p in (root / "dataset").iterdir())[:20]
    for name, spk in (("train.csv", "00000001"), ("test.csv", "00000030"), ("val.csv", None)):
        lines = ["file,class"]
        for w in words if spk else []:
            rel = f"dataset/{w}/{spk}_NO_01.flac"
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, src / rel)
            lines.append(f"{rel},{w}")
        (src / name).write_text("\n".join(lines) + "\n")
    (src / "background_noise").mkdir()
    shutil.copyfile(root / "background_noise" / "boiler.flac", src / "background_noise" / "boiler.flac")
    rep = plant(src, tmp_path / "out", seed=2, rates={k: 0.05 for k in KINDS})
    assert rep.layout == "arabic" and rep.dataset_dir.name == "dataset"
    out = rep.dataset_dir
    with open(out / "train.csv", newline="") as f:
        train = list(csv.DictReader(f))
    assert train and all((out / r["file"]).is_file() and r["file"].startswith(f"dataset/{r['class']}/") for r in train)
    assert sf.info(str(out / train[0]["file"])).format == "FLAC"
    assert (out / "background_noise" / "boiler.flac").is_file() and "Ghandoura" in (out / ATTRIBUTION).read_text()
    _, rows = _truth(rep.defects_csv)
    noise = [json.loads(r["detail"]) for r in rows if r["defect"] == "noise_only"]
    assert noise and all(d["from"].startswith("background_noise") for d in noise)
