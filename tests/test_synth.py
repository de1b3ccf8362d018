"""Demo data synthesis (``ml.synth`` and ``earmark synth``): layout, format, determinism, the
planted defects against their truth in defects.csv, and the hashing-rule splits.

One small data set (3 speakers, 8 words, 3 takes, defect rates x4 so every kind shows up) is built
once per module and read by most tests.
"""

from __future__ import annotations

import csv
import json
import os
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ml.synth import DEFECTS, WORDS, synthesize, which_set

SUBSET = ("yes", "no", "up", "tree", "three", "sheila", "marvin", "backward")
KW = dict(speakers=3, seed=11, repeats=3, words=SUBSET, noise_seconds=2.0, defect_scale=4.0)
NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "demo"
    report = synthesize(out, workers=2, **KW)
    return report


def _clips(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*.wav") if p.parent.name != "_background_noise_")


def _defects(report) -> dict[str, dict[str, str]]:
    with open(report.defects_csv, newline="") as f:
        return {row["path"]: row for row in csv.DictReader(f)}


def _db50(x: np.ndarray) -> np.ndarray:
    """dB RMS of 50 ms windows every 10 ms."""
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    s = np.arange(0, x.size - 800 + 1, 160)
    return 10 * np.log10((c[s + 800] - c[s]) / 800 + 1e-12)


def _read(path: Path) -> np.ndarray:
    x, sr = sf.read(path, dtype="float32")
    assert sr == 16000
    return x


def test_synth_words_are_the_v002_vocabulary():
    assert len(WORDS) == 35 and len(set(WORDS)) == 35
    assert {"backward", "follow", "forward", "learn", "visual", "sheila", "marvin", "wow", "zero"} <= set(WORDS)


def test_synth_layout_and_file_format(demo):
    root = demo.dataset_dir
    assert root == demo.out_dir / "speech_commands" and demo.defects_csv == demo.out_dir / "defects.csv"
    assert not (root / "defects.csv").exists(), "the truth must sit next to the data set, not inside it"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([*SUBSET, "_background_noise_"])
    assert (root / "validation_list.txt").is_file() and (root / "testing_list.txt").is_file()
    assert not list(demo.out_dir.glob(".*partial")), "no leftovers of the atomic write"
    noise = sorted(p.name for p in (root / "_background_noise_").glob("*.wav"))
    assert noise == ["babble.wav", "brown_noise.wav", "mains_hum.wav", "pink_noise.wav", "white_noise.wav"]
    for p in (root / "_background_noise_").glob("*.wav"):
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 32000)
        assert np.sqrt(np.mean(_read(p) ** 2)) > 0.01, f"{p.name} is silent"
    clips = _clips(root)
    assert len(clips) == demo.n_clips == 3 * len(SUBSET) * 3
    for p in clips:
        with wave.open(str(p)) as w:  # plain PCM WAV: 16 kHz, mono, 16-bit, at most one second
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert 0 < w.getnframes() <= 16000
    assert sum(demo.split_clips.values()) == demo.n_clips


def test_synth_speaker_ids_look_real(demo):
    names = [p.name for p in _clips(demo.dataset_dir)]
    assert all(NAME.match(n) for n in names), names[:5]
    speakers = {n[:8] for n in names}
    assert len(speakers) == 3
    # each speaker says each word `repeats` times, numbered 0, 1, 2
    for word in SUBSET:
        for s in speakers:
            assert sorted(p.name for p in (demo.dataset_dir / word).glob(f"{s}_*")) == [
                f"{s}_nohash_{n}.wav" for n in range(3)]


def test_synth_same_seed_gives_identical_bytes(demo, tmp_path):
    again = synthesize(tmp_path / "again", workers=1, **KW)  # other worker count, same bytes
    a = {p.relative_to(demo.out_dir): p.read_bytes() for p in demo.out_dir.rglob("*") if p.is_file()}
    b = {p.relative_to(again.out_dir): p.read_bytes() for p in again.out_dir.rglob("*") if p.is_file()}
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_synth_other_seed_gives_other_data(demo, tmp_path):
    other = synthesize(tmp_path / "other", workers=2, **{**KW, "seed": 12})
    ids_a = {p.name[:8] for p in _clips(demo.dataset_dir)}
    ids_b = {p.name[:8] for p in _clips(other.dataset_dir)}
    assert ids_a != ids_b
    wav_a = sorted(p.read_bytes() for p in _clips(demo.dataset_dir))
    wav_b = sorted(p.read_bytes() for p in _clips(other.dataset_dir))
    assert not set(wav_a) & set(wav_b)


