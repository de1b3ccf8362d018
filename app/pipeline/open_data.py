"""``earmark open PATH``: ingest → train → infer → project → analyze, reusing whatever is done.

One call takes a folder (or a manifest file) to an analysed run the web app can show:

1. ingest (``app.pipeline.ingest``): an unchanged data set (same fingerprint) is kept as is;
2. a model: a complete run of the data set with the same training config (the window fitted to
   the data included, ``app.pipeline.window``) is reused; a trained run not yet inferred is
   inferred; otherwise a new run is trained and inferred. ``OpenOptions.predictions``
   (``--predictions FILE``) imports another model's run file instead (``app.pipeline.import_run``;
   the same file, by SHA-256, is imported once);
3. project (``app.pipeline.project``): skipped when the run has its cloud (or no embeddings);
4. analyze (``app.pipeline.analyze``): skipped when the run was analysed.

Progress is reported as ``progress("<step>: <stage>", done, total)`` with step one of ``STEPS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.errors import EarmarkError
from app.pipeline.common import Progress, no_progress
from app.pipeline.ingest_plan import IngestOptions
from app.pipeline.ingest_report import IngestReport
from app.pipeline.run_spec import RunSpec
from app.pipeline.window import fit_window
from app.store.clips import clip_durations
from app.store.datasets import get_dataset
from app.store.db import Store
from app.store.findings import is_analyzed
from app.store.projections import has_projection
from app.store.runs import get_run, runs_of
from ml.config import TrainConfig

STEPS = ("ingest", "train", "infer", "project", "analyze")


@dataclass
class OpenOptions:
    """Everything ``earmark open`` passes on: how to ingest, how to train, and (issue 13) predictions."""

    path: Path
    name: str | None = None
    ingest: IngestOptions = field(default_factory=IngestOptions)
    sample_rate: int | None = None  # None: each layout's default (see app.pipeline.ingest)
    max_seconds: float | None | str = "default"
    train: TrainConfig = field(default_factory=TrainConfig)
    # issue 13 ("Your model"): a run file of another model's outputs, imported instead of training
    predictions: Path | None = None
    workers: int | None = None


@dataclass
class OpenResult:
    """What ``open_path`` did: the data set and run, and per step "done" (ran now) or "reused"."""

    dataset_id: int
    dataset_name: str
    run_id: int
    steps: dict[str, str]
    report: IngestReport  # what ingest found (or kept)


def _step(progress: Progress, step: str) -> Progress:
    def report(stage: str, done: int, total: int) -> None:
        progress(f"{step}: {stage}", done, total)

    return report


def _imported_run(store: Store, dataset_id: int, opts: OpenOptions, progress: Progress) -> tuple[int, str]:
    """The run imported from ``opts.predictions`` (run id, "done" or "reused"): a complete run of the data set
    imported from a file with the same SHA-256 is reused, else the file is imported (``import_run``)."""
    import hashlib

    from app.pipeline.import_run import import_info, import_run

    src = Path(opts.predictions).expanduser()
    if not src.is_file():
        raise EarmarkError(f"no predictions file {src}", hint="give the run file your model wrote "
                           "(.parquet, .npz or .csv; see `earmark import-run --help`)")
    digest = hashlib.sha256()
    with src.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    with store.session() as session:
        for run in runs_of(session, dataset_id):
            if run.status == "complete" and import_info(run).get("sha256") == digest.hexdigest():
                return run.id, "reused"
    summary = import_run(store, src, dataset_id, src.stem, progress=_step(progress, "import"))
    return summary.run_id, "done"


def reusable_run(store: Store, dataset_id: int, cfg: TrainConfig) -> tuple[int | None, str | None, TrainConfig]:
    """(run id, its status, the fitted config) of the newest run of the data set trained with ``cfg``
    (after fitting the window) that is complete or trained; (None, None, fitted) when there is none."""
    with store.session() as session:
        ds = get_dataset(session, dataset_id)
        fitted, _ = fit_window(cfg, ds.layout, clip_durations(session, dataset_id))
        want = fitted.to_dict()
        for run in runs_of(session, dataset_id):
            if run.status not in ("complete", "trained") or run.parent_run_id is not None:
                continue
            spec = RunSpec.from_config(run.config)
            if spec != RunSpec() or TrainConfig.from_dict(run.config).to_dict() != want:
                continue
            return run.id, run.status, fitted
    return None, None, fitted


def open_path(store: Store, opts: OpenOptions, progress: Progress | None = None) -> OpenResult:
    """Ingest, train, infer, project and analyse ``opts.path``, reusing every step already done."""
    from app.pipeline.analyze import analyze_run
    from app.pipeline.infer import infer_run
    from app.pipeline.ingest import ingest
    from app.pipeline.project import project_run
    from app.pipeline.train import train_run

    progress = progress or no_progress
    steps: dict[str, str] = {}
    rep = ingest(store, opts.path, opts.name, _step(progress, "ingest"), sample_rate=opts.sample_rate,
                 max_seconds=opts.max_seconds, workers=opts.workers, options=opts.ingest)
    steps["ingest"] = "reused" if rep.unchanged else "done"
    if opts.predictions is not None:
        run_id, steps["import"] = _imported_run(store, rep.dataset_id, opts, progress)
    else:
        run_id, status, _ = reusable_run(store, rep.dataset_id, opts.train)
        if run_id is None:
            run_id = train_run(store, rep.dataset_id, opts.train, progress=_step(progress, "train"))
            steps["train"], status = "done", "trained"
        else:
            steps["train"] = "reused"
        if status == "complete":
            steps["infer"] = "reused"
        else:
            infer_run(store, run_id, progress=_step(progress, "infer"))
            steps["infer"] = "done"
    with store.session() as session:
        projected, analyzed = has_projection(session, run_id), is_analyzed(session, run_id)
        no_embeddings = opts.predictions is not None and get_run(session, run_id).embedding_dim is None
    if no_embeddings:
        steps["project"] = "skipped (imported without embeddings)"
    elif projected:
        steps["project"] = "reused"
    else:
        project_run(store, run_id, progress=_step(progress, "project"))
        steps["project"] = "done"
    if analyzed:
        steps["analyze"] = "reused"
    else:
        analyze_run(store, run_id, progress=_step(progress, "analyze"))
        steps["analyze"] = "done"
    return OpenResult(rep.dataset_id, rep.name, run_id, steps, rep)
