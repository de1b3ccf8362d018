"""Your own data, on the two real shared sets: the Arabic Speech Commands (its CSV split, FLAC, speakers
from the file names) and the Free Spoken Digit Dataset (labels and speakers from a name pattern, a
speaker table, 8 kHz). Each ingests with the counts the data set's README gives, trains for one epoch
on the CPU through ``earmark open``, and every page of the web app answers 200 over the real store."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.pipeline.ingest import IngestOptions, ingest
from app.pipeline.open_data import OpenOptions, open_path
from app.store.clips import meta_arrays
from app.store.models import Clip, Dataset, Run
from app.web.main import create_app
from ml.config import TrainConfig
from tests.conftest import skip_or_fail

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARABIC = DATA / "arabic-speech-commands"
FSDD = DATA / "free-spoken-digit"
FSDD_PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"
PAGES = ("/", "/confusion", "/clips", "/cloud", "/issues", "/slices", "/flags", "/compare", "/guide", "/docs")


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        skip_or_fail(f"the shared data set is not at {folder}")
    return folder


def _by_split(store, dataset_id: int) -> tuple[dict, dict, set]:
    with store.sessions() as s:
        rows = s.execute(select(Clip.split, Clip.speaker, Clip.label, Clip.path, Clip.sample_rate)
                         .where(Clip.dataset_id == dataset_id)).all()
    counts: dict[str, int] = {}
    speakers: dict[str, set] = {}
    for split, speaker, _, _, _ in rows:
        counts[split] = counts.get(split, 0) + 1
        speakers.setdefault(speaker, set()).add(split)
    return counts, speakers, {(r[2], r[3].rsplit(".", 1)[-1], r[4]) for r in rows}


def _every_page_answers(store, run_id: int, media_type: str, sample_rate: int) -> None:
    client = TestClient(create_app(store.settings))
    for page in PAGES:
        r = client.get(page, params={"run": run_id})
        assert r.status_code == 200, (page, r.text[:300])
    with store.sessions() as s:
        clip_id = s.scalar(select(Clip.id).order_by(Clip.id.desc()))
    assert client.get(f"/clips/{clip_id}", params={"run": run_id}).status_code == 200
    for page in ("spectrogram.png", "waveform.png"):
        assert client.get(f"/media/clips/{clip_id}/{page}").status_code == 200, page
    audio = client.get(f"/media/clips/{clip_id}/audio.wav")  # the file as stored, at its own rate
    assert audio.status_code == 200 and audio.headers["content-type"] == media_type
    assert sf.info(io.BytesIO(audio.content)).samplerate == sample_rate


@pytest.mark.timeout(1800)  # 4,800 real clips: one epoch, inference, UMAP and analysis on 2 shared cores
def test_arabic_set_ingests_its_csv_split_by_speaker_and_trains(sqlite_store):
    root = _need(ARABIC)
    rep = ingest(sqlite_store, root)  # no options: the authors' train/val/test CSVs, speakers from the names
    assert rep.layout == "split_manifests" and rep.split_source == "files"
    assert rep.splits == {"train": 2880, "validation": 960, "test": 960} and rep.n_rejects == 0
    assert rep.n_speakers == 30 and rep.speaker_leakage == "checked" and rep.meta_columns == {"round": "number"}
    assert not rep.leakage["counts"]["speakers_in_several_splits"]
    counts, speakers, kinds = _by_split(sqlite_store, rep.dataset_id)
    assert all(len(splits) == 1 for splits in speakers.values()) and len(speakers) == 30  # no speaker in two
    labels = {k[0] for k in kinds}
    assert len(labels) == 40 and {"zoom in", "zoom out"} <= labels
    assert {k[1] for k in kinds} == {"flac"} and {k[2] for k in kinds} == {16000}
    assert rep.n_noise_files == 2  # background_noise/ is noise, not clips

    small = TrainConfig(epochs=1, width=8, batch_size=128, speed_perturb=0.0)  # every clip, a narrow model
    res = open_path(sqlite_store, OpenOptions(path=root, train=small))
    assert res.steps == {"ingest": "reused", "train": "done", "infer": "done", "project": "done",
                         "analyze": "done"}
    with sqlite_store.sessions() as s:
        run = s.get(Run, res.run_id)
        assert run.status == "complete" and run.config["window"]["seconds"] == 1.0
        assert run.metrics["test"]["per_class"]["zoom in"]["support"] == 24
    _every_page_answers(sqlite_store, res.run_id, "audio/flac", 16000)


def test_fsdd_ingests_through_the_pattern_with_speaker_metadata_and_reuses_everything(sqlite_store):
    root = _need(FSDD)
    opts = OpenOptions(path=root, ingest=IngestOptions(name_pattern=FSDD_PATTERN), train=TrainConfig(epochs=1))
    res = open_path(sqlite_store, opts)
    rep = res.report
    assert rep.layout == "name_pattern" and rep.n_clips == 300 and rep.n_speakers == 6 and rep.n_rejects == 0
    assert rep.meta_columns == {"take": "number", "gender": "text", "accent": "text", "language": "text"}
    assert all(rep.splits[s] > 0 for s in ("train", "validation", "test"))  # 6 speakers still fill 3 splits
    counts, speakers, kinds = _by_split(sqlite_store, rep.dataset_id)
    assert all(len(splits) == 1 for splits in speakers.values())
    assert {k[2] for k in kinds} == {8000} and {k[0] for k in kinds} == {str(d) for d in range(10)}
    with sqlite_store.sessions() as s:
        ds = s.get(Dataset, rep.dataset_id)
        assert ds.sample_rate == 8000 and ds.speaker_leakage == "checked"
        ids = list(s.scalars(select(Clip.id).where(Clip.dataset_id == ds.id).order_by(Clip.id)))
        paths = list(s.scalars(select(Clip.path).where(Clip.dataset_id == ds.id).order_by(Clip.id)))
        meta = meta_arrays(s, ds.id, ids)
        durations = np.asarray(s.scalars(select(Clip.duration_s).where(Clip.dataset_id == ds.id)).all())
        run = s.get(Run, res.run_id)
    george = [i for i, p in enumerate(paths) if "_george_" in p]
    assert {meta["accent"][i] for i in george} == {"GRC/Greek"} and set(meta["gender"]) == {"male"}
    assert meta["take"].dtype == np.float64 and set(meta["take"].tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    assert 0.13 < durations.min() < 0.15 and 1.1 < durations.max() < 1.2  # native length, not padded to 1 s
    window = run.config["window"]["seconds"]  # p95 of the durations, rounded up to 0.1 s
    assert window == np.ceil(np.percentile(durations, 95) * 10) / 10 and run.config["clip_samples"] == window * 16000
    _every_page_answers(sqlite_store, res.run_id, "audio/wav", 8000)

    again = open_path(sqlite_store, opts)  # the same folder again: nothing is redone
    assert again.run_id == res.run_id and set(again.steps.values()) == {"reused"}
    with sqlite_store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Run)) == 1
    from app.cli import app  # the command line too: one line per step, all reused, no server with --no-serve

    env = {"EARMARK_DATA_DIR": str(sqlite_store.settings.data_dir), "EARMARK_DATABASE_URL": sqlite_store.url,
           "COLUMNS": "300"}
    out = CliRunner().invoke(app, ["open", str(root), "--name-pattern", FSDD_PATTERN, "--epochs", "1", "--no-serve"],
                             env=env)
    assert out.exit_code == 0, out.output
    assert "ingest reused, train reused, infer reused, project reused, analyze reused" in out.output


def test_cli_ingest_without_a_pattern_names_the_option(sqlite_store):
    root = _need(FSDD)
    env = {"EARMARK_DATA_DIR": str(sqlite_store.settings.data_dir), "EARMARK_DATABASE_URL": sqlite_store.url}
    from app.cli import app

    res = CliRunner().invoke(app, ["ingest", str(root)], env=env)
    assert res.exit_code == 1 and "--name-pattern" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["ingest", str(root), "--name-pattern", FSDD_PATTERN], env=env)
    assert res.exit_code == 0, res.output
    assert "gender (text)" in res.output and "300" in res.output


@pytest.mark.parametrize("pattern", [r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.flac"])
def test_a_pattern_that_matches_no_file_ingests_nothing(sqlite_store, pattern):
    root = _need(FSDD)
    from app.errors import EarmarkError

    with pytest.raises(EarmarkError) as err:
        ingest(sqlite_store, root, options=IngestOptions(name_pattern=pattern))
    assert "matches no file" in err.value.title
    with sqlite_store.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0


def test_arabic_keyword_folders_alone_get_speakers_and_a_speaker_disjoint_split(sqlite_store):
    root = _need(ARABIC) / "dataset"  # the folder per keyword, without the authors' CSVs
    rep = ingest(sqlite_store, root)
    assert rep.layout == "folders" and rep.n_clips == 4800 and rep.n_speakers == 30  # was 0 speakers
    assert rep.speaker_leakage == "checked" and any("every file matched" in n for n in rep.notes)
    _, speakers, _ = _by_split(sqlite_store, rep.dataset_id)
    assert all(len(splits) == 1 for splits in speakers.values())  # was: every speaker in every split
    assert not rep.leakage["counts"]["speakers_in_several_splits"]
