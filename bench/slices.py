"""Latency of the slices page and of the metadata features at Speech Commands scale.

Builds (or reuses) the store bench/web.py builds (105,829 clips, one complete run, SQLite), gives every
clip metadata as a manifest would (gender and accent text, take number, noisy boolean; the data
set's ``meta_columns``), serves it with uvicorn after the app's warm-up, and times each URL with a
keep-alive HTTP client: the first (cold) call, then p50 / p95 / max over ``--repeat`` calls.

    .venv/bin/python bench/slices.py [--clips 105829] [--repeat 30] [--data-dir DIR]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.web import build_store, data_dir_for, parse_args, print_table, serve, time_calls  # noqa: E402

ACCENTS = ["american", "british", "indian", "german", "irish", "scottish", "australian", "canadian", "welsh"]


def add_metadata(settings, run_id: int) -> int:
    """Give every clip of the run's data set metadata (once); returns the number of clips written."""
    from sqlalchemy import select, update

    from app.store.db import open_store
    from app.store.models import Clip, Dataset, Run

    store = open_store(settings)
    with store.session() as s:
        ds = s.get(Dataset, s.get(Run, run_id).dataset_id)
        if ds.meta_columns:
            return 0
        ids = list(s.scalars(select(Clip.id).where(Clip.dataset_id == ds.id).order_by(Clip.id)))
        rng = np.random.default_rng(7)
        rows = [dict(id=cid, meta={"gender": ("female", "male")[int(rng.random() < 0.5)],
                                   "accent": ACCENTS[int(rng.integers(0, len(ACCENTS)))],
                                   "take": int(rng.integers(0, 6)), "noisy": bool(rng.random() < 0.2)})
                for cid in ids]
        for i in range(0, len(rows), 10_000):
            s.execute(update(Clip), rows[i:i + 10_000])
        ds.meta_columns = {"gender": "text", "accent": "text", "take": "number", "noisy": "boolean"}
        s.commit()
    store.engine.dispose()
    return len(ids)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)

    import httpx

    with data_dir_for(args.data_dir) as data_dir:
        settings, run_id, _ = build_store(data_dir, args.clips, n_media=0)
        t = time.perf_counter()
        n_meta = add_metadata(settings, run_id)
        if n_meta:
            print(f"metadata for {n_meta:,} clips in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        base, server, warm_s = serve(settings)
        load = os.getloadavg()
        r = run_id
        families = ["meta.gender", "meta.accent", "meta.take", "meta.noisy", "speaker", "stat.rms_dbfs",
                    "stat.duration_s", "stat.lead_silence_ms", "stat.end_energy_db", "stat.clipped_frac"]
        with httpx.Client(base_url=base, timeout=120) as c:
            rows = [
                ("page /slices (validation; first call loads the columns)", lambda i: c.get(
                    f"/slices?run={r}&family={families[i % len(families)]}")),
                ("page /slices?split=all", lambda i: c.get(f"/slices?run={r}&split=all&family={families[i % 10]}")),
                ("page /slices?split=test", lambda i: c.get(f"/slices?run={r}&split=test&family=speaker")),
                ("GET /api/slices (validation)", lambda i: c.get(f"/api/slices?run={r}")),
                ("page /clips (no column condition, for comparison)", lambda i: c.get(f"/clips?run={r}&page={i + 1}")),
                ("page /clips?meta.accent=…", lambda i: c.get(f"/clips?run={r}&meta.accent={ACCENTS[i % 9]}")),
                ("page /clips?speaker.not=… (an 'other' slice, 12 values)", lambda i: c.get(
                    f"/clips?run={r}&" + "&".join(f"speaker.not={k:08x}" for k in range(12)))),
                ("page /clips?stat.rms_dbfs range", lambda i: c.get(
                    f"/clips?run={r}&stat.rms_dbfs.min=-28&stat.rms_dbfs.below=-24&sort=confidence")),
                ("GET /api/cloud/column?name=meta.accent", lambda i: c.get(
                    f"/api/cloud/column?run={r}&name=meta.accent")),
                ("GET /api/cloud/column?name=stat.rms_dbfs", lambda i: c.get(
                    f"/api/cloud/column?run={r}&name=stat.rms_dbfs")),
            ]
            results = [time_calls(c, name, fn, args.repeat) for name, fn in rows]
        server.should_exit = True

    print(f"\n### Slices and metadata, {args.clips:,} clips, one run (SQLite), {args.repeat} calls per row\n")
    print(f"Load average at the start: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
          f"server warm-up {warm_s:.1f} s.\n")
    print_table(results)
    slices_p95 = max(x["p95"] for x in results if "/slices" in x["name"])
    print(f"\nSlices page p95: {slices_p95:.1f} ms; goal <= 200 ms: {'met' if slices_p95 <= 200 else 'MISSED'}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
