"""ml.speech_commands: layouts, name parsing, split lists and the published hashing rule."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from ml.speech_commands import LayoutError, detect_layout, parse_name, read_list, scan, which_set
from tests.ingest_helpers import SPEAKERS, make_folder_layout, make_test_archive, make_training_layout


def test_which_set_matches_the_official_lists_on_the_shared_sample(shared_sample):
    val, test = read_list(shared_sample / "validation_list.txt"), read_list(shared_sample / "testing_list.txt")
    clips = sorted(p.relative_to(shared_sample).as_posix() for p in shared_sample.glob("*/*.wav"))
    assert len(clips) == 300
    by_list = {c: "validation" if c in val else "test" if c in test else "train" for c in clips}
    assert Counter(by_list.values()) == {"train": 205, "validation": 44, "test": 51}
    mismatched = [c for c in clips if which_set(c) != by_list[c]]
    assert mismatched == []


def test_which_set_ignores_the_nohash_suffix():
    # every clip of one speaker, whatever the word or utterance number, lands in one split
    for spk in SPEAKERS:
        assert len({which_set(f"{w}/{spk}_nohash_{n}.wav") for w in ("yes", "no") for n in range(4)}) == 1
    # and the rule's fractions come out near 10/10/80 over many speakers
    counts = Counter(which_set(f"{i:08x}_nohash_0.wav") for i in range(4000))
    assert 300 < counts["validation"] < 500 and 300 < counts["test"] < 500


def test_which_set_respects_custom_percentages():
    names = [f"{i:08x}_nohash_0.wav" for i in range(500)]
    assert all(which_set(n, 0, 0) == "train" for n in names)
    assert all(which_set(n, 100, 0) == "validation" for n in names)


def test_parse_name_variants():
    assert parse_name("0a7c2a8d_nohash_3.wav") == (None, "0a7c2a8d", 3)
    assert parse_name("bed_0a7c2a8d_nohash_1.wav", word_prefix=True) == ("bed", "0a7c2a8d", 1)
    assert parse_name("recording 4.wav") == (None, None, None)
    assert parse_name("silence_0.wav", word_prefix=True) == ("silence", None, None)


def test_scan_training_layout_uses_lists_and_counts_missing(tmp_path):
    paths = make_training_layout(tmp_path, missing_listed=3)
    (tmp_path / "yes" / "desktop.ini").write_text("x")
    layout = scan(tmp_path)
    assert layout.kind == "speech_commands" and layout.split_source == "lists"
    assert sorted(e.path for e in layout.entries) == sorted(paths)
    assert layout.labels == ["no", "up", "yes"]
    assert layout.noise_files == ["_background_noise_/white_noise.wav"]
    assert layout.list_stats["listed_missing"]["validation"] == 3
    assert layout.list_stats["listed_missing"]["test"] == 0
    assert layout.list_stats["ignored_files"] == 1
    for e in layout.entries:
        assert e.split == which_set(e.path) and e.word == e.label
        assert e.speaker in SPEAKERS and e.utterance == 0


def test_scan_training_layout_split_lists_win_over_the_hash(tmp_path):
    make_training_layout(tmp_path, lists=False)
    (tmp_path / "validation_list.txt").write_text("yes/0a7c2a8d_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/0a7c2a8d_nohash_0.wav\nno/1b4c9b89_nohash_0.wav\n")
    splits = {e.path: e.split for e in scan(tmp_path).entries}
    assert splits["yes/0a7c2a8d_nohash_0.wav"] == "validation"
    assert splits["no/0a7c2a8d_nohash_0.wav"] == "test"
    assert Counter(splits.values())["train"] == len(splits) - 3


def test_scan_file_in_both_lists_is_reported(tmp_path):
    make_training_layout(tmp_path, lists=False)
    (tmp_path / "validation_list.txt").write_text("up/2c5d0e3f_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("up/2c5d0e3f_nohash_0.wav\n")
    layout = scan(tmp_path)
    assert layout.list_stats["in_both_lists"] == ["up/2c5d0e3f_nohash_0.wav"]
    assert {e.path: e.split for e in layout.entries}["up/2c5d0e3f_nohash_0.wav"] == "test"


def test_scan_noise_folder_without_lists_splits_by_hash(tmp_path):
    make_training_layout(tmp_path, lists=False, noise=True)
    layout = scan(tmp_path)
    assert layout.kind == "speech_commands" and layout.split_source == "hash"
    assert all(e.split == which_set(e.path) for e in layout.entries)


def test_scan_official_test_archive(tmp_path):
    make_test_archive(tmp_path)
    layout = scan(tmp_path)
    assert layout.kind == "test_archive" and layout.split_source == "archive"
    assert layout.labels == ["_silence_", "_unknown_", "no", "yes"]
    assert {e.split for e in layout.entries} == {"test"}
    unknown = {e.path: (e.label, e.word, e.speaker) for e in layout.entries if e.label == "_unknown_"}
    assert unknown["_unknown_/bed_3d6e1f40_nohash_1.wav"] == ("_unknown_", "bed", "3d6e1f40")
    assert unknown["_unknown_/marvin_4e7f2051_nohash_1.wav"] == ("_unknown_", "marvin", "4e7f2051")
    silence = [e for e in layout.entries if e.label == "_silence_"]
    assert len(silence) == 2 and all(e.word == "_silence_" and e.speaker is None for e in silence)
    yes = [e for e in layout.entries if e.label == "yes"]
    assert all(e.word == "yes" for e in yes) and len(yes) == 3


def test_scan_plain_folder_per_class(tmp_path):
    paths = make_folder_layout(tmp_path)
    layout = scan(tmp_path)
    assert layout.kind == "folders" and layout.split_source == "hash" and layout.noise_files == []
    assert sorted(e.path for e in layout.entries) == sorted(paths)
    assert layout.labels == ["cat", "dog"]
    by_speaker = defaultdict(set)
    for e in layout.entries:
        assert e.split == which_set(e.path)
        if e.speaker:
            by_speaker[e.speaker].add(e.split)
    assert by_speaker and all(len(s) == 1 for s in by_speaker.values())
    assert {e.speaker for e in layout.entries if "recording" in e.path} == {None}


def test_detect_layout_kinds(tmp_path):
    (tmp_path / "a" / "_unknown_").mkdir(parents=True)
    assert detect_layout(tmp_path / "a") == "test_archive"
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "testing_list.txt").write_text("")
    assert detect_layout(tmp_path / "b") == "speech_commands"


def test_scan_empty_or_missing_folder_raises(tmp_path):
    with pytest.raises(LayoutError):
        scan(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "readme.txt").write_text("no audio")
    with pytest.raises(LayoutError):
        scan(tmp_path)
    with pytest.raises(LayoutError):
        scan(tmp_path / "missing")


def test_scan_folder_per_split_then_class(tmp_path):
    from tests.ingest_helpers import clip, write_wav_fast

    for rel in ("train/cat/a_nohash_0.wav", "train/dog/b_nohash_0.wav", "val/cat/c_nohash_0.wav",
                "Test/dog/d_nohash_0.wav"):
        write_wav_fast(tmp_path / rel, clip(len(rel)))
    write_wav_fast(tmp_path / "train" / "stray.wav", clip(1))
    layout = scan(tmp_path)
    assert layout.kind == "split_folders" and layout.split_source == "folders"
    assert layout.labels == ["cat", "dog"] and layout.list_stats["ignored_files"] == 1
    assert {e.path: (e.label, e.split) for e in layout.entries} == {
        "train/cat/a_nohash_0.wav": ("cat", "train"), "train/dog/b_nohash_0.wav": ("dog", "train"),
        "val/cat/c_nohash_0.wav": ("cat", "validation"), "Test/dog/d_nohash_0.wav": ("dog", "test")}


def test_scan_a_class_that_happens_to_be_called_test_is_a_class(tmp_path):
    from tests.ingest_helpers import clip, write_wav_fast

    write_wav_fast(tmp_path / "test" / "a_nohash_0.wav", clip(1))
    write_wav_fast(tmp_path / "other" / "b_nohash_0.wav", clip(2))
    layout = scan(tmp_path)
    assert layout.kind == "folders" and layout.labels == ["other", "test"]
