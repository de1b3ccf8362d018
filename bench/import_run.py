"""``earmark import-run`` and ``export-run`` at Speech Commands size, into SQLite and PostgreSQL.

    .venv/bin/python bench/import_run.py [--rows 105829] [--classes 35] [--dim 128] [--pg URL] [--no-pg]

Builds a data set of ``--rows`` clips in a fresh store (tests.factories.make_dataset, no audio),
writes a run file for it (softmaxed random logits, post-ReLU-like 128-d embeddings, in a shuffled
order), then times ``import_run`` end to end (read with every check, match, loss, metrics, the one
write transaction) and ``export_run`` (read back, checks, Parquet), and checks that the exported
file holds the same bits. PostgreSQL runs in a throw-away schema of ``--pg`` (default: the test
database). Prints a Markdown table with the load average before each step.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_URL = os.environ.get("EARMARK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def bench_store(url: str, data_dir: Path, args, rng) -> list[tuple[str, float, float, str]]:
    """Fill a store at ``url``, then time one import and one export; rows of (step, wall, cpu, load)."""
    from app.config import Settings
    from app.pipeline.import_run import export_run, import_run
    from app.run_files import from_arrays, read_parquet, write_parquet
    from app.store.clips import load_clips
    from app.store.db import open_store
    from tests.factories import make_dataset

    data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(Settings(data_dir=data_dir, database_url=url))
    words = [f"word{i:02d}" for i in range(args.classes)]
    with store.session() as s:
        ds, _ = make_dataset(s, data_dir / "audio", n_clips=args.rows, labels=words, write_audio=False, name="bench")
        s.commit()
        clips = load_clips(s, ds.id)
    n, order = len(clips.ids), rng.permutation(len(clips.ids))
    run = from_arrays(np.asarray(clips.paths, dtype=object)[order], classes=sorted(words),
                      logits=(rng.normal(size=(n, args.classes)) * 3).astype(np.float32),
                      embeddings=np.maximum(rng.normal(size=(n, args.dim)), 0).astype(np.float32), model="bench")
    src = data_dir / "in.parquet"
    write_parquet(src, run)
    out = []

    def timed(name, fn):
        load = f"{os.getloadavg()[0]:.1f}"
        w, c = time.perf_counter(), time.process_time()
        res = fn()
        out.append((name, time.perf_counter() - w, time.process_time() - c, load))
        return res

    summary = timed("import-run (read, check, write)", lambda: import_run(store, src, "bench", "imported"))
    dst = data_dir / "out.parquet"
    timed("export-run", lambda: export_run(store, summary.run_id, dst))
    back = read_parquet(dst)
    pos = {p: i for i, p in enumerate(back.keys.tolist())}
    rows = np.array([pos[p] for p in run.keys.tolist()])
    assert back.probs[rows].tobytes() == run.probs.tobytes(), "export changed the probabilities"
    assert back.embeddings[rows].tobytes() == run.embeddings.tobytes(), "export changed the embeddings"
    print(f"  {url.split(':')[0]}: import phases {summary.seconds}", file=sys.stderr)
    store.engine.dispose()
    return out


def main() -> None:
    """Print one Markdown table row per database and step."""
    from sqlalchemy import text

    from app.store.db import make_engine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=105_829, help="clips (default 105829, Speech Commands v0.02)")
    ap.add_argument("--classes", type=int, default=35, help="classes (default 35)")
    ap.add_argument("--dim", type=int, default=128, help="embedding dimensions (default 128)")
    ap.add_argument("--pg", default=PG_URL, help="PostgreSQL URL (a schema is made and dropped in it)")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"# {platform.node()} · {os.cpu_count()} cores · {args.rows:,} rows × ({args.classes} probs + "
          f"{args.dim}-d embedding)")
    print("| store | step | wall s | CPU s | load avg before |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        results = [("SQLite", r) for r in bench_store(f"sqlite:///{tmp}/earmark.db", Path(tmp) / "s", args, rng)]
        if not args.no_pg:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            admin = make_engine(args.pg)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                url = f"{args.pg}?options=-csearch_path%3D{schema}"
                results += [("PostgreSQL", r) for r in bench_store(url, Path(tmp) / "p", args, rng)]
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    for db, (name, wall, cpu, load) in results:
        print(f"| {db} | {name} | {wall:.2f} | {cpu:.2f} | {load} |")


if __name__ == "__main__":
    main()
