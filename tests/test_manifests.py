"""ml.manifests, ml.name_patterns, ml.layouts and ml.audio's native-rate reading: the real shared
sets (Arabic Speech Commands, FSDD, the Speech Commands sample) and every bad input, on real files."""

from __future__ import annotations

import datetime
import json
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from ml.audio import AudioError, decode, decode_native, probe
from ml.layouts import assign_splits, load_plan, plan_layout, speaker_split
from ml.manifests import (
    RESERVED_FIELDS,
    find_split_manifests,
    join_speakers,
    read_manifest,
    read_split_manifests,
)
from ml.name_patterns import REJECT_REASON, apply_name_pattern, scan_name_pattern, walk_audio
from ml.speech_commands import scan, which_set
from ml.tables import ManifestError
from tests.conftest import skip_or_fail
from tests.ingest_helpers import (
    clip,
    make_folder_layout,
    make_test_archive,
    make_training_layout,
    write_wav_fast,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FSDD_PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<take>\d+)\.wav"
ARABIC_PATTERN = r"(?P<speaker>\d{8})_NO_(?P<round>\d+)"


def _shared(name: str) -> Path:
    if not (DATA / name).is_dir():
        skip_or_fail(f"the shared set is not at {DATA / name}")
    return DATA / name


def _speakers_by_split(records) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r.split, set()).add(r.speaker)
    return out


@pytest.mark.parametrize("pattern", [ARABIC_PATTERN, None], ids=["pattern", "auto"])
def test_arabic_set_reads_its_csv_split_with_speakers(pattern):
    root = _shared("arabic-speech-commands")
    plan = plan_layout(root, name_pattern=pattern)
    assert plan.kind == "split_manifests" and {s: p.name for s, p in plan.manifests.items()} == \
        {"train": "train.csv", "validation": "val.csv", "test": "test.csv"}
    assert plan.noise_files == ["background_noise/boiler.flac", "background_noise/washing_machine.flac"]
    m, split = load_plan(plan)
    assert Counter(r.split for r in m.records) == {"train": 2880, "validation": 960, "test": 960}
    assert split.source == "files" and split.speaker_leakage == "checked"
    by_split = _speakers_by_split(m.records)
    assert len(set().union(*by_split.values())) == 30
    assert not (by_split["train"] & by_split["validation"] or by_split["train"] & by_split["test"]
                or by_split["validation"] & by_split["test"])
    assert len(m.labels) == 40 and {"zoom in", "zoom out"} <= set(m.labels)
    assert all(r.path.endswith(".flac") and not r.path.startswith("background_noise") for r in m.records)
    assert m.meta_types == {"round": "number"} and {r.meta["round"] for r in m.records} == {1, 2, 3, 4}
    if pattern is None:
        assert any("every file matched" in n for n in m.notes)
    zoom = next(r for r in m.records if r.label == "zoom in")
    d = decode_native(root / zoom.path)
    assert (d.sample_rate, d.n_samples) == (16000, 16000) and probe(root / zoom.path).format == "FLAC"


def test_arabic_speakers_are_not_guessed_when_one_name_differs(tmp_path):
    for i, name in enumerate(("00000001_NO_01.wav", "00000002_NO_01.wav", "take 3.wav")):
        write_wav_fast(tmp_path / "a" / name, clip(i))
    (tmp_path / "data.csv").write_text("file,class\na/00000001_NO_01.wav,x\na/00000002_NO_01.wav,y\na/take 3.wav,x\n")
    m, split = load_plan(plan_layout(tmp_path))
    assert all(r.speaker is None for r in m.records) and split.speaker_leakage == "not_checked"
    assert (split.speakers_known, split.n_clips, split.source) == (0, 3, "file_hash")


