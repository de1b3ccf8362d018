"""Issue detection: precision and recall against planted defects, and ``earmark analyze`` time at 105k.

Part 1 (quality) needs a synthetic data set with planted defects and a trained, inferred run on it:

    earmark synth OUT --speakers 40 --seed 7
    earmark ingest OUT/speech_commands --name demo
    earmark train --dataset demo --name baseline --folds 3      # --folds: out-of-fold probabilities
    .venv/bin/python bench/issues.py --defects OUT/defects.csv --run baseline [--analyze]

For each defect kind of OUT/defects.csv it reports the precision and recall of earmark's
suggestions at the cut-off the UI uses: the clips of the run's ``cutoff`` finding (cut-off score
>= the threshold) and of its ``label`` finding (label issues), plus what the error clusters and the
outlier list catch. Part 2 (speed) times ``analyze_run`` on a synthetic 105,829-clip SQLite store
(test factories, no audio; numba warm-up reported apart):

    .venv/bin/python bench/issues.py --timing-clips 105829
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS35 = ("backward bed bird cat dog down eight five follow forward four go happy house learn left marvin nine "
           "no off on one right seven sheila six stop three tree two up visual wow yes zero").split()


def build_store(data_dir: Path, n_clips: int, dim: int = 96):
    """A SQLite store of ``n_clips`` clips with one complete run (built once, reused); (settings, run id).

    Training clips get out-of-fold probabilities (a copy of their probabilities), so cleanlab runs
    over every split as it does after ``earmark train --folds K``.
    """
    from sqlalchemy import select, text

    from app.config import Settings
    from app.store.db import open_store
    from app.store.models import Run
    from tests.factories import make_run

    data_dir = data_dir / f"store-{n_clips}-{dim}"
    settings = Settings(data_dir=data_dir)
    marker = data_dir / ".complete"
    with open_store(settings).session() as s:
        if marker.exists():
            return settings, s.scalar(select(Run.id).order_by(Run.id.desc()))
        fx = make_run(s, data_dir / "audio", n_clips=n_clips, labels=list(WORDS35), dim=dim, write_audio=False,
                      seed=3, disagree_every=9, with_scores=False)
        s.execute(text("UPDATE predictions SET oof_probs = probs WHERE run_id = :r AND clip_id IN "
                       "(SELECT id FROM clips WHERE split = 'train')"), {"r": fx.run_id})
        s.commit()
    marker.touch()
    return settings, fx.run_id


def time_analyze(args) -> list[tuple[str, float]]:
    """Seconds for each part of ``analyze_run`` on the synthetic store."""
    from app.pipeline.analyze import analyze_run
    from app.pipeline.project import project_run
    from app.store.db import open_store
    from ml.analysis.neighbors import EXACT_MAX
    from ml.analysis.projection import warm_up

    t0 = time.perf_counter()
    settings, run_id = build_store(args.data_dir, args.timing_clips, args.dim)
    build = time.perf_counter() - t0
    warm = warm_up(approximate_knn=args.timing_clips > EXACT_MAX)
    store = open_store(settings)
    from sqlalchemy import delete

    from app.store.models import NeighborList

    with store.session() as s:
        # Worst case first: no neighbour graph left by `earmark project`, analyze computes its own.
        s.execute(delete(NeighborList).where(NeighborList.run_id == run_id))
        s.commit()
    cold = analyze_run(store, run_id)
    # The usual order (project, then analyze): the stored graph is reused.
    project_run(store, run_id, seed=None)
    warm_run = analyze_run(store, run_id)
    rows = [(f"(store built or reused: {args.timing_clips:,} clips)", build),
            ("numba warm-up (pynndescent JIT, once per process)", warm)]
    for label, summary in (("without a stored graph", cold), ("after `earmark project` (graph reused)", warm_run)):
        rows += [(f"analyze {label}: {k}", v) for k, v in summary.timings.items() if k != "total"]
        rows.append((f"**analyze total, {label}** (goal: <= 120 s)", summary.timings["total"]))
    rows.append(("analyze without a stored graph + warm-up (fresh process)", cold.timings["total"] + warm))
    return rows


def _prf(found: set[int], truth: set[int]) -> tuple[float, float, int]:
    tp = len(found & truth)
    precision = tp / len(found) if found else float("nan")
    recall = tp / len(truth) if truth else float("nan")
    return precision, recall, tp


def evaluate(args) -> list[list]:
    """Precision / recall of each detector against each planted defect kind of defects.csv."""
    from sqlalchemy import select

    from app.config import Settings
    from app.pipeline.analyze import analyze_run
    from app.store.db import open_store
    from app.store.models import Clip, ClipScore, Finding, FindingClip
    from app.store.runs import resolve_run

    store = open_store(Settings())
    if args.analyze:
        with store.session() as s:
            run_id = resolve_run(s, args.run).id
        analyze_run(store, run_id)
    with store.session() as s:
        run = resolve_run(s, args.run)
        paths = dict(s.execute(select(Clip.path, Clip.id).where(Clip.dataset_id == run.dataset_id)).all())
        splits = dict(s.execute(select(Clip.id, Clip.split).where(Clip.dataset_id == run.dataset_id)).all())
        findings = s.scalars(select(Finding).where(Finding.run_id == run.id).order_by(Finding.rank)).all()
        members = {f.id: dict(s.execute(select(FindingClip.clip_id, FindingClip.suggested_label)
                                        .where(FindingClip.finding_id == f.id)).all()) for f in findings}
        n_scored = len(s.scalars(select(ClipScore.clip_id).where(ClipScore.run_id == run.id)).all())
        run_desc = f"run {run.id} ({run.name}, folds={run.folds})"
    truth: dict[str, set[int]] = {}
    true_label: dict[int, str] = {}
    with open(args.defects, newline="") as fh:
        for row in csv.DictReader(fh):
            cid = paths.get(row["path"])
            if cid is None:
                continue
            truth.setdefault(row["defect"], set()).add(cid)
            true_label[cid] = row["true_label"]
    by_kind: dict[str, set[int]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, set()).update(members[f.id])
    clusters = [f for f in findings if f.kind == "cluster"]

    def clusters_for(reason: str) -> set[int]:
        return set().union(*[set(members[f.id]) for f in clusters if f.reason == reason])

    detectors = {"cut-off finding": by_kind.get("cutoff", set()), "label finding": by_kind.get("label", set()),
                 "top error cluster": set(members[clusters[0].id]) if clusters else set(),
                 "clusters said 'cut off'": clusters_for("cutoff"),
                 "clusters said 'noise only'": clusters_for("noise_only"),
                 "outlier finding": by_kind.get("outlier", set())}
    relevant = {"cutoff": ["cut-off finding", "top error cluster", "clusters said 'cut off'"],
                "mislabeled": ["label finding"],
                "multiple_words": ["outlier finding", "label finding"],
                "noise_only": ["clusters said 'noise only'", "outlier finding", "cut-off finding"]}
    goal = {"cutoff": "cut-off finding", "mislabeled": "label finding"}
    out = []
    for kind, names in relevant.items():
        t = truth.get(kind, set())
        for name in names:
            found = detectors[name]
            p, r, tp = _prf(found, t)
            mark = "**" if goal.get(kind) == name else ""
            out.append([f"{mark}{kind}{mark}", len(t), name, len(found), tp, p, r])
        if kind == "mislabeled":
            held = {c for c in t if splits.get(c) != "train"}
            found = by_kind.get("label", set())
            p, r, tp = _prf({c for c in found if splits.get(c) != "train"}, held)
            out.append([kind + " (validation+test only)", len(held), "label finding", None, tp, p, r])
            lab = members[next(f.id for f in findings if f.kind == "label")] if "label" in by_kind else {}
            right = sum(1 for c in t & set(lab) if lab[c] == true_label.get(c))
            out.append([kind + ": suggested label = true word", len(t & set(lab)), "label finding", None, right,
                        right / max(1, len(t & set(lab))), None])
    args._desc = f"{run_desc}: {n_scored:,} clips scored, {sum(len(v) for v in truth.values()):,} planted defects"
    args._top = clusters[0].description if clusters else "no error cluster"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--defects", type=Path, help="OUT/defects.csv of `earmark synth` (enables part 1)")
    ap.add_argument("--run", default="latest", help="run id or name to evaluate (in EARMARK_DATA_DIR's store)")
    ap.add_argument("--analyze", action="store_true", help="run `analyze` on the run first")
    ap.add_argument("--timing-clips", type=int, default=0, help="clips for the speed part (105829 = v0.02); 0 = skip")
    ap.add_argument("--dim", type=int, default=96, help="embedding dimension of the synthetic store")
    ap.add_argument("--threads", type=int, default=2, help="numba / BLAS threads")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "earmark-bench-issues",
                    help="where the synthetic timing store is built and reused")
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    if not args.defects and not args.timing_clips:
        ap.error("give --defects (quality) and/or --timing-clips (speed)")
    if args.defects:
        rows = evaluate(args)
        print(f"\n### Issue detection vs planted defects ({args.defects}; {args._desc})\n")
        print("| defect | planted | detector | suggested | hits | precision | recall |")
        print("|---|---:|---|---:|---:|---:|---:|")
        for kind, n, det, nf, tp, p, r in rows:
            def f(v):
                return "–" if v is None or v != v else f"{v:.3f}"
            print(f"| {kind} | {n:,} | {det} | {'–' if nf is None else f'{nf:,}'} | {tp:,} | {f(p)} | {f(r)} |")
        print(f"\nTop-ranked error cluster: {args._top}")
    if args.timing_clips:
        rows = time_analyze(args)
        print(f"\n### earmark analyze, {args.timing_clips:,} clips, dim {args.dim}, {args.threads} threads "
              f"({platform.machine()}, {os.cpu_count()} CPUs visible, load average "
              f"{os.getloadavg()[0]:.1f} at the end)\n")
        print("| step | seconds |")
        print("|---|---:|")
        for name, sec in rows:
            print(f"| {name} | {sec:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
