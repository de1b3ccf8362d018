"""Flag import parsing: time ``parse_flags_file`` on N flags as CSV and as JSON (the files export writes).

    .venv/bin/python bench/flag_import.py --flags 100000 [--repeat 3]

Builds the records in memory, renders them with ``render_csv`` / ``render_json`` (what
``earmark export-flags`` writes), and reports the best of ``--repeat`` parses for each format,
with the file size. Only the parse is timed: matching paths against a store is measured by the
import tests, not here.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_records(n: int) -> list[dict]:
    """``n`` export records shaped like a real export: Speech Commands paths, a note on every third."""
    reasons = ("cutoff", "mislabeled", "noise_only", "multiple_words", "other")
    return [
        {"dataset": "demo", "path": f"word{i % 35}/{i:08x}_nohash_{i % 5}.wav", "label": f"word{i % 35}",
         "reason": reasons[i % len(reasons)], "corrected_label": f"word{(i + 1) % 35}" if i % 5 == 1 else "",
         "note": "checked twice, the word is cut at the end" if i % 3 == 0 else "", "author": "bench",
         "time": "2026-12-01T14:00:00Z"}
        for i in range(n)
    ]


def time_parse(text: str, fmt: str, repeat: int) -> float:
    """Best wall time of ``repeat`` parses, in seconds."""
    from app.pipeline.flag_files import parse_flags_file

    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows, problems = parse_flags_file(text, fmt)
        best = min(best, time.perf_counter() - t0)
        assert not problems and rows, problems[:3]
    return best


def main() -> None:
    """Parse N flags in each format and print a Markdown table row per format."""
    from app.pipeline.flag_files import render_csv, render_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flags", type=int, default=100_000, help="number of flags (default 100000)")
    ap.add_argument("--repeat", type=int, default=3, help="parses per format; the best is reported (default 3)")
    args = ap.parse_args()
    records = make_records(args.flags)
    print(f"# {platform.node()} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f} · {args.flags:,} flags")
    print("| format | file MB | parse s | flags/s |")
    print("|---|---:|---:|---:|")
    for fmt, text in (("csv", render_csv(records)), ("json", render_json(records))):
        secs = time_parse(text, fmt, args.repeat)
        print(f"| {fmt} | {len(text.encode()) / 1e6:.1f} | {secs:.2f} | {args.flags / secs:,.0f} |")


if __name__ == "__main__":
    main()
