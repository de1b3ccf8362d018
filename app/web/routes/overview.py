"""Overview: the data sets (class distribution, leakage, rejects) and the runs with their metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.store import queries
from app.web import charts
from app.web.leakage import leakage_checks
from app.web.deps import OptionalRunDep, SessionDep, render

router = APIRouter()
NAV = ("Overview", "/", 10)


def dataset_summary(session, ds, cache) -> dict:
    """What the overview shows about one data set (also returned by the API)."""
    dist = queries.class_distribution(session, ds, cache)
    under = {split: queries.under_represented(counts) for split, counts in dist.items()}
    leakage = {k: v for k, v in (ds.leakage or {}).items()}
    return dict(
        id=ds.id, name=ds.name, layout=ds.layout, n_clips=ds.n_clips, n_rejects=ds.n_rejects,
        sample_rate=ds.sample_rate, labels=list(ds.labels or []), split_source=ds.split_source,
        list_stats=ds.list_stats or {}, distribution=dist, under_represented=under, leakage=leakage,
        created_at=ds.created_at.isoformat() if ds.created_at else None,
    )


def run_summary(run) -> dict:
    """A run's headline numbers: per-split accuracy and macro-F1 from ``Run.metrics``."""
    metrics = run.metrics or {}
    per_split = {s: dict(accuracy=m.get("accuracy"), macro_f1=m.get("macro_f1"))
                 for s, m in metrics.items() if isinstance(m, dict)}
    return dict(id=run.id, name=run.name, dataset_id=run.dataset_id, model=run.model, status=run.status,
                classes=list(run.classes or []), n_params=run.n_params, epochs_done=run.epochs_done,
                parent_run_id=run.parent_run_id, n_flags_used=len(run.flags_used or []), error=run.error,
                created_at=run.created_at.isoformat() if run.created_at else None,
                finished_at=run.finished_at.isoformat() if run.finished_at else None, metrics=per_split)


@router.get("/")
def show_overview(request: Request, session: SessionDep, run: OptionalRunDep):
    """The overview page."""
    cache = request.app.state.cache
    sets = []
    for ds in queries.datasets(session):
        summary = dataset_summary(session, ds, cache)
        summary["charts"] = [charts.class_distribution(split, counts, summary["under_represented"][split])
                             for split, counts in summary["distribution"].items()]
        summary["rejects"] = queries.rejects(session, ds.id)
        summary["runs"] = [run_summary(r) for r in queries.runs_of(session, ds.id)]
        summary["leakage_checks"] = leakage_checks(ds.leakage)
        sets.append(summary)
    return render(request, "overview.html", run=run, datasets=sets)
