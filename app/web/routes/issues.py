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

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store.models import Clip, ClipScore, Finding, FindingClip, Flag, Prediction, Run
from app.web.deps import OptionalRunDep, RunDep, SessionDep, render

router = APIRouter()
NAV = ("Issues", "/issues", 25)
PREVIEW = 12
KIND_WORDS = {"cutoff": "cut-off", "label": "label issues", "cluster": "error cluster",
              "duplicate": "duplicates", "outlier": "outliers"}


class FlagFindingIn(BaseModel):
    """Which of the finding's clips to flag (all when absent), and who flags them."""

    clip_ids: list[int] | None = Field(None, max_length=200_000, description="only these clips of the finding")
    author: str | None = Field(None, max_length=100, description="recorded on the flags; default 'auto'")


def finding_dict(f: Finding) -> dict:
    """A finding as the API returns it, with the URLs of its clip list and cloud view."""
    return dict(id=f.id, run_id=f.run_id, kind=f.kind, rank=f.rank, score=round(float(f.score), 4),
                title=f.title, description=f.description, reason=f.reason, suggested_label=f.suggested_label,
                n_clips=f.n_clips, stats=f.stats or {},
                clips_url=f"/clips?run={f.run_id}&finding={f.id}", cloud_url=f"/cloud?run={f.run_id}&finding={f.id}")


def run_findings(session: Session, run_id: int) -> list[Finding]:
    """The run's findings in rank order."""
    return list(session.scalars(select(Finding).where(Finding.run_id == run_id).order_by(Finding.rank)))


def finding_clips(session: Session, f: Finding, limit: int, offset: int = 0) -> list[dict]:
    """The finding's clips, worst (highest score) first, with label, prediction and flag."""
    q = (select(FindingClip.clip_id, FindingClip.score, FindingClip.suggested_label, Clip.path, Clip.split,
                Prediction.target, Prediction.pred, Prediction.confidence, ClipScore.cutoff_score, Flag.reason,
                Flag.corrected_label)
         .join(Clip, Clip.id == FindingClip.clip_id)
         .outerjoin(Prediction, (Prediction.clip_id == FindingClip.clip_id) & (Prediction.run_id == f.run_id))
         .outerjoin(ClipScore, (ClipScore.clip_id == FindingClip.clip_id) & (ClipScore.run_id == f.run_id))
         .outerjoin(Flag, Flag.clip_id == FindingClip.clip_id)
         .where(FindingClip.finding_id == f.id)
         .order_by(FindingClip.score.desc(), FindingClip.clip_id).limit(limit).offset(offset))
    return [dict(clip_id=r[0], score=round(float(r[1]), 4), suggested_label=r[2], path=r[3], split=r[4],
                 label=r[5], pred=r[6], confidence=None if r[7] is None else round(float(r[7]), 4),
                 cutoff_score=None if r[8] is None else round(float(r[8]), 4),
                 flag=None if r[9] is None else dict(reason=r[9], corrected_label=r[10]))
            for r in session.execute(q)]


def _get(session: Session, fid: int) -> Finding:
    f = session.get(Finding, fid)
    if f is None:
        raise NotFound(f"no finding {fid}", hint="findings are listed on the Issues page; every "
                       "`earmark analyze` replaces a run's findings")
    return f


@router.get("/issues", summary="The Issues page: detected problems, ranked")
def show_issues(request: Request, session: SessionDep, run: OptionalRunDep):
    """The run's findings, ranked, with links to their clips and one flagging action each."""
    findings = run_findings(session, run.id) if run else []
    previews = {f.id: finding_clips(session, f, PREVIEW) for f in findings}
    flagged = {}
    if findings:
        rows = session.execute(select(Flag.finding_id, func.count()).where(
            Flag.finding_id.in_([f.id for f in findings])).group_by(Flag.finding_id)).all()
        flagged = dict(rows)
    top_cluster = next((f for f in findings if f.kind == "cluster"), None)
    return render(request, "issues.html", run=run, findings=findings, previews=previews, flagged=flagged,
                  top_cluster=top_cluster, kind_words=KIND_WORDS)


@router.get("/api/findings", summary="A run's findings, ranked")
def list_findings(session: SessionDep, run: RunDep) -> dict:
    """``{run_id, analyzed, findings: [...]}``; ``analyzed`` is false until ``earmark analyze`` ran."""
    findings = run_findings(session, run.id)
    analyzed = bool(findings) or bool(session.scalar(select(func.count()).select_from(ClipScore).where(
        ClipScore.run_id == run.id, ClipScore.cluster.is_not(None))))
    return {"run_id": run.id, "analyzed": analyzed, "findings": [finding_dict(f) for f in findings]}


@router.get("/api/findings/{fid}", summary="One finding and its clips")
def show_finding(fid: Annotated[int, Path(ge=1)], session: SessionDep,
                 limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                 offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    """The finding with ``clips``: its clips, worst first (``limit``/``offset`` page through them)."""
    f = _get(session, fid)
    return {**finding_dict(f), "clips": finding_clips(session, f, limit, offset)}


@router.post("/api/findings/{fid}/flag", summary="Flag all (or the selected) clips of a finding")
def flag_finding_clips(fid: Annotated[int, Path(ge=1)], session: SessionDep,
                       body: FlagFindingIn | None = None) -> dict:
    """Flag with the finding's reason ('other' when it has none) and each clip's suggested label."""
    from app.pipeline.analyze import flag_finding

    body = body or FlagFindingIn()
    f = _get(session, fid)
    author = (body.author or "").strip() or "auto"
    n = flag_finding(session, f.id, clip_ids=body.clip_ids, author=author)
    run = session.get(Run, f.run_id)
    return {"finding_id": f.id, "run_id": run.id if run else f.run_id, "flagged": n,
            "reason": f.reason or "other", "suggested_label": f.suggested_label, "author": author}
