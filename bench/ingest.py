"""Ingest speed: clips/s of ``earmark ingest`` into SQLite and PostgreSQL, as a markdown table.

Builds (once, cached) a synthetic Speech-Commands-v0.02-style folder of N one-second clips:
35 word folders, 8-hex speaker ids, split lists from the hashing rule, ``_background_noise_``.
Each clip is a short tone burst plus its own noise, so every clip's audio is unique.

    .venv/bin/python bench/ingest.py --n 20000
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.speech_commands import which_set  # noqa: E402

V2_SIZE = 105_829
WORDS = ("backward bed bird cat dog down eight five follow forward four go happy house learn left marvin nine no "
         "off on one right seven sheila six stop three tree two up visual wow yes zero").split()
SR = 16000


def _write_chunk(args: tuple[str, list[tuple[int, str]]]) -> None:
    root, items = args
    for seed, rel in items:
        rng = np.random.default_rng(seed)
        n = SR if seed % 7 else int(SR * rng.uniform(0.7, 1.0))  # some shorter clips, as in the real set
        t = np.arange(n, dtype=np.float32) / SR
        start, stop = rng.uniform(0.05, 0.4), rng.uniform(0.55, 1.0)
        burst = ((t >= start) & (t < stop)) * np.sin(2 * np.pi * rng.uniform(150, 900) * t)
        x = 0.3 * burst + rng.normal(0, 0.01, n)
        buf = io.BytesIO()  # encode in memory: libsndfile's many small file writes are slow
        sf.write(buf, x.astype(np.float32), SR, subtype="PCM_16", format="WAV")
        with open(os.path.join(root, rel), "wb") as fh:
            fh.write(buf.getvalue())


def build_dataset(n: int, cache_dir: Path) -> Path:
    """The synthetic folder for ``n`` clips (built once; a marker file says it is complete)."""
    root = cache_dir / f"earmark-bench-ingest-{n}"
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for w in WORDS:
        (root / w).mkdir(parents=True)
    (root / "_background_noise_").mkdir()
    rng = np.random.default_rng(0)
    n_speakers = max(1, n // 40)
    speakers = [f"{v:08x}" for v in rng.choice(2**32, size=n_speakers, replace=False)]
    items, seen, val, test = [], set(), [], []
    for i in range(n):
        spk, word = speakers[i % n_speakers], WORDS[(i // n_speakers) % len(WORDS)]
        k = 0
        while (word, spk, k) in seen:
            k += 1
        seen.add((word, spk, k))
        name = f"{spk}_nohash_{k}.wav"
        rel = f"{word}/{name}"
        items.append((i, rel))
        split = which_set(name)
        (val if split == "validation" else test if split == "test" else []).append(rel)
    (root / "validation_list.txt").write_text("\n".join(sorted(val)) + "\n")
    (root / "testing_list.txt").write_text("\n".join(sorted(test)) + "\n")
    for j in range(2):
        noise = np.random.default_rng(10_000 + j).normal(0, 0.1, SR * 10).astype(np.float32)
        sf.write(str(root / "_background_noise_" / f"noise_{j}.wav"), noise, SR, subtype="PCM_16")
    chunks = [(str(root), items[i:i + 2000]) for i in range(0, n, 2000)]
    with mp.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_chunk, chunks)
    (root / ".complete").write_text(str(n))
    return root


def _cpu_seconds() -> float:
    """CPU time of this process plus its finished children (the decoding pool)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _run(settings, root: Path, workers: int | None) -> tuple[int, int, float, float, float, float]:
    from app.pipeline.ingest import ingest

    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        marks.setdefault(stage, time.perf_counter())  # when each stage started

    from app.store.db import open_store

    store = open_store(settings)  # already migrated: this only opens the engine
    cpu, t = _cpu_seconds(), time.perf_counter()
    rep = ingest(store, root, name="bench", workers=workers, progress=progress)
    end = time.perf_counter()
    store.engine.dispose()
    decode_s = marks.get("writing", end) - marks.get("decoding", t)
    write_s = end - marks.get("writing", end)
    return rep.n_clips, rep.n_rejects, end - t, _cpu_seconds() - cpu, decode_s, write_s


def bench_sqlite(root: Path, workers: int | None) -> tuple[int, int, float, float, float, float]:
    from app.config import Settings

    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'earmark.db'}"
        from app.store.db import open_store
        open_store(Settings(data_dir=Path(tmp), database_url=url)).engine.dispose()  # migrate outside the timing
        return _run(Settings(data_dir=Path(tmp), database_url=url), root, workers)


def bench_postgres(root: Path, base_url: str, workers: int | None) -> tuple[int, int, float, float, float, float]:
    from sqlalchemy import text

    from app.config import Settings
    from app.store.db import make_engine, open_store

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{base_url}?options=-csearch_path%3D{schema}"
        with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
            open_store(Settings(data_dir=Path(tmp), database_url=url)).engine.dispose()
            return _run(Settings(data_dir=Path(tmp), database_url=url), root, workers)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=V2_SIZE, help=f"clips in the synthetic data set (default {V2_SIZE:,}, "
                   "the v0.02 size)")
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()),
                   help="where the synthetic data set is built and kept (default: the system temp folder)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (default 0: one per core)")
    p.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                   help="PostgreSQL to measure (default postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    p.add_argument("--skip-pg", action="store_true", help="measure SQLite only (default: both)")
    args = p.parse_args(argv)

    t = time.perf_counter()
    root = build_dataset(args.n, args.cache_dir)
    print(f"data set: {root} ({args.n:,} clips, built/cached in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
    workers = args.workers or None
    rows = [("SQLite", *bench_sqlite(root, workers))]
    if not args.skip_pg:
        try:
            rows.append(("PostgreSQL", *bench_postgres(root, args.pg_url, workers)))
        except Exception as exc:  # noqa: BLE001 - report, do not hide the SQLite figure
            print(f"PostgreSQL skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
    load = os.getloadavg()[0]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load:.1f} at the end\n")
    print("| store | clips | rejects | wall s | clips/s | decode s | write + commit s | CPU s | clips per CPU-s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for store, n_clips, n_rej, secs, cpu, dec, wr in rows:
        n = n_clips + n_rej
        print(f"| {store} | {n_clips:,} | {n_rej:,} | {secs:.1f} | {n / secs:,.0f} | {dec:.1f} | {wr:.1f} | "
              f"{cpu:.1f} | {n / cpu:,.0f} |")
    print("\nclips per CPU-s counts this process and its decoding pool (not the PostgreSQL server) and does "
          "not depend on other load on the machine; the decode phase uses every core.")


if __name__ == "__main__":
    main()
