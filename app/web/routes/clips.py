"""The clip list: high-loss first by default, filtered and sorted by the query string, paginated."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.errors import NotFound
from app.store import queries
from app.store.models import Dataset, Finding
from app.web.deps import ClipFilterDep, RunDep, SessionDep, filter_params, render

router = APIRouter()
NAV = ("Clips", "/clips", 30)
PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="page number, from 1")]
PerPage = Annotated[int, Query(ge=10, le=200, description="rows per page")]


def clip_page(session, run, f, cache, page: int, per_page: int) -> dict:
    """One page of the filtered, sorted list: total, pages and the rows (also the API's answer)."""
    if f.finding is not None and session.get(Finding, f.finding) is None:
        raise NotFound(f"no finding {f.finding}", hint="findings are listed on the Issues page after `earmark analyze`")
    frame = queries.run_frame(session, run, cache)
    rows = queries.filter_rows(session, frame, run.dataset_id, f)
    total = len(rows)
    pages = max(1, math.ceil(total / per_page))
    page = min(page, pages)
    ids = [int(i) for i in frame.clip_ids[rows[(page - 1) * per_page: page * per_page]]]
    return dict(run_id=run.id, total=total, page=page, pages=pages, per_page=per_page,
                has_scores=frame.has_scores, items=queries.clip_rows(session, run, ids))


def finding_title(session, finding_id: int | None) -> str | None:
    """The title of the finding a list is restricted to (for the page heading)."""
    if finding_id is None:
        return None
    finding = session.get(Finding, finding_id)
    return finding.title if finding else f"finding {finding_id} (not found)"


@router.get("/clips")
def list_clips(request: Request, session: SessionDep, run: RunDep, f: ClipFilterDep,
               page: PageNo = 1, per_page: PerPage = 50):
    """The clip list page."""
    data = clip_page(session, run, f, request.app.state.cache, page, per_page)
    dataset = session.get(Dataset, run.dataset_id)
    frame = queries.run_frame(session, run, request.app.state.cache)
    labels = sorted(set(frame.vocab) | set(dataset.labels or []))
    return render(request, "clips.html", run=run, f=f, data=data, vocab=frame.vocab, labels=labels,
                  context=filter_params(f), finding_title=finding_title(session, f.finding),
                  offset=(data["page"] - 1) * per_page)
