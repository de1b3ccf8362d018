"""The embedding cloud: every projected clip as a WebGL scatter, coloured, selectable and playable.

The page itself is light; the points come from ``/api/cloud`` (legend JSON) and
``/api/cloud.bin`` (16 bytes a point, see ``app.store.queries.cloud_payload``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.errors import NotFound
from app.store import queries
from app.store.models import Dataset, Finding
from app.web.deps import RunDep, SessionDep, render

router = APIRouter()
NAV = ("Cloud", "/cloud", 40)
ColorBy = Literal["agreement", "label", "pred", "confidence", "loss", "cutoff", "split", "flag"]
MAX_HIGHLIGHT = 100_000


@router.get("/cloud")
def show_cloud(request: Request, session: SessionDep, run: RunDep,
               color: Annotated[ColorBy, Query(description="what colours the points")] = "agreement",
               disagree: Annotated[bool, Query(description="show only the clips that disagree with their label")] = False,
               finding: Annotated[int | None, Query(ge=1, description="highlight the clips of this finding")] = None):
    """The cloud page."""
    highlight, finding_title = None, None
    if finding is not None:
        row = session.get(Finding, finding)
        if row is None:
            raise NotFound(f"no finding {finding}", hint="findings are listed on the Issues page")
        finding_title = row.title
        highlight = [int(i) for i in queries.finding_clip_ids(session, finding)[:MAX_HIGHLIGHT]]
    dataset = session.get(Dataset, run.dataset_id)
    labels = sorted(set(dataset.labels or []) | set(run.classes or []))
    config = dict(run_id=run.id, color=color, disagree=disagree, finding=finding, highlight=highlight,
                  meta_url=f"/api/cloud?run={run.id}", bin_url=f"/api/cloud.bin?run={run.id}")
    return render(request, "cloud.html", run=run, config=config, labels=labels, color=color, disagree=disagree,
                  finding_title=finding_title)
