"""What comparing two runs reads: complete runs to pair, per-split agreement counts, same-target
confusion counts and the clips whose prediction changed (``app.pipeline.compare`` does the rest)."""

from __future__ import annotations

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, aliased

from app.store.models import Clip, Prediction, Run


def _in_clip_order(p):
    """An always-true ``clip_id > 0`` that steers SQLite to the (run_id, clip_id) primary key.

    Without it SQLite walks run a through the (run_id, loss) index, in random clip order, and every
    lookup into run b and the clips table is a random read: 1.8 s instead of 0.23 s at 105k clips.
    """
    return p.clip_id > 0


def newest_complete_run(session: Session, dataset_id: int | None = None, exclude_id: int | None = None,
                        before_id: int | None = None) -> Run | None:
    """The newest complete run (of a data set; other than ``exclude_id``; older than ``before_id``), or None."""
    q = select(Run).where(Run.status == "complete")
    if dataset_id is not None:
        q = q.where(Run.dataset_id == dataset_id)
    if exclude_id is not None:
        q = q.where(Run.id != exclude_id)
    if before_id is not None:
        q = q.where(Run.id < before_id)
    return session.scalars(q.order_by(Run.id.desc())).first()


def agreement_counts(session: Session, a_id: int, b_id: int) -> list[tuple[str, bool, int, int, int, int, int]]:
    """Per split and same-target-or-not: (split, same, clips, a correct, b correct, fixed, broke);
    fixed and broke count same-target clips only."""
    pa, pb = aliased(Prediction), aliased(Prediction)
    same = pa.target == pb.target
    ones = lambda cond: func.sum(case((cond, 1), else_=0))  # noqa: E731 - portable SUM(boolean)
    q = (select(Clip.split, same.label("same"), func.count(), ones(pa.agree), ones(pb.agree),
                ones(and_(same, ~pa.agree, pb.agree)), ones(and_(same, pa.agree, ~pb.agree)))
         .select_from(pa).join(pb, and_(pb.clip_id == pa.clip_id, pb.run_id == b_id))
         .join(Clip, Clip.id == pa.clip_id).where(pa.run_id == a_id, _in_clip_order(pa))
         .group_by(Clip.split, same))
    return [(s, bool(sm), int(n), int(a or 0), int(b or 0), int(f or 0), int(br or 0))
            for s, sm, n, a, b, f, br in session.execute(q).all()]


def predictions_per_split(session: Session, run_id: int) -> dict[str, int]:
    """split -> how many clips the run predicted."""
    return {s: int(n) for s, n in session.execute(
        select(Clip.split, func.count()).join(Prediction, Prediction.clip_id == Clip.id)
        .where(Prediction.run_id == run_id).group_by(Clip.split)).all()}


def same_target_pairs(session: Session, a_id: int, b_id: int) -> list[tuple[str, str, str, str, int]]:
    """(split, target, a's prediction, b's prediction, clips) over the clips whose target is the same in both."""
    pa, pb = aliased(Prediction), aliased(Prediction)
    q = (select(Clip.split, pa.target, pa.pred, pb.pred, func.count())
         .select_from(pa).join(pb, and_(pb.clip_id == pa.clip_id, pb.run_id == b_id, pb.target == pa.target))
         .join(Clip, Clip.id == pa.clip_id).where(pa.run_id == a_id, _in_clip_order(pa))
         .group_by(Clip.split, pa.target, pa.pred, pb.pred))
    return [(s, t, x, y, int(n)) for s, t, x, y, n in session.execute(q).all()]


def changed_clip_rows(session: Session, a_id: int, b_id: int, fixed: bool, split: str | None, limit: int,
                      offset: int) -> tuple[list[dict], int]:
    """Same-target clips wrong in a and right in b (``fixed``), or the reverse, by clip path: (page, total)."""
    pa, pb = aliased(Prediction), aliased(Prediction)
    # a relabeled clip is neither: b is scored against another target (the relabeled tile counts them)
    cond = and_(pa.target == pb.target, ~pa.agree, pb.agree) if fixed else \
        and_(pa.target == pb.target, pa.agree, ~pb.agree)
    base = (select(Clip.id, Clip.path, Clip.label, Clip.split, pa.target, pa.pred, pa.confidence,
                   pb.target, pb.pred, pb.confidence)
            .select_from(pa).join(pb, and_(pb.clip_id == pa.clip_id, pb.run_id == b_id))
            .join(Clip, Clip.id == pa.clip_id).where(pa.run_id == a_id, _in_clip_order(pa), cond))
    if split:
        base = base.where(Clip.split == split)
    total = session.scalar(select(func.count()).select_from(base.subquery()))
    rows = session.execute(base.order_by(Clip.path, Clip.id).limit(limit).offset(offset)).all()
    page = [{"clip_id": r[0], "path": r[1], "label": r[2], "split": r[3],
             "a_target": r[4], "a_pred": r[5], "a_confidence": r[6],
             "b_target": r[7], "b_pred": r[8], "b_confidence": r[9], "relabeled": r[4] != r[7]} for r in rows]
    return page, int(total or 0)