def test_fsdd_reads_through_the_pattern_with_speaker_metadata():
    root = _shared("free-spoken-digit")
    plan = plan_layout(root, name_pattern=FSDD_PATTERN)
    assert plan.kind == "name_pattern" and plan.speaker_table == root / "speakers.csv"
    m, split = load_plan(plan)
    assert len(m.records) == 300 and len({r.speaker for r in m.records}) == 6
    assert m.labels == [str(d) for d in range(10)]
    assert m.meta_types == {"take": "number", "gender": "text", "accent": "text", "language": "text"}
    george = next(r for r in m.records if r.speaker == "george")
    assert (george.meta["gender"], george.meta["accent"]) == ("male", "GRC/Greek")
    assert split.source == "speaker_hash" and split.speaker_leakage == "checked"
    assert all(len(v) == 1 for v in _by_speaker_splits(m.records).values())
    infos = [probe(root / r.path) for r in m.records]
    assert {i.sample_rate for i in infos} == {8000}
    assert 0.13 < min(i.duration_s for i in infos) and max(i.duration_s for i in infos) < 1.2
    d = decode_native(root / m.records[0].path)
    assert d.sample_rate == 8000 and d.n_samples == infos[0].frames


def _by_speaker_splits(records) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r.speaker, set()).add(r.split)
    return out


def test_fsdd_without_options_names_the_options_and_a_command_that_works():
    root = _shared("free-spoken-digit")
    with pytest.raises(ManifestError) as e:
        plan_layout(root)
    assert "--name-pattern" in e.value.hint and "--manifest" in e.value.hint
    suggested = re.search(r"--name-pattern '([^']+)'", e.value.hint).group(1)
    m, _ = load_plan(plan_layout(root, name_pattern=suggested))
    assert len(m.records) == 300 and len(m.labels) == 10 and len({r.speaker for r in m.records}) == 6


def test_speech_commands_sample_is_detected_as_before(shared_sample):
    plan = plan_layout(shared_sample)
    assert plan.kind == "speech_commands"
    m, split = load_plan(plan)
    layout = scan(shared_sample)
    assert [(r.path, r.label, r.split, r.speaker) for r in m.records] == \
        [(e.path, e.label, e.split, e.speaker) for e in layout.entries]
    assert Counter(r.split for r in m.records) == {"train": 205, "validation": 44, "test": 51}
    assert split.source == "lists"


def test_folder_layout_keeps_its_hash_split(tmp_path):
    make_folder_layout(tmp_path)
    m, split = load_plan(plan_layout(tmp_path))
    assert plan_layout(tmp_path).kind == "folders"
    assert {r.path: r.split for r in m.records} == {e.path: e.split for e in scan(tmp_path).entries}
    assert (split.speaker_leakage, split.speakers_known, split.n_clips) == ("partial", 8, 12)


@pytest.mark.parametrize("make, kind", [(make_training_layout, "speech_commands"), (make_test_archive, "test_archive"),
                                        (make_folder_layout, "folders")])
def test_speech_commands_layouts_plan_as_before(tmp_path, make, kind):
    make(tmp_path / "set")
    (tmp_path / "set" / "notes.csv").write_text("what,when\nrecorded,2020\n")  # a table with no path column
    m, _ = load_plan(plan_layout(tmp_path / "set"))
    assert plan_layout(tmp_path / "set").kind == kind
    assert [(r.path, r.label, r.word, r.split, r.speaker, r.utterance) for r in m.records] == \
        [(e.path, e.label, e.word, e.split, e.speaker, e.utterance) for e in scan(tmp_path / "set").entries]
    with pytest.raises(ManifestError, match="class folders are one level down") as e:
        plan_layout(tmp_path)
    assert e.value.hint == f"try: earmark ingest {tmp_path / 'set'}"


def _clips(folder: Path, names, rate: int = 16000) -> None:
    for i, n in enumerate(names):
        write_wav_fast(folder / n, clip(i, 0.2)[: int(0.2 * rate)], rate)


ROWS = [("a.wav", "yes", "train", "s1", 3, True, "quiet room"), ("b.wav", "no", "validation", "s2", 2.5, False, "car"),
        ("c.wav", "yes", "test", "s3", 7, True, "")]


