"""Demo-data synthesis speed: clips/s of ``earmark synth`` (``ml.synth.synthesize``), as a markdown table.

For each requested size it picks the speaker count (35 words x 3 takes = 105 clips per speaker),
synthesises into a temporary folder and reports wall time, clips/s and peak memory.

    .venv/bin/python bench/synth.py --clips 1000 4200 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.synth import DEFAULT_REPEATS, WORDS, synthesize  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[1000, 4200],
                        help="Data set sizes to time, in clips (rounded up to whole speakers). Default: 1000 4200.")
    parser.add_argument("--workers", type=int, default=0, help="Worker processes. Default 0: one per CPU core.")
    parser.add_argument("--seed", type=int, default=7, help="Seed. Default 7.")
    args = parser.parse_args()

    per_speaker = len(WORDS) * DEFAULT_REPEATS
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; workers: {args.workers or os.cpu_count()}\n")
    print("| clips | speakers | wall s | clips/s | cut-off | mislabeled | multiple | noise-only |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.clips:
        speakers = max(1, -(-n // per_speaker))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rep = synthesize(Path(tmp) / "demo", speakers=speakers, seed=args.seed, workers=args.workers or None)
            wall = time.perf_counter() - t0
        c = rep.defect_counts
        print(f"| {rep.n_clips:,} | {speakers} | {wall:.1f} | {rep.n_clips / wall:,.0f} | {c['cutoff']} | "
              f"{c['mislabeled']} | {c['multiple_words']} | {c['noise_only']} |", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of the driving process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
