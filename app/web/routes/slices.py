"""Slices: how a run does on each metadata value, speaker and signal-stat bin, worst first, with the
per-class table and the most confused pairs; every slice links to its clips. ``/slices`` and
``/api/slices`` share ``app.web.slice_views.slices_data``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.web import slice_views, urls, views
from app.web.deps import CacheDep, RunDep, SessionDep, render

router = APIRouter()
NAV = ("Slices", "/slices", 25)
SplitOrAll = Literal["train", "validation", "test", "all"]


def _split(run, frame, split: str | None) -> str:
    available = slice_views.available_splits(frame)
    if split:
        return split
    default = views.default_split(run)
    return default if default in available else available[0]


@router.get("/slices")
def show_slices(request: Request, session: SessionDep, cache: CacheDep, run: RunDep,
                split: Annotated[SplitOrAll | None, Query(description="train, validation, test or all; "
                                                          "default: the confusion matrix's split")] = None,
                family: Annotated[str | None, Query(max_length=200, description="the family shown, e.g. "
                                                    "meta.gender, speaker, stat.rms_dbfs")] = None):
    """The slices page."""
    frame = cache.frame(session, run)
    split = _split(run, frame, split)
    data = slice_views.slices_data(session, cache, run, split)
    names = [f["family"] for f in data["families"]]
    current = family if family in names else (names[0] if names else None)
    shown = next((f for f in data["families"] if f["family"] == current), None)
    return render(request, "slices.html", run=run, split=split, splits=slice_views.available_splits(frame),
                  data=data, family=shown, api_url=urls.api_slices(run.id, split))


@router.get("/api/slices", tags=["read"], summary="Slices of a run: every metadata column, speaker and "
            "signal-stat bin, worst first, with Wilson intervals; per-class table and top confused pairs")
def get_slices(session: SessionDep, cache: CacheDep, run: RunDep,
               split: Annotated[SplitOrAll | None, Query(description="train, validation, test or all; "
                                                         "default: the confusion matrix's split")] = None) -> dict:
    """Each family's slices: n, errors, accuracy, mean loss, disagreement (share whose label the
    analysis doubts; null when the run was not analyzed), error rate, gap to the run, the error
    rate's Wilson 95% interval, ``excludes_run``, ``small`` (n < ``small_n``) and ``clips_url``."""
    frame = cache.frame(session, run)
    return slice_views.slices_data(session, cache, run, _split(run, frame, split))
