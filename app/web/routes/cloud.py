"""The embedding cloud: every projected clip as a WebGL scatter, coloured, selectable and playable.

The page itself is light; the points come from ``/api/cloud`` (legend JSON) and
``/api/cloud.bin`` (16 bytes a point, see ``app.store.cloud``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.store.cache import RunCache
from app.store.datasets import get_dataset
from app.store.findings import finding_clip_ids, findings_of, get_finding
from app.store.flags import correctable_labels
from app.store.models import Run
from app.web import urls
from app.web.deps import CacheDep, IdQuery, RunDep, SessionDep, render
from app.web.slice_views import colour_columns

router = APIRouter()
NAV = ("Cloud", "/cloud", 40)
ColorBy = Literal["agreement", "label", "pred", "confidence", "loss", "cutoff", "split", "flag"]
COLOR_BY = ColorBy.__args__
MAX_HIGHLIGHT = 100_000


@router.get("/cloud")
def show_cloud(request: Request, session: SessionDep, cache: CacheDep, run: RunDep,
               color: Annotated[str, Query(max_length=200, description="what colours the points: "
                                           f"{', '.join(COLOR_BY)}, or meta.<column>, stat.<stat>, speaker")
                                ] = "agreement",
               disagree: Annotated[bool, Query(description="show only the clips that disagree with their label")] = False,
               finding: IdQuery = None):
    """The cloud page."""
    highlight, finding_title = None, None
    if finding is not None:
        finding_title = get_finding(session, finding).title
        highlight = [int(i) for i in finding_clip_ids(session, finding)[:MAX_HIGHLIGHT]]
    dataset = get_dataset(session, run.dataset_id)
    labels = correctable_labels(session, dataset, run)  # what a flag may correct to (app.flags)
    columns = colour_columns(dataset.meta_columns or {})
    if color not in COLOR_BY and color not in {c["value"] for c in columns}:
        raise EarmarkError(f"the cloud cannot be coloured by {color!r}", status=422,
                           detail=f"one of {', '.join([*COLOR_BY, *(c['value'] for c in columns)])}")
    config = dict(run_id=run.id, color=color, disagree=disagree, finding=finding, highlight=highlight,
                  meta_url=urls.api_cloud(run.id), bin_url=urls.api_cloud_bin(run.id),
                  column_url=urls.api_cloud_column(run.id), clusters=_cluster_labels(session, cache, run))
    return render(request, "cloud.html", run=run, config=config, labels=labels, color=color, disagree=disagree,
                  finding_title=finding_title, columns=columns)


def _cluster_labels(session: Session, cache: RunCache, run: Run) -> list[dict]:
    """Where to write each cluster finding of the run on the plot: the median of its projected clips
    (empty before ``earmark analyze``, or for clips never projected)."""
    frame = cache.frame(session, run)
    out = []
    for f in findings_of(session, run.id):
        if f.kind != "cluster":
            continue
        rows = np.isin(frame.clip_ids, finding_clip_ids(session, f.id))
        xs, ys = frame.x[rows], frame.y[rows]
        ok = np.isfinite(xs) & np.isfinite(ys)
        if ok.any():
            out.append(dict(id=f.id, rank=f.rank, title=f.title, n=int(f.n_clips),
                            x=float(np.median(xs[ok])), y=float(np.median(ys[ok]))))
    return out
