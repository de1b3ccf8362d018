"""Demo data: a Speech Commands v0.02-style data set spoken by eSpeak NG, with planted defects.

``synthesize(out_dir)`` writes ``out_dir/speech_commands/`` (35 word folders of
``<speaker>_nohash_<n>.wav``, ``validation_list.txt``, ``testing_list.txt``, ``_background_noise_/``)
and the truth about every planted defect to ``out_dir/defects.csv``, next to the data set, so that
earmark's findings can be scored against it. The same seed gives byte-identical files.

Work is streamed to a process pool one speaker at a time; each speaker is rendered in a fresh
worker process (see ``ml.synth_voice`` for why) that writes its WAVs itself and sends back only
the defect rows. The data set appears under its final name only once complete.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import os
import shutil
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.speech_commands import which_set
from ml.synth_render import CLIP, DEFECTS, SR, WORDS, Speaker, background_noise, choose_defect, make_speaker

log = logging.getLogger(__name__)

DATASET_DIR = "speech_commands"
DEFECTS_CSV = "defects.csv"
DEFECT_COLUMNS = ("path", "defect", "true_label", "filed_label", "detail")
DEFAULT_REPEATS = 3  # 40 speakers x 35 words x 3 = 4,200 clips
MANIFEST = "synth.json"  # next to the data set: the parameters and counts of the last complete run
GENERATOR_VERSION = 4  # bump when the same parameters would give different audio

ProgressFn = Callable[[int, int], None]


@dataclass
class SynthReport:
    """What ``synthesize`` wrote."""

    out_dir: Path
    dataset_dir: Path  # out_dir / "speech_commands"
    defects_csv: Path  # out_dir / "defects.csv"
    background_dir: Path
    n_clips: int
    n_speakers: int
    words: tuple[str, ...]
    defect_counts: dict[str, int]  # every kind in DEFECTS, zeros included
    split_clips: dict[str, int]  # clips per split
    split_speakers: dict[str, int]
    seconds: float
    background_files: list[Path] = field(default_factory=list)
    unchanged: bool = False  # True: the same parameters had already been synthesised; nothing written


def _params(speakers, seed, repeats, words, noise_seconds, defect_scale) -> dict:
    return {"generator": GENERATOR_VERSION, "speakers": speakers, "seed": seed, "repeats": repeats,
            "words": list(words), "noise_seconds": float(noise_seconds), "defect_scale": float(defect_scale)}


def _existing(out_dir: Path, params: dict) -> SynthReport | None:
    """The report of a complete earlier run with exactly these parameters, if the files are all there."""
    try:
        saved = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    root = out_dir / DATASET_DIR
    if saved.get("params") != params or not (out_dir / DEFECTS_CSV).is_file():
        return None
    n_files = sum(1 for w in params["words"] if (root / w).is_dir() for e in os.scandir(root / w))
    if n_files != saved.get("n_clips"):
        return None
    return SynthReport(
        out_dir=out_dir, dataset_dir=root, defects_csv=out_dir / DEFECTS_CSV,
        background_dir=root / "_background_noise_", n_clips=saved["n_clips"], n_speakers=params["speakers"],
        words=tuple(params["words"]), defect_counts=saved["defect_counts"], split_clips=saved["split_clips"],
        split_speakers=saved["split_speakers"], seconds=0.0,
        background_files=[root / p for p in saved["background_files"]], unchanged=True,
    )


def make_speaker_ids(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` distinct 8-hex speaker ids with their split, deterministic from ``seed``.

    Ids are drawn at random and kept only while their split (from the hashing rule) still has
    room, so the speakers split 80/10/10 exactly as far as ``n`` allows (at least one speaker in
    each split from 3 speakers up) instead of by the luck of 40 hashes.
    """
    n_val = max(1, round(0.1 * n)) if n >= 3 else 0
    n_test = n_val
    quota = {"train": n - n_val - n_test, "validation": n_val, "test": n_test}
    rng = np.random.default_rng([seed, 0x5EED])
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        sid = f"{int(rng.integers(0, 2**32)):08x}"
        split = which_set(f"{sid}_nohash_0.wav")
        if sid in seen or quota[split] == 0:
            continue
        seen.add(sid)
        quota[split] -= 1
        out.append((sid, split))
    return out


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SR) -> None:
    """16-bit mono PCM WAV with the plain 44-byte header (stdlib ``wave``: byte-for-byte stable)."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())


# --- Worker side. One eSpeak per process, made by the pool initializer.
_ENGINE = None
_INIT_ERROR: BaseException | None = None


def _init_worker() -> None:
    # An exception escaping a Pool initializer makes the pool respawn the worker forever; keep it
    # and raise it from the first task instead, so synthesize() fails with the real cause.
    global _ENGINE, _INIT_ERROR
    try:
        from ml.synth_voice import Espeak

        _ENGINE = Espeak()
    except Exception as exc:  # noqa: BLE001 - re-raised in _run_task
        _INIT_ERROR = exc


def _render_speaker(task: tuple) -> tuple[str, int, list[str], list[tuple[str, ...]]]:
    """Render every clip of one speaker; returns (speaker id, n clips, relative paths, defect rows)."""
    from ml.synth_render import render_clip

    _, seed, sp, words, repeats, scale, root = task
    sp: Speaker
    root = Path(root)
    paths: list[str] = []
    defects: list[tuple[str, ...]] = []
    for word in words:
        for n in range(repeats):
            rng = np.random.default_rng([seed, int(sp.id, 16), WORDS.index(word), n])
            kind = choose_defect(word, rng, scale)
            samples, true_label, detail = render_clip(_ENGINE, sp, word, kind, rng)
            rel = f"{word}/{sp.id}_nohash_{n}.wav"
            write_wav(root / rel, samples)
            paths.append(rel)
            if kind != "clean":
                defects.append((rel, kind, true_label, word, detail))
    return sp.id, len(paths), paths, defects


def _render_background(task: tuple) -> tuple[str, int, list[str], list[tuple[str, ...]]]:
    _, seed, seconds, root = task
    files = background_noise(_ENGINE, seconds, seed)
    for name, samples in files.items():
        write_wav(Path(root) / "_background_noise_" / f"{name}.wav", samples)
    return "", 0, [f"_background_noise_/{name}.wav" for name in files], []


def _run_task(task: tuple) -> tuple[str, int, list[str], list[tuple[str, ...]]]:
    if _INIT_ERROR is not None:
        raise RuntimeError(f"eSpeak NG could not start in a worker: {_INIT_ERROR}") from _INIT_ERROR
    return _render_background(task) if task[0] == "background" else _render_speaker(task)


def _pool_context():
    # forkserver: workers fork from a clean server process that preloaded this module (fast, and
    # safe next to the CLI's progress-bar thread); spawn where forkserver does not exist.
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", "ml.synth", "ml.synth_render", "ml.synth_voice"])
        return ctx
    return mp.get_context("spawn")


def synthesize(
    out_dir: Path | str,
    speakers: int = 40,
    seed: int = 7,
    repeats: int = DEFAULT_REPEATS,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    words: Sequence[str] | None = None,
    noise_seconds: float = 60.0,
    overwrite: bool = False,
    defect_scale: float = 1.0,
) -> SynthReport:
    """Write a demo Speech Commands data set to ``out_dir/speech_commands`` and its defect truth to
    ``out_dir/defects.csv``.

    ``speakers`` x ``len(words)`` x ``repeats`` clips (default 40 x 35 x 3 = 4,200); ``words``
    defaults to all 35 v0.02 words; ``workers`` defaults to the CPU count; ``progress(done, total)``
    is called in this process as clips finish; ``defect_scale`` multiplies every defect rate
    (tests use it to get each kind in a few clips). If the same parameters were already synthesised
    completely into ``out_dir``, nothing is written and the report says ``unchanged``. Raises
    ``FileExistsError`` if another data set is there and ``overwrite`` is false, ``ValueError`` on
    bad arguments.
    """
    t0 = time.perf_counter()
    words = tuple(WORDS if words is None else words)
    unknown = [w for w in words if w not in WORDS]
    if unknown or not words or len(set(words)) != len(words):
        raise ValueError(f"words must be distinct Speech Commands v0.02 words; not allowed: {unknown or words}")
    if speakers < 1 or repeats < 1:
        raise ValueError("speakers and repeats must be at least 1")
    if not 0 < defect_scale <= 6:
        raise ValueError("defect_scale must be in (0, 6]")
    if noise_seconds < 1:
        raise ValueError("noise_seconds must be at least 1")
    out_dir = Path(out_dir)
    final, csv_path = out_dir / DATASET_DIR, out_dir / DEFECTS_CSV
    params = _params(speakers, seed, repeats, words, noise_seconds, defect_scale)
    if not overwrite and (done_before := _existing(out_dir, params)) is not None:
        return done_before
    if (final.exists() or csv_path.exists()) and not overwrite:
        raise FileExistsError(f"{final} or {csv_path} already exists, made with other parameters")
    # Leftovers of a killed run go first; a fresh, per-process name keeps any orphaned worker of
    # that run (it dies on its next write) out of this one.
    for stale in (*out_dir.glob(f".{DATASET_DIR}.partial*"), *out_dir.glob(f".{DEFECTS_CSV}.partial*")):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    partial = out_dir / f".{DATASET_DIR}.partial-{os.getpid()}"
    for w in (*words, "_background_noise_"):
        (partial / w).mkdir(parents=True)

    people = [make_speaker(sid, split, seed) for sid, split in make_speaker_ids(speakers, seed)]
    total = len(people) * len(words) * repeats
    tasks = [("background", seed, float(noise_seconds), str(partial))]
    tasks += [("speaker", seed, sp, words, repeats, float(defect_scale), str(partial)) for sp in people]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    split_of = {sp.id: sp.split for sp in people}
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    defect_rows: list[tuple[str, ...]] = []
    split_clips = {"train": 0, "validation": 0, "test": 0}
    background: list[Path] = []
    done = 0
    if progress:
        progress(0, total)
    # maxtasksperchild=1: every speaker starts from a freshly initialised eSpeak (determinism).
    with _pool_context().Pool(workers, initializer=_init_worker, maxtasksperchild=1) as pool:
        for sid, n, paths, rows in pool.imap_unordered(_run_task, tasks, chunksize=1):
            if not sid:
                background = [final / p for p in paths]
                continue
            split_clips[split_of[sid]] += n
            if split_of[sid] in lists:
                lists[split_of[sid]].extend(paths)
            defect_rows.extend(rows)
            done += n
            if progress:
                progress(done, total)

    (partial / "validation_list.txt").write_text("".join(p + "\n" for p in sorted(lists["validation"])))
    (partial / "testing_list.txt").write_text("".join(p + "\n" for p in sorted(lists["test"])))
    tmp_csv = out_dir / f".{DEFECTS_CSV}.partial-{os.getpid()}"
    with open(tmp_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(DEFECT_COLUMNS)
        writer.writerows(sorted(defect_rows))
    if final.exists():
        shutil.rmtree(final)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    os.replace(partial, final)
    os.replace(tmp_csv, csv_path)
    counts = {k: 0 for k in DEFECTS}
    for row in defect_rows:
        counts[row[1]] += 1
    report = SynthReport(
        out_dir=out_dir, dataset_dir=final, defects_csv=csv_path, background_dir=final / "_background_noise_",
        n_clips=done, n_speakers=len(people), words=words, defect_counts=counts, split_clips=split_clips,
        split_speakers={s: sum(1 for p in people if p.split == s) for s in split_clips},
        seconds=time.perf_counter() - t0, background_files=background,
    )
    manifest = {"params": params, "n_clips": done, "defect_counts": counts, "split_clips": split_clips,
                "split_speakers": report.split_speakers,
                "background_files": [str(p.relative_to(final)) for p in background]}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    log.info("synthesised %d clips from %d speakers in %.1f s", done, len(people), report.seconds)
    return report


__all__ = ["CLIP", "DEFECTS", "SR", "WORDS", "SynthReport", "make_speaker_ids", "synthesize", "which_set"]
