"""Overview: the data sets (class distribution, leakage, rejects) and the runs with their metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.store import datasets as datasets_store
from app.store.runs import runs_of
from app.web import charts, views
from app.web.deps import CacheDep, OptionalRunDep, SessionDep, render
from app.web.leakage import leakage_checks

router = APIRouter()
NAV = ("Overview", "/", 10)


@router.get("/")
def show_overview(request: Request, session: SessionDep, cache: CacheDep, run: OptionalRunDep):
    """The overview page."""
    sets = []
    for ds in datasets_store.ready_datasets(session):
        summary = views.dataset_summary(session, cache, ds)
        summary["charts"] = [charts.class_distribution(split, counts, summary["under_represented"][split])
                             for split, counts in summary["distribution"].items()]
        summary["rejects"] = datasets_store.rejects(session, ds.id)
        summary["runs"] = [views.run_summary(r) for r in runs_of(session, ds.id)]
        summary["leakage_checks"] = leakage_checks(ds.leakage)
        sets.append(summary)
    return render(request, "overview.html", run=run, datasets=sets)
