"""Projection speed: ``earmark project`` at Speech Commands v0.02 size (105,829 clips), as a markdown table.

Reports the numba warm-up (UMAP's and pynndescent's JIT compile, paid once per process and never by
a page) apart from the work itself: the cosine kNN graph, the PCA + UMAP layout, and the full
``project_run`` (store read, kNN, UMAP, atomic write of Projection rows and neighbour lists) on a
synthetic SQLite store built with the test factories (embeddings clustered by class, no audio).

    .venv/bin/python bench/project.py [--clips 105829] [--dim 96] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--clips", type=int, default=105_829, help="points to project")
    ap.add_argument("--dim", type=int, default=96, help="embedding dimension (melcnn's default is 96)")
    ap.add_argument("--threads", type=int, default=2, help="numba / BLAS threads (the goal is for 2 cores)")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "earmark-bench-issues",
                    help="where the synthetic store is built (and reused: it is shared with bench/issues.py)")
    ap.add_argument("--no-store", action="store_true", help="time only the in-memory kNN + UMAP")
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from ml.analysis.neighbors import EXACT_MAX, knn_cosine
    from ml.analysis.projection import umap_2d, warm_up

    rows = []
    t0 = time.perf_counter()
    warm = warm_up(approximate_knn=args.clips > EXACT_MAX)
    rows.append(("numba warm-up (JIT, once per process)", warm))

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (35, args.dim)).astype(np.float32) * 3
    x = np.maximum(centers[rng.integers(0, 35, args.clips)] + rng.normal(0, 1, (args.clips, args.dim)), 0)
    x = x.astype(np.float32)  # ReLU-pooled like the CNN's embeddings
    t0 = time.perf_counter()
    graph = knn_cosine(x, k=14, seed=None)
    t_knn = time.perf_counter() - t0
    rows.append(("cosine kNN graph (k=14)", t_knn))
    t0 = time.perf_counter()
    umap_2d(x, knn=graph, seed=None)
    t_umap = time.perf_counter() - t0
    rows.append(("PCA + UMAP layout (reusing the graph)", t_umap))
    rows.append(("**kNN + UMAP (the goal: <= 60 s)**", t_knn + t_umap))

    if not args.no_store:
        from app.pipeline.project import project_run
        from bench.issues import build_store

        settings, run_id = build_store(args.data_dir, args.clips, args.dim)
        from app.store.db import open_store

        summary = project_run(open_store(settings), run_id, seed=None)
        rows.append(("`project_run` end to end (store read, kNN, UMAP, write)",
                     summary.neighbors_s + summary.umap_s + summary.write_s))
        rows.append(("  of which: write projections + neighbour lists", summary.write_s))

    print(f"\n### earmark project, {args.clips:,} points, dim {args.dim}, {args.threads} threads "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, load average "
          f"{os.getloadavg()[0]:.1f} at the end)\n")
    print("| step | seconds |")
    print("|---|---:|")
    for name, sec in rows:
        print(f"| {name} | {sec:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
