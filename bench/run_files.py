"""Run-file I/O: time ``write_parquet`` and ``read_parquet`` (with all its checks) at Speech Commands size.

    .venv/bin/python bench/run_files.py [--rows 105829] [--classes 35] [--dim 128] [--repeat 5]

Builds a run in memory (softmaxed random logits; post-ReLU-like embeddings, half zeros, which
compress as real ones do), writes it, reads it back (and checks the bits are the same), and
reports the best wall time and its CPU time for each, with bare ``pyarrow.parquet.read_table`` as
the floor. Then the two steps an import does next without the store: ``match_keys`` against the
data set's paths and ``map_classes`` + ``target_index``. The store write is measured by
bench/import_run.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def clock(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(wall s, CPU s) of the fastest of ``repeat`` calls."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w, time.process_time() - c))
    return best


def main() -> None:
    """Write and read one run file and print a Markdown table row per step."""
    import pyarrow.parquet as pq

    from app.run_files import from_arrays, map_classes, match_keys, read_parquet, write_parquet

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=105_829, help="clips (default 105829, Speech Commands v0.02)")
    ap.add_argument("--classes", type=int, default=35, help="classes (default 35)")
    ap.add_argument("--dim", type=int, default=128, help="embedding dimensions (default 128)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per step; the best is reported (default 5)")
    args = ap.parse_args()
    n, c, d = args.rows, args.classes, args.dim
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(c)]
    labels = np.array([words[i % c] for i in range(n)], dtype=object)
    paths = np.array([f"{labels[i]}/{i:08x}_nohash_{i % 5}.wav" for i in range(n)], dtype=object)
    run = from_arrays(paths, classes=words, logits=(rng.normal(size=(n, c)) * 3).astype(np.float32),
                      embeddings=np.maximum(rng.normal(size=(n, d)), 0).astype(np.float32), model="bench")
    print(f"# {platform.node()} · {os.cpu_count()} cores · load {os.getloadavg()[0]:.1f} · "
          f"{n:,} rows × ({c} probs + {d}-d embedding)")
    print(f"| step | wall s (best of {args.repeat}) | CPU s |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.parquet"
        rows = [("write_parquet", clock(lambda: write_parquet(path, run), args.repeat))]
        back = read_parquet(path)
        assert np.array_equal(back.probs.view(np.uint32), run.probs.view(np.uint32))
        assert np.array_equal(back.embeddings.view(np.uint32), run.embeddings.view(np.uint32))
        rows.append(("read_parquet (all checks, sha256)", clock(lambda: read_parquet(path), args.repeat)))
        rows.append(("pyarrow read_table alone", clock(lambda: pq.read_table(path), args.repeat)))
        size = path.stat().st_size
    clip_ids, shuffled = np.arange(1, n + 1), paths[rng.permutation(n)]
    rows.append(("match_keys", clock(lambda: match_keys(back, clip_ids, shuffled), args.repeat)))
    rows.append(("map_classes + target_index",
                 clock(lambda: map_classes(back, words).target_index(labels), args.repeat)))
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    print(f"\nfile: {size / 1e6:.1f} MB (snappy)")


if __name__ == "__main__":
    main()