def _write_all_formats(folder: Path) -> list[Path]:
    cols = ["path", "label", "split", "speaker", "snr", "clean", "room"]
    lines = [",".join(cols)] + [",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in r) for r in ROWS]
    (folder / "m.csv").write_text("\n".join(lines) + "\n")
    (folder / "m.tsv").write_text("\n".join(line.replace(",", "\t") for line in lines) + "\n")
    (folder / "m.jsonl").write_text("".join(json.dumps(dict(zip(cols, r, strict=True))) + "\n" for r in ROWS))
    table = {c: [r[i] if r[i] != "" else None for r in ROWS] for i, c in enumerate(cols)}
    table["snr"] = [float(v) for v in table["snr"]]
    pq.write_table(pa.table(table), folder / "m.parquet")
    return [folder / f"m.{ext}" for ext in ("csv", "tsv", "jsonl", "parquet")]


def test_every_manifest_format_gives_the_same_records(tmp_path):
    _clips(tmp_path, ["a.wav", "b.wav", "c.wav"])
    for path in _write_all_formats(tmp_path):
        m = read_manifest(path)
        assert m.meta_types == {"snr": "number", "clean": "boolean", "room": "text"}, path.name
        assert [(r.path, r.label, r.split, r.speaker) for r in m.records] == [r[:4] for r in ROWS], path.name
        assert [r.meta for r in m.records] == [{"snr": 3, "clean": True, "room": "quiet room"},
                                               {"snr": 2.5, "clean": False, "room": "car"},
                                               {"snr": 7, "clean": True, "room": None}], path.name


def test_common_voice_tsv_split_files_with_client_id_speakers(tmp_path):
    _clips(tmp_path / "clips", ["c1.wav", "c2.wav", "c3.wav"])
    head = "client_id\tpath\tsentence\tup_votes\n"
    for name, rows in (("train", "aaa\tc1.wav\tyes\t2\nbbb\tc2.wav\tno\t0\n"), ("dev", "ccc\tc3.wav\tyes\t1\n")):
        (tmp_path / f"{name}.tsv").write_text(head + rows)
    (tmp_path / "validated.tsv").write_text(head)
    files = find_split_manifests(tmp_path)
    assert {s: p.name for s, p in files.items()} == {"train": "train.tsv", "validation": "dev.tsv"}
    with pytest.raises(ManifestError, match="no label column") as e:
        read_split_manifests(files, root=tmp_path / "clips")
    assert "--label-column" in e.value.hint
    m = read_split_manifests(files, {"label": "sentence"}, root=tmp_path / "clips")
    assert [(r.path, r.label, r.split, r.speaker) for r in m.records] == [
        ("c1.wav", "yes", "train", "aaa"), ("c2.wav", "no", "train", "bbb"), ("c3.wav", "yes", "validation", "ccc")]
    assert m.meta_types == {"up_votes": "number"}
    plan = plan_layout(tmp_path, audio_dir="clips")
    assert plan.kind == "split_manifests" and plan.root == tmp_path / "clips"
    assert plan.command() == f"earmark ingest {tmp_path} --audio-dir clips"
    assert [(r.path, r.split) for r in load_plan(plan, {"label": "sentence"})[0].records] == \
        [(r.path, r.split) for r in m.records]
    with pytest.raises(ManifestError, match="is not a folder inside"):
        plan_layout(tmp_path, audio_dir="../..")


def test_esc50_style_manifest_in_another_folder(tmp_path):
    _clips(tmp_path / "audio", ["1-100-A-0.wav", "1-101-A-1.wav"])
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10\n1-100-A-0.wav,1,0,dog,True\n1-101-A-1.wav,2,1,rooster,False\n")
    for plan in (plan_layout(tmp_path / "audio", manifest=tmp_path / "meta" / "esc50.csv"),
                 plan_layout(tmp_path, manifest="meta/esc50.csv", audio_dir="audio")):
        m, split = load_plan(plan)
        assert [(r.path, r.label) for r in m.records] == [("1-100-A-0.wav", "dog"), ("1-101-A-1.wav", "rooster")]
        assert m.meta_types == {"fold": "number", "meta_target": "number", "esc10": "boolean"}
        assert split.source == "file_hash" and split.speaker_leakage == "not_checked"  # a fold is not a split


def test_column_options_override_and_ambiguity_is_an_error(tmp_path):
    _clips(tmp_path, ["a.wav", "b.wav"])
    (tmp_path / "m.csv").write_text("file,label,category,Split\na.wav,yes,animal,TRAINING\nb.wav,no,animal,dev\n")
    with pytest.raises(ManifestError, match="several label columns") as e:
        read_manifest(tmp_path / "m.csv")
    assert "--label-column label" in e.value.hint
    m = read_manifest(tmp_path / "m.csv", {"label": "category"})
    assert [r.label for r in m.records] == ["animal", "animal"] and m.meta_types == {"meta_label": "text"}
    assert [r.split for r in m.records] == ["train", "validation"]
    assert [r.split for r in read_manifest(tmp_path / "m.csv", {"label": "label", "split": None}).records] == [None] * 2


def _bad(tmp_path: Path, body: bytes | str, name: str = "m.csv", **kw) -> ManifestError:
    _clips(tmp_path, ["a.wav", "b.wav"])
    p = tmp_path / name
    p.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(ManifestError) as e:
        read_manifest(p, **kw)
    return e.value


@pytest.mark.parametrize("body, title, detail", [
    ("path,label\na.wav,yes\nmissing.wav,no\n", "1 file(s) that do not exist", "line 3: missing.wav"),
    ("path,label\na.wav,yes\n../b.wav,no\n", "climb out", "line 3: '../b.wav'"),
    ("path,label\n/etc/passwd,yes\n", "climb out", "line 2: '/etc/passwd'"),
    ("path,label\na.wav,yes\n./a.wav,no\n", "path(s) twice", "a.wav (m.csv line 2 and m.csv line 3)"),
    ("path,label,split\na.wav,yes,train\nb.wav,no,holdout\n", "unknown split values", "'holdout' on line 3"),
    ("path,kind\na.wav,yes\n", "no label column", "its columns: path, kind"),
    ("path,label\na.wav,yes\nb.wav,\n", "row(s) with no label", "m.csv line 3"),
    ("path,label\na.wav,yes\nb.wav,no,extra\n", "wrong length", "line 3: 3 fields"),
    ('path,label\na.wav,"yes"x\n', "not valid CSV", "line 2"),
    ('path,label\na.wav,yes\nb.wav,"no\na.wav,x\nb.wav,y\n', "not valid CSV", "line 3: a quoted field is never closed"),
    ('path,label\na.wav,"ye\ns"x\nb.wav,no\n', "not valid CSV", "line 2: ',' expected after '\"'"),
    ('path,room,label\na.wav,"two\nlines",yes\nb.wav,x,no,extra\n', "wrong length", "line 4: 4 fields"),
    (b"path,label\na.wav,yes\nb.wav,caf\xe9\n", "not UTF-8", "line 3"),
    ("label\nyes\n", "no path column", "its columns: label"),
    ("path,label\n", "lists no clips", ""),
])
def test_bad_csv_is_a_clear_error(tmp_path, body, title, detail):
    err = _bad(tmp_path, body)
    assert title in err.title and detail in err.detail


def test_bad_json_line_names_the_line(tmp_path):
    err = _bad(tmp_path, '{"path": "a.wav", "label": "yes"}\n{"path": "b.wav", "label": no}\n', "m.jsonl")
    assert "not valid JSON Lines" in err.title and err.detail.startswith("line 2:")
    err = _bad(tmp_path, '{"path": "a.wav", "label": "yes"}\n["b.wav"]\n', "m.jsonl")
    assert err.detail.startswith("line 2: a list")


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    _clips(outside, ["secret.wav"])
    data = tmp_path / "data"
    _clips(data, ["a.wav"])
    os.symlink(outside / "secret.wav", data / "link.wav")
    os.symlink(outside, data / "linked_dir")
    (data / "m.csv").write_text("path,label\na.wav,yes\nlink.wav,no\n")
    with pytest.raises(ManifestError, match="outside") as e:
        read_manifest(data / "m.csv")
    assert "line 3: link.wav" in e.value.detail
    (data / "m.csv").write_text("path,label\na.wav,yes\nlinked_dir/secret.wav,no\n")
    with pytest.raises(ManifestError, match="outside"):
        read_manifest(data / "m.csv")
    os.symlink(data / "a.wav", data / "inside.wav")  # a link that stays inside is a file like any other
    (data / "m.csv").write_text("path,label\ninside.wav,yes\n")
    assert read_manifest(data / "m.csv").records[0].path == "inside.wav"


def test_reserved_column_names_are_renamed_or_refused(tmp_path):
    assert {"id", "path", "label", "word", "split", "speaker", "sample_rate", "duration_s"} <= RESERVED_FIELDS
    _clips(tmp_path, ["a.wav"])
    (tmp_path / "m.csv").write_text("path,label,duration_s,loss\na.wav,yes,1.5,0.2\n")
    m = read_manifest(tmp_path / "m.csv")
    assert m.records[0].meta == {"meta_duration_s": 1.5, "meta_loss": 0.2}
    assert any("'duration_s' is earmark's own field name" in n for n in m.notes)
    (tmp_path / "m.csv").write_text("path,label,duration_s,meta_duration_s\na.wav,yes,1.5,2\n")
    with pytest.raises(ManifestError, match="clashes with earmark's own field 'duration_s'"):
        read_manifest(tmp_path / "m.csv")


def test_pattern_and_manifest_must_agree_on_labels(tmp_path):
    _clips(tmp_path, ["1_ann_0.wav", "2_bob_0.wav"])
    (tmp_path / "m.csv").write_text("path,label\n1_ann_0.wav,1\n2_bob_0.wav,7\n")
    with pytest.raises(ManifestError, match="another label than the manifest") as e:
        apply_name_pattern(read_manifest(tmp_path / "m.csv"), r"(?P<label>\d)_(?P<speaker>[a-z]+)")
    assert "m.csv line 3: '7' vs '2'" in e.value.detail


def test_pattern_rejects_what_it_does_not_match_and_refuses_to_match_nothing(tmp_path):
    _clips(tmp_path, ["1_ann_0.wav", "2_bob_1.wav", "README take.wav"])
    _clips(tmp_path / "background_noise", ["hum.wav"])
    m, noise = scan_name_pattern(tmp_path, FSDD_PATTERN)
    assert [(r.path, r.label, r.speaker, r.meta) for r in m.records] == [
        ("1_ann_0.wav", "1", "ann", {"take": 0}), ("2_bob_1.wav", "2", "bob", {"take": 1})]
    assert m.rejects == [("README take.wav", REJECT_REASON, f"the name does not match the pattern {FSDD_PATTERN}")]
    assert noise == ["background_noise/hum.wav"]
    with pytest.raises(ManifestError, match="matches no file") as e:
        scan_name_pattern(tmp_path, r"(?P<label>[A-Z])-")
    assert "1_ann_0.wav" in e.value.detail
    with pytest.raises(ManifestError, match="not a valid regular expression"):
        plan_layout(tmp_path, name_pattern=r"(?P<label>\d")
    with pytest.raises(ManifestError, match="no named group"):
        plan_layout(tmp_path, name_pattern=r"\d_")


def test_speaker_table_joins_and_refuses_duplicates(tmp_path):
    _clips(tmp_path, ["1_ann_0.wav", "2_bob_0.wav"])
    (tmp_path / "speakers.csv").write_text("speaker,age,native\nann,31,true\n")
    base = scan_name_pattern(tmp_path, FSDD_PATTERN)[0]
    m = join_speakers(base, tmp_path / "speakers.csv")
    assert [r.meta for r in m.records] == [{"take": 0, "age": 31, "native": True},
                                           {"take": 0, "age": None, "native": None}]
    assert m.meta_types["age"] == "number" and m.meta_types["native"] == "boolean"
    assert "1 clip(s) have a speaker not in it" in m.notes[-1]
    (tmp_path / "speakers.csv").write_text("speaker,age\nann,31\nann,32\n")
    with pytest.raises(ManifestError, match="lists speaker 'ann' twice"):
        join_speakers(base, tmp_path / "speakers.csv")
    with pytest.raises(ManifestError, match="both have the column"):  # joined twice
        join_speakers(m, tmp_path / "speakers.csv")


def test_split_is_speaker_disjoint_when_speakers_are_known(tmp_path):
    names = [f"{d}_{s}_{t}.wav" for d in range(3) for s in ("ann", "bob", "cyd", "dan", "eve", "fay") for t in range(2)]
    _clips(tmp_path, names)
    m, split = assign_splits(scan_name_pattern(tmp_path, FSDD_PATTERN)[0])
    assert split.source == "speaker_hash" and all(len(v) == 1 for v in _by_speaker_splits(m.records).values())
    # the rule leaves a split with none of these 6 speakers, so speakers in hash order fill it (1 test, 1 val)
    assert sorted({r.speaker: r.split for r in m.records}.values()) == ["test"] + ["train"] * 4 + ["validation"]
    plain, _ = assign_splits(scan_name_pattern(tmp_path, FSDD_PATTERN)[0], fill_splits=False)
    assert {r.speaker: r.split for r in plain.records} == {s: speaker_split(s) for s in ("ann", "bob", "cyd", "dan",
                                                                                         "eve", "fay")}
    assert speaker_split("0a7c2a8d") == which_set("yes/0a7c2a8d_nohash_3.wav")  # Speech Commands' rule
    unknown, split = assign_splits(scan_name_pattern(tmp_path, r"(?P<label>\d)_")[0])
    assert split.speaker_leakage == "not_checked" and split.source == "file_hash"


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_decode_native_keeps_any_rate(tmp_path, rate, fmt):
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(0.5 * rate)) / rate)).astype(np.float32)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, x, rate, subtype="PCM_16", format=fmt)
    d = decode_native(path)
    assert (d.sample_rate, d.n_samples) == (rate, x.size)
    assert np.abs(d.as_float() - x).max() < 1e-4


