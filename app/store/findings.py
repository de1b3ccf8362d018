"""Findings: the ranked problems ``earmark analyze`` stores (its only writer) and what the pages
and the flagging read of them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import FindingNotFound, NotFound
from app.store.models import Clip, ClipScore, Finding, FindingClip, Flag, Prediction
from app.store.writes import bulk_insert


@dataclass
class NewFinding:
    """A finding as a detector hands it to the store: its row values and its members."""

    kind: str
    score: float
    title: str
    description: str
    reason: str | None
    suggested_label: str | None
    stats: dict
    members: list[tuple[int, float, str | None]]  # (clip id, score, suggested label)


def replace_findings(session: Session, run_id: int, findings: list[NewFinding]) -> int:
    """Replace the run's findings (ranked in list order) and their clips. Caller commits."""
    old = select(Finding.id).where(Finding.run_id == run_id)
    session.execute(delete(FindingClip).where(FindingClip.finding_id.in_(old)))
    session.execute(delete(Finding).where(Finding.run_id == run_id))
    for rank, f in enumerate(findings, start=1):
        row = Finding(run_id=run_id, kind=f.kind, rank=rank, score=float(f.score), title=f.title,
                      description=f.description, reason=f.reason, suggested_label=f.suggested_label,
                      n_clips=len(f.members), stats=f.stats)
        session.add(row)
        session.flush()
        bulk_insert(session, FindingClip, [dict(finding_id=row.id, clip_id=int(c), score=float(s), suggested_label=lab)
                                           for c, s, lab in f.members])
    return len(findings)


def get_finding(session: Session, finding_id: int) -> Finding:
    """A finding by id, or ``FindingNotFound``."""
    f = session.get(Finding, int(finding_id))
    if f is None:
        raise FindingNotFound(finding_id)
    return f


def findings_of(session: Session, run_id: int) -> list[Finding]:
    """The run's findings in rank order."""
    return list(session.scalars(select(Finding).where(Finding.run_id == run_id).order_by(Finding.rank)))


def top_finding(session: Session, run_id: int, kind: str) -> Finding:
    """The best-ranked finding of ``kind`` in a run (``cutoff``, ``label``, ``cluster``, ...)."""
    f = session.scalars(select(Finding).where(Finding.run_id == run_id, Finding.kind == kind)
                        .order_by(Finding.rank)).first()
    if f is None:
        kinds = sorted(set(session.scalars(select(Finding.kind).where(Finding.run_id == run_id))))
        raise NotFound(f"run {run_id} has no {kind!r} finding",
                       detail="its findings: " + (", ".join(kinds) or "none (not analyzed yet?)"),
                       hint=f"run `earmark analyze --run {run_id}`, then pick a finding id from the Issues page")
    return f


def last_finding_id(session: Session, run_id: int) -> int | None:
    """The highest finding id of a run (it changes with every ``earmark analyze``), or None."""
    return session.scalar(select(func.max(Finding.id)).where(Finding.run_id == run_id))


def finding_clip_ids(session: Session, finding_id: int) -> np.ndarray:
    """Clip ids of one finding (int64, sorted)."""
    ids = session.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == finding_id)).all()
    return np.array(sorted(ids), dtype=np.int64)


def finding_members(session: Session, finding_id: int) -> list[tuple[int, str | None]]:
    """(clip id, suggested label) of every clip of a finding, by clip id."""
    rows = session.execute(select(FindingClip.clip_id, FindingClip.suggested_label)
                           .where(FindingClip.finding_id == finding_id).order_by(FindingClip.clip_id)).all()
    return [(int(c), lab) for c, lab in rows]


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


def flagged_counts(session: Session, finding_ids: list[int]) -> dict[int, int]:
    """finding id -> how many flags were set from it."""
    if not finding_ids:
        return {}
    rows = session.execute(select(Flag.finding_id, func.count()).where(Flag.finding_id.in_(finding_ids))
                           .group_by(Flag.finding_id)).all()
    return {int(f): int(n) for f, n in rows}


def is_analyzed(session: Session, run_id: int) -> bool:
    """True when ``earmark analyze`` ran on the run (findings, or clustered clip scores)."""
    if last_finding_id(session, run_id) is not None:
        return True
    return bool(session.scalar(select(func.count()).select_from(ClipScore).where(
        ClipScore.run_id == run_id, ClipScore.cluster.is_not(None))))
