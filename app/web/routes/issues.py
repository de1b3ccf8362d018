"""The Issues page: what ``earmark analyze`` found in a run, ranked, each one a click from its clips.

- ``GET /issues?run=R``: the run's findings, ranked; each links to the pre-filtered clip list
  (``/clips?run=R&finding=F``) and the cloud with its clips highlighted (``/cloud?run=R&finding=F``),
  previews its worst clips (playable, selectable), and flags all or the selected ones.
- ``GET /api/findings?run=R``: the findings as JSON.
- ``GET /api/findings/{fid}?limit=&offset=``: one finding and its clips (worst first).
- ``POST /api/findings/{fid}/flag`` ``{clip_ids?: [...], author?}`` (header ``X-Earmark-CSRF: 1``):
  flags the finding's clips (or only ``clip_ids`` among them) with its reason and suggested label.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from app.store import findings as findings_store
from app.store.datasets import get_dataset
from app.web import views
from app.web.deps import FindingDep, IdField, Offset, OptionalRunDep, RunDep, SessionDep, render
from app.web.views import finding_dict
from ml.analysis.quality import WORDS as QUALITY_WORDS

router = APIRouter()
NAV = ("Issues", "/issues", 25)
PREVIEW = 12
KIND_WORDS = {"cutoff": "cut-off", "label": "label issues", "cluster": "error cluster",
              "duplicate": "duplicates", "outlier": "outliers",
              **{k: w.label for k, w in QUALITY_WORDS.items()},  # clipped, too quiet, DC offset, silent, upsampled
              "noise_only": "noise only"}


class FlagFindingIn(BaseModel):
    """Which of the finding's clips to flag (all when absent), and who flags them."""

    clip_ids: list[IdField] | None = Field(None, max_length=200_000, description="only these clips of the finding")
    author: str | None = Field(None, max_length=100, description="recorded on the flags; default 'auto'")
    overwrite_people: bool = Field(False, description="also replace flags that people wrote (kept by default)")
    dry_run: bool = Field(False, description="only count what would be flagged, kept and replaced")


@router.get("/issues", summary="The Issues page: detected problems, ranked")
def show_issues(request: Request, session: SessionDep, run: OptionalRunDep):
    """The run's findings, ranked, with links to their clips and one flagging action each."""
    findings = findings_store.findings_of(session, run.id) if run else []
    previews = {f.id: findings_store.finding_clips(session, f, PREVIEW) for f in findings}
    flagged = findings_store.flagged_counts(session, [f.id for f in findings])
    top_cluster = next((f for f in findings if f.kind == "cluster"), None)
    dataset = get_dataset(session, run.dataset_id) if run else None
    return render(request, "issues.html", run=run, findings=findings, previews=previews, flagged=flagged,
                  top_cluster=top_cluster, kind_words=KIND_WORDS,
                  quality_note=views.quality_note(session, dataset) if dataset else None)


@router.get("/api/findings", summary="A run's findings, ranked")
def list_findings(session: SessionDep, run: RunDep) -> dict:
    """``{run_id, analyzed, findings: [...]}``; ``analyzed`` is false until ``earmark analyze`` ran."""
    findings = findings_store.findings_of(session, run.id)
    analyzed = bool(findings) or findings_store.is_analyzed(session, run.id)
    return {"run_id": run.id, "analyzed": analyzed, "findings": [finding_dict(f) for f in findings]}


@router.get("/api/findings/{fid}", summary="One finding and its clips")
def show_finding(f: FindingDep, session: SessionDep,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                 offset: Offset = 0) -> dict:
    """The finding with ``clips``: its clips, worst first (``limit``/``offset`` page through them)."""
    return {**finding_dict(f), "clips": findings_store.finding_clips(session, f, limit, offset)}


@router.post("/api/findings/{fid}/flag", summary="Flag all (or the selected) clips of a finding")
def flag_finding_clips(f: FindingDep, session: SessionDep, body: FlagFindingIn | None = None) -> dict:
    """Flag with the finding's reason ('other' when it has none) and each clip's suggested label.

    Flags people wrote are kept unless ``overwrite_people``; ``dry_run`` only counts.
    """
    from app.pipeline.flags import flag_finding

    body = body or FlagFindingIn()
    author = (body.author or "").strip() or "auto"
    res = flag_finding(session, f.id, clip_ids=body.clip_ids, author=author,
                       overwrite_people=body.overwrite_people, dry_run=body.dry_run)
    return {"finding_id": f.id, "run_id": f.run_id, **res.as_dict(), "dry_run": body.dry_run,
            "reason": f.reason or "other", "suggested_label": f.suggested_label, "author": author}
