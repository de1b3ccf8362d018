"""Plant defects at known places into a real data set, for measuring earmark's finders on real speech.

``plant(src, out_dir, seed)`` reads a Speech Commands folder (``<word>/<file>.wav`` plus the split
lists) or the Arabic Speech Commands layout (``dataset/<word>/<file>.flac`` plus ``train/val/test.csv``),
copies it to ``out_dir/dataset`` in the same layout, replaces some clips by defective versions of
themselves, and writes the truth to ``out_dir/defects.csv`` with the columns of ``earmark synth``
(``ml.synth.DEFECT_COLUMNS``); ``detail`` is a JSON object of the planting parameters. Clips not in the
truth are the real clips unchanged. The same seed gives the same files.

Kinds: ``cutoff`` (shape ``short_file``: the file stops mid-word; ``late_start``: a full-length clip
whose word starts late and is cut by the clip's end; 10-35 % of the word kept, cut at a loud or a
soft part of it), ``start_cutoff``, ``mislabeled``, ``multiple_words``, ``noise_only`` and the
audio-quality kinds ``clipped``, ``too_quiet``, ``dc_offset``, ``silent`` and ``upsampled``.
The word is found on the real clip with an energy onset/offset (``word_span``).
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ml.audio import read_wav, resample
from ml.synth import DEFECT_COLUMNS, DEFECTS_CSV

QUALITY_KINDS = ("clipped", "too_quiet", "dc_offset", "silent", "upsampled")
KINDS = ("cutoff", "start_cutoff", "mislabeled", "multiple_words", "noise_only", *QUALITY_KINDS)
# Share of the clips replaced by each kind. About a quarter of the set is planted in all, so each
# kind has enough examples for a precision and recall while most clips stay real negatives.
DEFAULT_RATES = {"cutoff": 0.08, "start_cutoff": 0.02, "mislabeled": 0.03, "multiple_words": 0.02,
                 "noise_only": 0.02, "clipped": 0.02, "too_quiet": 0.02, "dc_offset": 0.02, "silent": 0.02,
                 "upsampled": 0.02}
KEEP_MIN, KEEP_MAX = 0.10, 0.35  # share of the word a cut-off keeps
LOUD_DB = -10.0  # a cut "at a loud part": the last 50 ms within this of the word's loudest 50 ms ...
SOFT_DB = -20.0  # ... "at a soft part": more than this below (the misses of issue 14)
EDGE_MS = 30.0  # a clip is a usable source when its word starts and ends at least this far from the edges
ATTRIBUTION = "ATTRIBUTION.md"
_WIN, _HOP = 0.05, 0.01  # word-span analysis: 50 ms windows every 10 ms


@dataclass
class Clip:
    """One source clip: its path relative to the data set root, class and split."""

    rel: str
    label: str
    split: str


@dataclass
class PlantReport:
    """What ``plant`` wrote."""

    dataset_dir: Path
    defects_csv: Path
    layout: str  # "speech_commands" | "arabic"
    n_clips: int
    counts: dict[str, int]


def _db50(x: np.ndarray, sr: int) -> np.ndarray:
    """dB RMS of 50 ms windows every 10 ms, shape (n_windows,); window i starts at i * 10 ms."""
    win, hop = int(_WIN * sr), int(_HOP * sr)
    if x.size < win:
        return np.array([10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12)])
    c = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    s = np.arange(0, x.size - win + 1, hop)
    return 10 * np.log10((c[s + win] - c[s]) / win + 1e-12)


def word_span(x: np.ndarray, sr: int) -> tuple[int, int] | None:
    """(onset, offset) sample of the word in a real clip, or None when no word stands out.

    Energy VAD: 50 ms windows above both the clip's noise floor (10th percentile) + 12 dB and its
    loudest window - 35 dB; gaps under 150 ms are bridged and the loudest region is the word.
    """
    db = _db50(x, sr)
    floor, top = float(np.percentile(db, 10)), float(db.max())
    if top - floor < 15.0 or top < -65.0:
        return None
    on = db >= max(floor + 12.0, top - 35.0)
    idx = np.flatnonzero(on)
    groups, start = [], idx[0]
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if b - a > 15:  # 150 ms of quiet ends a region
            groups.append((start, a))
            start = b
    groups.append((start, idx[-1]))
    best = max(groups, key=lambda g: db[g[0]: g[1] + 1].max())
    hop, win = int(_HOP * sr), int(_WIN * sr)
    return int(best[0] * hop), int(min(x.size, best[1] * hop + win))


def _quiet(x: np.ndarray, span: tuple[int, int], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of the clip's own background (outside the word), tiled from random offsets."""
    bg = np.concatenate([x[: span[0]], x[span[1]:]])
    if bg.size < 160:
        return np.zeros(n, np.float32)
    reps = -(-n // bg.size) + 1
    k = int(rng.integers(bg.size))
    return np.tile(np.roll(bg, -k), reps)[:n].astype(np.float32)


def _cut_level(word: np.ndarray, c: int, sr: int) -> float:
    """dB of the 50 ms before sample ``c`` of the word, relative to the word's loudest 50 ms."""
    win = int(_WIN * sr)
    tail = word[max(0, c - win): c]
    return float(10 * np.log10(np.mean(np.square(tail, dtype=np.float64)) + 1e-12) - _db50(word, sr).max())


def _cut_point(word: np.ndarray, sr: int, rng: np.random.Generator, want: str) -> tuple[int, float]:
    """A cut keeping 10-35 % of the word, at a loud or soft part as asked when the word has one."""
    lo, hi = int(KEEP_MIN * word.size), max(int(KEEP_MIN * word.size) + 1, int(KEEP_MAX * word.size))
    cand = np.unique(rng.integers(lo, hi, 24))
    lv = np.array([_cut_level(word, int(c), sr) for c in cand])
    ok = lv >= LOUD_DB if want == "loud" else lv < SOFT_DB
    i = int(rng.choice(np.flatnonzero(ok))) if ok.any() else int(np.argmax(lv) if want == "loud" else np.argmin(lv))
    return int(cand[i]), float(lv[i])


def plant_cutoff(x: np.ndarray, sr: int, span: tuple[int, int], rng: np.random.Generator, n_out: int,
                 want: str | None = None, shape: str | None = None) -> tuple[np.ndarray, dict]:
    """The clip with its word (``span``, from ``word_span``) cut after 10-35 % of it; and the parameters.

    ``want``: cut at a "loud" or "soft" part (drawn when None); ``shape``: "short_file" (the file stops
    there) or "late_start" (``n_out`` samples of the clip's own background, then the word's start).
    """
    on, off = span
    word = x[on:off]
    want = want or ("loud" if rng.random() < 0.5 else "soft")
    c, level = _cut_point(word, sr, rng, want)
    shape = shape or ("short_file" if rng.random() < 0.5 else "late_start")
    if shape == "short_file":
        y = x[: on + c]
    else:
        y = np.concatenate([_quiet(x, span, n_out - c, rng), word[:c]])
    at = "loud" if level >= LOUD_DB else "soft" if level < SOFT_DB else "mid"
    return y, {"shape": shape, "keep": round(c / word.size, 3), "cut_at": at, "end_db": round(level, 1),
               "word_s": round(word.size / sr, 3), "length_s": round(y.size / sr, 3)}


def _start_cutoff(x, sr, span, rng, n_out):
    on, off = span
    drop = float(rng.uniform(0.2, 0.5))
    c = on + int(drop * (off - on))
    y = np.concatenate([x[c:], _quiet(x, span, max(0, n_out - (x.size - c)), rng)])[:n_out]
    return y, {"dropped": round(drop, 3), "level_at_start_db": round(_cut_level(x[c:], min(x.size - c, int(_WIN * sr)), sr), 1)}


def _two_words(x, sr, span, other, rng, n_out):
    y2, span2 = other
    a, b = x[span[0]: span[1]], y2[span2[0]: span2[1]]
    gap = int(rng.uniform(0.03, 0.12) * sr)
    room = n_out - a.size - b.size - gap
    if room < 2 * int(EDGE_MS / 1000 * sr):
        return None, {}
    lead = int(rng.integers(room // 4, room - room // 4 + 1))
    bg = _quiet(x, span, n_out, rng)
    gain = np.sqrt(np.mean(a.astype(np.float64) ** 2) / (np.mean(b.astype(np.float64) ** 2) + 1e-12))
    gain = float(min(gain, 0.95 / (np.abs(b).max() + 1e-9)))  # level with the first word, never clipped
    bg[lead: lead + a.size] = a
    bg[lead + a.size + gap: lead + a.size + gap + b.size] = b * gain
    return bg, {"gap_s": round(gap / sr, 3), "second_gain_db": round(20 * np.log10(gain + 1e-12), 1)}


def plant_quality(kind: str, x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The clip with one audio-quality defect of ``QUALITY_KINDS``; and the parameters."""
    if kind not in QUALITY_KINDS:
        raise ValueError(f"unknown audio-quality defect {kind!r}; one of {', '.join(QUALITY_KINDS)}")
    if kind == "clipped":
        frac, ceiling = float(rng.uniform(0.005, 0.05)), float(rng.choice([1.0, rng.uniform(0.3, 0.9)]))
        g = ceiling / max(float(np.quantile(np.abs(x), 1 - frac)), 1e-4)
        return np.clip(x * g, -ceiling, ceiling), {"clipped_share": round(frac, 4), "ceiling": round(ceiling, 3),
                                                   "gain_db": round(20 * np.log10(g), 1)}
    if kind == "too_quiet":
        peak_db = float(rng.uniform(-50.0, -38.0))
        return x * (10 ** (peak_db / 20) / (np.abs(x).max() + 1e-9)), {"peak_dbfs": round(peak_db, 1)}
    if kind == "dc_offset":
        dc = float(rng.uniform(0.03, 0.2)) * (1 if rng.random() < 0.5 else -1)
        scale = float(min(1.0, (0.99 - abs(dc)) / (np.abs(x).max() + 1e-9)))  # the offset alone, no clipping with it
        return x * scale + dc, {"dc": round(dc, 3), "scale": round(scale, 3)}
    if kind == "silent":
        if rng.random() < 0.5:
            return np.zeros_like(x), {"how": "digital zero"}
        peak_db = float(rng.uniform(-80.0, -68.0))
        return x * (10 ** (peak_db / 20) / (np.abs(x).max() + 1e-9)), {"how": "scaled", "peak_dbfs": round(peak_db, 1)}
    y = resample(resample(x, sr, 8000), 8000, sr)[: x.size]
    return y, {"from_rate": 8000}


def _layout(src: Path) -> str:
    if (src / "dataset").is_dir() and (src / "train.csv").is_file():
        return "arabic"
    if any(p.is_dir() and any(p.glob("*.wav")) for p in src.iterdir()):
        return "speech_commands"
    raise ValueError(f"{src} is neither a Speech Commands folder nor the Arabic Speech Commands layout")


def read_clips(src: Path) -> tuple[str, list[Clip]]:
    """The layout name and every clip of a source data set, sorted by path."""
    layout = _layout(src)
    clips: list[Clip] = []
    if layout == "arabic":
        for split, name in (("train", "train.csv"), ("validation", "val.csv"), ("test", "test.csv")):
            with open(src / name, newline="", encoding="utf-8") as f:
                clips += [Clip(r["file"], r["class"], split) for r in csv.DictReader(f)]
    else:
        lists = {s: set((src / f).read_text().split("\n")) if (src / f).is_file() else set()
                 for s, f in (("validation", "validation_list.txt"), ("test", "testing_list.txt"))}
        for p in sorted(src.glob("*/*.wav")):
            if p.parent.name.startswith("_"):
                continue
            rel = f"{p.parent.name}/{p.name}"
            split = "validation" if rel in lists["validation"] else "test" if rel in lists["test"] else "train"
            clips.append(Clip(rel, p.parent.name, split))
    return layout, sorted(clips, key=lambda c: c.rel)


def _noise_sources(src: Path) -> list[np.ndarray]:
    files = sorted([*src.glob("background_noise/*.flac"), *src.glob("_background_noise_/*.wav")])
    return [read_wav(p)[0] for p in files]


def _noise_only(x, sr, span, rng, n_out, noise):
    level = float(rng.uniform(-45.0, -25.0))
    if noise:
        k = int(rng.integers(len(noise)))
        start = int(rng.integers(0, noise[k].size - n_out))
        y, how = noise[k][start: start + n_out].astype(np.float64), f"background_noise #{k}"
    else:
        y, how = _quiet(x, span, n_out, rng).astype(np.float64), "the clip's own quiet parts"
    y = y * 10 ** (level / 20) / (np.sqrt(np.mean(y**2)) + 1e-9)
    return np.clip(y, -1, 1), {"from": how, "rms_dbfs": round(level, 1)}


def plant(src: str | Path, out_dir: str | Path, seed: int = 0, rates: dict[str, float] | None = None) -> PlantReport:
    """Copy the data set at ``src`` to ``out_dir/dataset`` with defects planted; the truth to ``out_dir/defects.csv``."""
    src, out_dir = Path(src), Path(out_dir)
    rates = {**DEFAULT_RATES, **(rates or {})}
    layout, clips = read_clips(src)
    dst = out_dir / "dataset"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    rng = np.random.default_rng([seed, 14])
    order = rng.permutation(len(clips))
    quota = {k: int(round(rates.get(k, 0.0) * len(clips))) for k in KINDS}
    counts = dict.fromkeys(KINDS, 0)
    labels = sorted({c.label for c in clips})
    noise = _noise_sources(src)
    rows, out_clips, used = [], [], set()
    pending = [k for k in KINDS for _ in range(quota[k])]
    rng.shuffle(pending)
    for i in order:
        c = clips[i]
        if c.rel in used:
            continue
        x, sr = read_wav(src / c.rel)
        span = word_span(x, sr)
        edge = int(EDGE_MS / 1000 * sr)
        ok = span is not None and span[0] >= edge and span[1] <= x.size - edge and span[1] - span[0] >= 0.15 * sr
        kind = pending[0] if pending and ok else None
        y, detail, rel, label, true = None, {}, c.rel, c.label, c.label
        if kind == "cutoff":
            y, detail = plant_cutoff(x, sr, span, rng, x.size)
        elif kind == "start_cutoff":
            y, detail = _start_cutoff(x, sr, span, rng, x.size)
        elif kind == "mislabeled":
            label = str(rng.choice([w for w in labels if w != c.label]))
            rel = _refile(c.rel, c.label, label)
        elif kind == "multiple_words":
            for j in rng.permutation(len(clips))[:40]:  # a second word short enough to fit beside this one
                if clips[j].label == c.label or clips[j].rel in used:
                    continue
                x2 = read_wav(src / clips[j].rel)[0]
                s2 = word_span(x2, sr)
                if s2 is not None:
                    y, detail = _two_words(x, sr, span, (x2, s2), rng, x.size)
                if y is not None:
                    used.add(clips[j].rel)
                    true = f"{c.label}+{clips[j].label}"
                    detail["second"] = clips[j].rel
                    break
        elif kind == "noise_only":
            y, detail = _noise_only(x, sr, span, rng, x.size, noise)
            true = ""
        elif kind in QUALITY_KINDS:
            y, detail = plant_quality(kind, x, sr, rng)
        planted = kind is not None and (kind == "mislabeled" or y is not None)
        if kind is not None and not planted:  # this clip cannot take it: try the kind on a later clip
            pending.append(pending.pop(0))
        used.add(c.rel)
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if planted and y is not None:
            sf.write(str(target), np.clip(np.asarray(y, np.float64), -1.0, 32767 / 32768), sr, subtype="PCM_16")
        else:
            shutil.copyfile(src / c.rel, target)
        if planted:
            pending.pop(0)
            counts[kind] += 1
            detail["source"] = c.rel
            rows.append((rel, kind, true, label, json.dumps(detail, sort_keys=True)))
        out_clips.append(Clip(rel, label, c.split))
    _write_layout(src, dst, layout, out_clips)
    csv_path = out_dir / DEFECTS_CSV
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(DEFECT_COLUMNS)
        w.writerows(sorted(rows))
    return PlantReport(dst, csv_path, layout, len(out_clips), counts)


def _refile(rel: str, old: str, new: str) -> str:
    """The clip's path filed under ``new``; the name says where it came from (names repeat across words)."""
    parts = rel.split("/")
    stem, dot, ext = parts[-1].rpartition(".")
    parts[-2], parts[-1] = new, f"{stem}_from_{old.replace(' ', '_')}{dot}{ext}"
    return "/".join(parts)


def _write_layout(src: Path, dst: Path, layout: str, clips: list[Clip]) -> None:
    """Split files, background noise and the licence attribution, in the source's layout."""
    if layout == "arabic":
        for split, name in (("train", "train.csv"), ("validation", "val.csv"), ("test", "test.csv")):
            with open(dst / name, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(("file", "class"))
                w.writerows((c.rel, c.label) for c in clips if c.split == split)
        if (src / "background_noise").is_dir():
            shutil.copytree(src / "background_noise", dst / "background_noise")
    else:
        for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
            (dst / name).write_text("".join(c.rel + "\n" for c in clips if c.split == split))
    for name in ("LICENSE", "README.md"):
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    (dst / ATTRIBUTION).write_text(
        f"Derived from the real recordings in {src.name}, with defects planted by earmark's ml/plant.py\n"
        "(see defects.csv next to this folder). The original clips' licence and attribution apply:\n\n"
        + (_ARABIC if layout == "arabic" else _SC) + "\n")


_SC = ('Speech Commands v0.01, CC BY 4.0. Pete Warden, "Speech Commands: A Dataset for '
       'Limited-Vocabulary Speech Recognition", 2018, Google.')
_ARABIC = ('Arabic Speech Commands, CC BY 4.0. A. Ghandoura, F. Hjabo, O. Al Dakkak, "Building and '
           'Benchmarking an Arabic Speech Commands Dataset for Small-Footprint Keyword Spotting", '
           'Engineering Applications of Artificial Intelligence, 2021.')