def test_synth_defects_csv_matches_files_and_kinds(demo):
    with open(demo.defects_csv, newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["path", "defect", "true_label", "filed_label", "detail"]
    rows = _defects(demo)
    assert {r["defect"] for r in rows.values()} == set(DEFECTS), "every kind is planted at least once"
    counts = {k: sum(r["defect"] == k for r in rows.values()) for k in DEFECTS}
    assert counts == demo.defect_counts
    for path, r in rows.items():
        assert (demo.dataset_dir / path).is_file(), path
        assert r["filed_label"] == path.split("/")[0]
        assert r["detail"]
        if r["defect"] == "cutoff":
            assert r["true_label"] == r["filed_label"]
        elif r["defect"] == "mislabeled":
            assert r["true_label"] in WORDS and r["true_label"] != r["filed_label"]
        elif r["defect"] == "multiple_words":
            pair = r["true_label"].split("+")
            assert len(pair) == 2 and r["filed_label"] in pair and all(w in WORDS for w in pair)
        else:
            assert r["defect"] == "noise_only" and r["true_label"] == ""


def test_synth_cutoff_clips_end_loud_and_clean_clips_end_quiet(demo):
    rows = _defects(demo)
    cut, clean = [], []
    for p in _clips(demo.dataset_dir):
        rel = f"{p.parent.name}/{p.name}"
        x = _read(p)
        db = _db50(x)
        end = db[-1] if x.size % 160 == 0 else _db50(x[-800:])[0]
        margin = end - db.max()  # last 50 ms against the loudest 50 ms
        kind = rows.get(rel, {}).get("defect", "clean")
        if kind == "cutoff":
            cut.append(margin)
            assert x.size == 16000
        elif kind == "clean":
            clean.append(margin)
    assert len(cut) >= 5 and len(clean) >= 20
    assert min(cut) > -15.0, sorted(cut)[:3]
    assert max(clean) < -18.0, sorted(clean)[-3:]


def test_synth_cutoff_clips_keep_only_the_start_of_the_word(demo):
    # Too little of the word is left to tell which it was: only its first 10-30 %, late in the clip.
    from ml.analysis.signal import signal_stats
    from ml.synth_render import KEEP_MAX, KEEP_MIN

    rows = [r for r in _defects(demo).values() if r["defect"] == "cutoff"]
    assert len(rows) >= 5
    for r in rows:
        m = re.search(r"starts at ([0-9.]+) s, word ([0-9.]+) s, (\d+)% kept", r["detail"])
        assert m, r["detail"]
        onset, word_s, kept = float(m[1]), float(m[2]), int(m[3]) / 100
        assert KEEP_MIN - 0.01 <= kept <= KEEP_MAX + 0.01 or (1 - onset) <= 0.07, r["detail"]
        assert onset >= 1.0 - max(KEEP_MAX * word_s, 0.06) - 0.01, r["detail"]
        stats = signal_stats(_read(demo.dataset_dir / r["path"]), 16000)
        assert stats.lead_silence_ms >= 550 and stats.trail_silence_ms < 50, (r["path"], stats)


def test_synth_noise_only_clips_have_no_speech_pattern(demo):
    rows = _defects(demo)
    for p in _clips(demo.dataset_dir):
        rel = f"{p.parent.name}/{p.name}"
        db = _db50(_read(p))
        spread = db.max() - np.percentile(db, 5)  # speech rises far above its own pauses; noise does not
        kind = rows.get(rel, {}).get("defect", "clean")
        if kind == "noise_only":
            assert spread < 10.0, (rel, spread)
        elif kind in ("clean", "mislabeled", "multiple_words"):
            assert spread > 15.0, (rel, spread)


def test_synth_split_lists_follow_the_hashing_rule(demo):
    root = demo.dataset_dir
    val = (root / "validation_list.txt").read_text().splitlines()
    test = (root / "testing_list.txt").read_text().splitlines()
    assert val == sorted(val) and test == sorted(test)
    listed = {**{p: "validation" for p in val}, **{p: "test" for p in test}}
    speaker_split: dict[str, set[str]] = {}
    for p in _clips(root):
        rel = f"{p.parent.name}/{p.name}"
        split = listed.get(rel, "train")
        assert split == which_set(rel), rel
        speaker_split.setdefault(p.name[:8], set()).add(split)
    assert all(len(s) == 1 for s in speaker_split.values()), speaker_split
    # 3 speakers: one per split, so every split has clips
    assert sorted(next(iter(s)) for s in speaker_split.values()) == ["test", "train", "validation"]
    assert demo.split_speakers == {"train": 1, "validation": 1, "test": 1}


def test_synth_same_options_again_is_a_no_op_and_others_are_refused(demo, tmp_path):
    stamps = {p: p.stat().st_mtime_ns for p in demo.out_dir.rglob("*")}
    again = synthesize(demo.out_dir, **KW)
    assert again.unchanged and again.n_clips == demo.n_clips and again.defect_counts == demo.defect_counts
    assert {p: p.stat().st_mtime_ns for p in demo.out_dir.rglob("*")} == stamps
    with pytest.raises(FileExistsError):
        synthesize(demo.out_dir, **{**KW, "seed": 99})
    assert {p: p.stat().st_mtime_ns for p in demo.out_dir.rglob("*")} == stamps
    # a clip gone missing: the data set is no longer what the manifest says, so it is not reused
    victim = _clips(demo.dataset_dir)[0]
    data = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(FileExistsError):
            synthesize(demo.out_dir, **KW)
    finally:
        victim.write_bytes(data)


def test_synth_overwrite_rebuilds(tmp_path):
    kw = {**KW, "words": ("yes", "no"), "speakers": 1, "repeats": 1}
    first = synthesize(tmp_path / "d", **kw)
    ids_first = {p.name[:8] for p in _clips(first.dataset_dir)}
    (first.dataset_dir / "yes" / "stray.wav").write_bytes(b"junk")
    second = synthesize(tmp_path / "d", overwrite=True, **{**kw, "seed": 5})
    assert not second.unchanged and not (second.dataset_dir / "yes" / "stray.wav").exists()
    assert {p.name[:8] for p in _clips(second.dataset_dir)} != ids_first
    assert json.loads((tmp_path / "d" / "synth.json").read_text())["params"]["seed"] == 5


def test_synth_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="not allowed"):
        synthesize(tmp_path / "x", words=["yes", "banana"], speakers=1)
    with pytest.raises(ValueError):
        synthesize(tmp_path / "y", speakers=0)


