"""The confusion matrix of a run on one split: counts or row-normalised; every cell links to its clips."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.web import charts, views
from app.web.deps import CacheDep, RunDep, SessionDep, Split, render

router = APIRouter()
NAV = ("Confusion", "/confusion", 20)
Norm = Literal["counts", "row"]


@router.get("/confusion")
def show_confusion(request: Request, session: SessionDep, cache: CacheDep, run: RunDep,
                   split: Annotated[Split | None, Query(description="train, validation or test")] = None,
                   norm: Annotated[Norm, Query(description="counts or row (normalised by true label)")] = "counts"):
    """The confusion matrix page."""
    split = split or views.default_split(run)
    data = views.confusion_data(session, cache, run, split)
    cells = charts.confusion_cells(data["counts"], data["rates"], norm)
    pairs = charts.top_confusions(data["labels"], data["counts"], data["rates"])
    return render(request, "confusion.html", run=run, split=split, norm=norm, data=data, cells=cells, pairs=pairs,
                  metrics=(run.metrics or {}).get(split, {}))
