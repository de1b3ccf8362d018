"""Accuracy of a run on the clean clips of a synthetic data set (those without a planted defect).

The demo's goal is >= 95% on the clean test clips. ``defects.csv`` comes from ``earmark synth``;
the run is read from the store that ``EARMARK_DATA_DIR`` / ``EARMARK_DATABASE_URL`` point at.

    EARMARK_DATA_DIR=earmark-data .venv/bin/python bench/demo_accuracy.py \
        --defects earmark-data/demo/defects.csv --run baseline
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from app.config import Settings
from app.store.db import open_store
from app.store.models import Clip, Prediction
from app.store.runs import resolve_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--defects", type=Path, required=True, help="defects.csv written by `earmark synth`")
    ap.add_argument("--run", action="append", default=None,
                    help="run id or name; repeat for several (default: latest)")
    args = ap.parse_args()
    with args.defects.open(newline="") as fh:
        defective = {row["path"]: row["defect"] for row in csv.DictReader(fh)}
    sessions = open_store(Settings()).sessions
    print("| run | split | clean clips | clean accuracy | defective clips | accuracy on defective |")
    print("|---|---|---:|---:|---:|---:|")
    with sessions() as s:
        for ref in args.run or ["latest"]:
            run = resolve_run(s, ref)
            rows = s.execute(select(Clip.path, Clip.split, Prediction.agree)
                             .join(Prediction, Prediction.clip_id == Clip.id)
                             .where(Prediction.run_id == run.id)).all()
            tally: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])
            for path, split, agree in rows:
                t = tally[(split, path in defective)]
                t[0] += int(agree)
                t[1] += 1
            for split in ("train", "validation", "test"):
                ok, n = tally[(split, False)]
                dok, dn = tally[(split, True)]
                print(f"| {run.id} {run.name} | {split} | {n} | {ok / max(n, 1):.1%} | {dn} | "
                      f"{dok / max(dn, 1):.1%} |")


if __name__ == "__main__":
    main()