def test_decode_native_length_and_rate_limits(tmp_path):
    long_ok = write_wav_fast(tmp_path / "12s.wav", np.zeros(12 * 16000, np.float32) + 0.1)
    assert decode_native(long_ok).n_samples == 12 * 16000
    too_long = tmp_path / "31s.flac"
    sf.write(too_long, np.full(31 * 8000, 0.1, np.float32), 8000, format="FLAC")
    with pytest.raises(AudioError) as e:
        decode_native(too_long)
    assert e.value.reason == "too_long" and e.value.detail == "31.000 s at 8000 Hz, at most 30 s allowed"
    assert decode_native(too_long, max_seconds=None).n_samples == 31 * 8000
    for rate in (6000, 96000):
        path = write_wav_fast(tmp_path / f"{rate}.wav", np.full(rate // 10, 0.1, np.float32), rate)
        with pytest.raises(AudioError, match="outside the 8000-48000 Hz") as e:
            decode_native(path)
        assert e.value.reason == "sample_rate"
    with pytest.raises(AudioError, match="expected 16000 Hz"):  # decode itself is unchanged
        decode(write_wav_fast(tmp_path / "8k.wav", np.full(800, 0.1, np.float32), 8000))


def test_parquet_nested_columns_are_ignored_and_a_broken_file_is_refused(tmp_path):
    _clips(tmp_path, ["a.wav", "b.wav"])
    day = datetime.date(2021, 5, 1)
    pq.write_table(pa.table({"file_name": ["a.wav", "b.wav"], "label": [1, 2], "age": [30, float("nan")], "day": [day, None],
                             "audio": [{"bytes": b"x", "path": "a"}, {"bytes": b"y", "path": "b"}]}), tmp_path / "m.pq")
    m = read_manifest(tmp_path / "m.pq")
    assert [(r.path, r.label, r.meta) for r in m.records] == [("a.wav", "1", {"age": 30, "day": "2021-05-01"}),
                                                              ("b.wav", "2", {"age": None, "day": None})]
    assert m.meta_types == {"age": "number", "day": "text"} and "'audio' holds nested values" in m.notes[0]
    err = _bad(tmp_path, b"PAR1 this is not parquet", "broken.parquet")
    assert "not a readable Parquet file" in err.title


def test_walk_skips_fifos_hidden_files_and_links_out_and_rejects_bad_names(tmp_path):
    _clips(tmp_path / "data" / "yes", ["a.wav", ".hidden.wav"])
    _clips(tmp_path / "outside", ["x.wav"])
    os.mkfifo(tmp_path / "data" / "yes" / "pipe.wav")
    os.symlink(tmp_path / "outside" / "x.wav", tmp_path / "data" / "yes" / "out.wav")
    os.symlink(tmp_path / "data" / "yes" / "a.wav", tmp_path / "data" / "yes" / "in.wav")
    with open(os.fsencode(tmp_path / "data" / "yes") + b"/bad\xff.wav", "wb") as fh:
        fh.write((tmp_path / "data" / "yes" / "a.wav").read_bytes())
    clips, noise, rejects = walk_audio(tmp_path / "data")
    assert clips == ["yes/a.wav", "yes/in.wav"] and noise == []
    assert [(r[1], r[2]) for r in rejects] == [("bad_name", "the file name is not valid UTF-8")]
