"""Manifest ingest speed: clips/s of ``earmark ingest DIR --manifest FILE`` for a 105,829-row CSV.

Reuses ``bench/ingest.py``'s synthetic folder (N real one-second 16 kHz WAVs, unique audio each,
built once and cached) and writes a manifest next to it: path, label, split, speaker and three
metadata columns (text, number, boolean). The ingest reads the manifest, types the metadata,
checks every file, decodes each at its native rate (``ml.audio.decode_native``), measures it and
writes clips with their metadata in one transaction, into SQLite (and PostgreSQL unless --skip-pg).

    .venv/bin/python bench/ingest_manifest.py --n 105829 --skip-pg
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import V2_SIZE, _cpu_seconds, build_dataset  # noqa: E402  (bench/ingest.py)

from ml.speech_commands import which_set  # noqa: E402

MICS = ("phone", "usb", "laptop", "headset")


def write_manifest(root: Path) -> Path:
    """``manifest.csv`` for every clip of the folder (path,label,split,speaker,mic,snr_db,adult)."""
    target = root / "manifest.csv"
    if target.exists():
        return target
    lines = ["path,label,split,speaker,mic,snr_db,adult"]
    for word in sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))):
        for name in sorted(os.listdir(root / word)):
            spk = name.split("_", 1)[0]
            h = int(spk, 16)
            lines.append(f"{word}/{name},{word},{which_set(name)},{spk},{MICS[h % 4]},{10 + h % 25},"
                         f"{'true' if h % 5 else 'false'}")
    tmp = target.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, target)
    return target


def run(url: str, data_dir: Path, root: Path, manifest: Path, workers: int | None) -> dict:
    """One timed ingest into a migrated store at ``url``."""
    from app.config import Settings
    from app.pipeline.ingest import IngestOptions, ingest
    from app.store.db import open_store

    settings = Settings(data_dir=data_dir, database_url=url)
    open_store(settings).engine.dispose()  # migrate outside the timing
    store = open_store(settings)
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        marks.setdefault(stage, time.perf_counter())

    cpu, t = _cpu_seconds(), time.perf_counter()
    rep = ingest(store, root, name="bench-manifest", progress=progress, workers=workers,
                 options=IngestOptions(manifest=manifest))
    end = time.perf_counter()
    store.engine.dispose()
    return {"clips": rep.n_clips, "rejects": rep.n_rejects, "wall": end - t, "cpu": _cpu_seconds() - cpu,
            "plan": marks.get("decoding", end) - t, "decode": marks.get("writing", end) - marks.get("decoding", t),
            "write": end - marks.get("writing", end), "meta": rep.meta_columns, "layout": rep.layout}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=V2_SIZE, help=f"rows / clips (default {V2_SIZE:,})")
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()),
                   help="where the synthetic folder is built and kept (default: the system temp folder)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (default 0: one per core)")
    p.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
                   help="PostgreSQL to measure too (default the local test database)")
    p.add_argument("--skip-pg", action="store_true", help="measure SQLite only (default: both)")
    args = p.parse_args(argv)
    t = time.perf_counter()
    root = build_dataset(args.n, args.cache_dir)
    manifest = write_manifest(root)
    print(f"data set: {root}, manifest {manifest} ({args.n:,} rows; built/cached in {time.perf_counter() - t:.1f} s)",
          file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        rows.append(("SQLite", run(f"sqlite:///{Path(tmp) / 'earmark.db'}", Path(tmp), root, manifest,
                                   args.workers or None)))
    if not args.skip_pg:
        import uuid

        from sqlalchemy import text

        from app.store.db import make_engine

        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = make_engine(args.pg_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
                url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
                rows.append(("PostgreSQL", run(url, Path(tmp), root, manifest, args.workers or None)))
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    load = os.getloadavg()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) at the end; layout {rows[0][1]['layout']}, "
          f"metadata {rows[0][1]['meta']}\n")
    print("| store | clips | rejects | wall s | clips/s | plan s | decode s | write + commit s | CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        n = r["clips"] + r["rejects"]
        print(f"| {name} | {r['clips']:,} | {r['rejects']:,} | {r['wall']:.1f} | {n / r['wall']:,.0f} | "
              f"{r['plan']:.1f} | {r['decode']:.1f} | {r['write']:.1f} | {r['cpu']:.1f} |")


if __name__ == "__main__":
    main()
