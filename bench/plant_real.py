"""Signal-level finders on real speech: plant defects into real clips (``ml.plant``) and measure them.

For each data set and seed it plants defects into a copy of the set, measures every clip with
``ml.analysis.signal`` and ``ml.analysis.quality``, and prints precision and recall per finding as
markdown. Precision is planted-only: a flagged clip counts as right only when the truth holds the
finding's kind (clean real clips are the negatives; natural defects count against the finder).
No model is involved: the cut-off figure is the signal evidence alone (``cutoff_scores`` without
a model, at ``CUTOFF_THRESHOLD``).

    .venv/bin/python bench/plant_real.py --seeds 0 1
    .venv/bin/python bench/plant_real.py --sets sc --seeds 0 --show cutoff   # list the misses and false alarms
    .venv/bin/python bench/plant_real.py --sets arabic --seeds 0 --keep /tmp/planted  # keep the planted set
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.analysis.cutoff import CUTOFF_THRESHOLD, cutoff_scores  # noqa: E402
from ml.analysis.noise import noise_only_flags  # noqa: E402
from ml.analysis.quality import FINDINGS, flags_of, quality_stats  # noqa: E402
from ml.analysis.signal import signal_stats  # noqa: E402
from ml.audio import read_wav  # noqa: E402
from ml.plant import plant, read_clips  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"sc": DATA / "speech-commands-v0.01-sample", "arabic": DATA / "arabic-speech-commands"}


def measure(root: Path) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Paths, cut-off inputs and quality flags of every clip of a planted set; seconds per clip."""
    _, clips = read_clips(root)
    t0 = time.perf_counter()
    sig, qual = [], []
    for c in clips:
        x, sr = read_wav(root / c.rel)
        sig.append(signal_stats(x, sr))
        qual.append(quality_stats(x, sr))
    per_clip = (time.perf_counter() - t0) / max(1, len(clips))
    cols = {k: np.array([getattr(s, k) for s in sig]) for k in
            ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "duration_s", "cutoff_signal", "peak", "rms_dbfs")}
    cols["dc"] = np.array([q.dc for q in qual])
    return [c.rel for c in clips], cols, flags_of(qual), per_clip


def pr(flag: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> tuple[float, float, int, int]:
    """Planted-only precision over positives and negatives, recall, flagged, positives."""
    scope = pos | neg
    hit = int((flag & pos).sum())
    flagged = int((flag & scope).sum())
    return hit / max(1, flagged), hit / max(1, int(pos.sum())), flagged, int(pos.sum())


def run(name: str, seed: int, show: str | None, keep: Path | None = None) -> list[tuple]:
    with tempfile.TemporaryDirectory() as tmp:
        rep = plant(SETS[name], keep / f"{name}-seed{seed}" if keep else tmp, seed=seed)
        with open(rep.defects_csv, newline="") as f:
            truth = {r["path"]: r for r in csv.DictReader(f)}
        paths, cols, qflags, per_clip = measure(rep.dataset_dir)
    kind = np.array([truth[p]["defect"] if p in truth else "clean" for p in paths])
    clean = kind == "clean"
    rows = []
    for k in FINDINGS:
        rows.append((name, seed, k, *pr(qflags[k], kind == k, clean)))
    # noise only: negatives the clean, mislabeled and two-word clips (clips that hold a word, no signal defect)
    noise = noise_only_flags(cols["lead_silence_ms"], cols["trail_silence_ms"], cols["peak"], cols["rms_dbfs"], cols["dc"])
    rows.append((name, seed, "noise_only", *pr(noise, kind == "noise_only", np.isin(kind, ("clean", "mislabeled",
                                                                                               "multiple_words")))))
    ev = cutoff_scores(cols["end_energy_db"], cols["trail_silence_ms"], cols["lead_silence_ms"],
                       cols["duration_s"], cols["cutoff_signal"])
    flag = ev.score >= CUTOFF_THRESHOLD
    rows.append((name, seed, "cutoff (end)", *pr(flag, kind == "cutoff", clean | (kind == "noise_only"))))
    rows.append((name, seed, "cutoff (start)", *pr(flag, kind == "start_cutoff", clean | (kind == "noise_only"))))
    details = [json.loads(truth[p]["detail"]) if p in truth else {} for p in paths]
    for at in ("loud", "mid", "soft"):
        pos = np.array([k == "cutoff" and d.get("cut_at") == at for k, d in zip(kind, details, strict=True)])
        rows.append((name, seed, f"  cut at {at} part", float("nan"), *pr(flag, pos, clean)[1:]))
    for shape in ("short_file", "late_start"):
        pos = np.array([k == "cutoff" and d.get("shape") == shape for k, d in zip(kind, details, strict=True)])
        rows.append((name, seed, f"  {shape}", float("nan"), *pr(flag, pos, clean)[1:]))
    fa = {k: int((flag & (kind == k)).sum()) for k in ("clean", "noise_only", "multiple_words", "silent")}
    print(f"{name} seed {seed}: {len(paths)} clips, {per_clip * 1000:.2f} ms/clip; cut-off flags on "
          + ", ".join(f"{k} {v}" for k, v in fa.items()), file=sys.stderr)
    if show:
        target = flag if show == "cutoff" else noise if show == "noise_only" else qflags[show]
        want = kind == show
        for i in np.flatnonzero(target != want):
            if kind[i] in (show, "clean"):
                print(f"  {'MISS' if want[i] else 'FA  '} {paths[i]} {truth.get(paths[i], {}).get('detail', '')} "
                      f"end {cols['end_energy_db'][i]:.1f} trail {cols['trail_silence_ms'][i]:.0f} "
                      f"lead {cols['lead_silence_ms'][i]:.0f} sig {cols['cutoff_signal'][i]} "
                      f"score {ev.score[i]:.2f}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS), help="Default: both.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="Default: 0 1.")
    parser.add_argument("--show", choices=[*FINDINGS, "cutoff", "noise_only"], help="List the misses and false alarms of one finder.")
    parser.add_argument("--keep", type=Path, help="Write the planted sets to KEEP/<set>-seed<n>/ (dataset/ and "
                        "defects.csv) and keep them. Default: temporary folders.")
    args = parser.parse_args()
    missing = [str(SETS[s]) for s in args.sets if not SETS[s].is_dir()]
    if missing:
        sys.exit(f"real data not found: {', '.join(missing)} (see ../shared/data/README.md)")
    print("| set | seed | finding | precision (planted) | recall | found | flagged | planted |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in args.sets:
        for seed in args.seeds:
            for r in run(name, seed, args.show, args.keep):
                p = "" if np.isnan(r[3]) else f"{r[3]:.2f}"
                found = round(r[4] * r[6])  # recall x planted
                print(f"| {r[0]} | {r[1]} | {r[2]} | {p} | {r[4]:.2f} | {found} | {r[5]} | {r[6]} |")


if __name__ == "__main__":
    main()
