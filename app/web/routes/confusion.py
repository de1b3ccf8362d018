"""The confusion matrix of a run on one split: counts or row-normalised; every cell links to its clips."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request

from app.store import queries
from app.web import charts
from app.web.deps import RunDep, SessionDep, Split, render

router = APIRouter()
NAV = ("Confusion", "/confusion", 20)
Norm = Literal["counts", "row"]


def confusion_data(session, run, split: str | None, cache: dict) -> dict:
    """Labels, counts and row-normalised rates of one split (also the API's answer)."""
    frame = queries.run_frame(session, run, cache)
    labels, cm = queries.confusion(frame, list(run.classes or []), split)
    totals = cm.sum(axis=1)
    rates = np.divide(cm, totals[:, None], out=np.zeros(cm.shape, dtype=float), where=totals[:, None] > 0)
    correct = int(np.trace(cm))
    return dict(run_id=run.id, split=split, labels=labels, counts=cm.tolist(), rates=rates.round(4).tolist(),
                row_totals=totals.tolist(), n=int(cm.sum()), accuracy=correct / max(1, int(cm.sum())))


def default_split(run) -> str:
    """The split a confusion matrix opens on: validation, else test, else train."""
    metrics = run.metrics or {}
    for split in ("validation", "test", "train"):
        if split in metrics:
            return split
    return "validation"


@router.get("/confusion")
def show_confusion(request: Request, session: SessionDep, run: RunDep,
                   split: Annotated[Split | None, Query(description="train, validation or test")] = None,
                   norm: Annotated[Norm, Query(description="counts or row (normalised by true label)")] = "counts"):
    """The confusion matrix page."""
    split = split or default_split(run)
    data = confusion_data(session, run, split, request.app.state.cache)
    cells = charts.confusion_cells(data["counts"], data["rates"], norm)
    pairs = charts.top_confusions(data["labels"], data["counts"], data["rates"])
    return render(request, "confusion.html", run=run, split=split, norm=norm, data=data, cells=cells, pairs=pairs,
                  metrics=(run.metrics or {}).get(split, {}))