def test_cli_synth_writes_and_prints_summary(tmp_path):
    from app.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["synth", str(out), "--speakers", "1", "--repeats", "1", "--seed", "3",
                                      "--noise-seconds", "1", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "35 clips" in result.output and "defects.csv" in result.output
    assert len(_clips(out / "speech_commands")) == 35
    again = CliRunner().invoke(app, ["synth", str(out), "--speakers", "1"])
    assert again.exit_code == 1 and "--force" in again.output


def test_synth_speakers_vary_and_held_out_ones_speak_english():
    from ml.synth import make_speaker_ids
    from ml.synth_render import make_speaker

    people = [make_speaker(sid, split, 7) for sid, split in make_speaker_ids(200, 7)]
    assert len({p.id for p in people}) == 200
    assert [sum(p.split == s for p in people) for s in ("train", "validation", "test")] == [160, 20, 20]
    assert all(which_set(f"{p.id}_nohash_0.wav") == p.split for p in people)
    foreign = [p for p in people if not p.voice.startswith("en")]
    assert foreign and all(p.split == "train" for p in foreign)
    assert len({p.voice for p in people}) > 100 and len({p.noise_kind for p in people}) == 4
    assert np.std([p.rate for p in people]) > 10 and np.std([p.onset_mean for p in people]) > 0.03


def test_synth_killed_run_leaves_no_data_set_and_next_run_completes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from app.cli import main; sys.argv = ['earmark'] + sys.argv[1:]; main()",
         "synth", str(out), "--speakers", "12", "--noise-seconds", "1", "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(out.glob(".speech_commands.partial*/*/*.wav"))) < 40:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its workers, as a kill -9 of the job would
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "speech_commands").exists() and not (out / "defects.csv").exists()
    assert list(out.glob(".speech_commands.partial*")), "the half-written data set stays hidden"
    report = synthesize(out, **KW)
    assert report.n_clips == 72 and not list(out.glob(".*partial*"))
    assert len(_clips(report.dataset_dir)) == 72
