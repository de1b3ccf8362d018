"""Clips: one by id, a data set's clips as columns, a speaker's other clips, and the display rows
the clip list and clip page show (clip, prediction, score and flag in one query)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.errors import ClipNotFound
from app.store.flags import flag_dict, flags_for
from app.store.models import Clip, ClipScore, Prediction, Run


@dataclass
class ClipTable:
    """The clips of a data set in id order, as parallel lists."""

    ids: list[int]
    paths: list[str]
    labels: list[str]
    splits: list[str]
    speakers: list[str | None]


def get_clip(session: Session, clip_id: int) -> Clip:
    """A clip by id, or ``ClipNotFound``."""
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise ClipNotFound(clip_id)
    return clip


def load_clips(session: Session, dataset_id: int) -> ClipTable:
    """Every clip of the data set, ordered by id (the order of the waveform cache)."""
    rows = session.execute(select(Clip.id, Clip.path, Clip.label, Clip.split, Clip.speaker)
                           .where(Clip.dataset_id == dataset_id).order_by(Clip.id)).all()
    return ClipTable([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                     [r[4] for r in rows])


def speaker_clip_ids(session: Session, clip: Clip, limit: int) -> list[int]:
    """Up to ``limit`` other clips of ``clip``'s speaker in its data set, by id (none without a speaker)."""
    if not clip.speaker:
        return []
    return list(session.scalars(
        select(Clip.id).where(and_(Clip.dataset_id == clip.dataset_id, Clip.speaker == clip.speaker,
                                   Clip.id != clip.id)).order_by(Clip.id).limit(limit)))


def existing_clip_ids(session: Session, clip_ids: list[int]) -> set[int]:
    """Which of ``clip_ids`` exist."""
    if not clip_ids:
        return set()
    return set(session.scalars(select(Clip.id).where(Clip.id.in_(clip_ids))))


_ROW_COLUMNS = (Clip.id, Clip.path, Clip.label, Clip.word, Clip.split, Clip.speaker, Clip.duration_s,
                Clip.cutoff_signal, Prediction.target, Prediction.pred, Prediction.confidence, Prediction.loss,
                Prediction.agree, ClipScore.cutoff_score, ClipScore.suggested_label)


def clip_rows(session: Session, run: Run, clip_ids: list[int]) -> list[dict]:
    """Display rows (clip, prediction, score, flag) for ``clip_ids``, in that order (columns only, no blobs)."""
    if not clip_ids:
        return []
    stmt = (
        select(*_ROW_COLUMNS)
        .outerjoin(Prediction, and_(Prediction.clip_id == Clip.id, Prediction.run_id == run.id))
        .outerjoin(ClipScore, and_(ClipScore.clip_id == Clip.id, ClipScore.run_id == run.id))
        .where(Clip.id.in_(clip_ids))
    )
    found = {r.id: r for r in session.execute(stmt).all()}
    flags = flags_for(session, clip_ids)
    out = []
    for cid in clip_ids:
        r = found.get(cid)
        if r is None:
            continue
        has_score = r.cutoff_score is not None
        out.append(dict(
            id=r.id, path=r.path, label=r.label, word=r.word, split=r.split, speaker=r.speaker,
            duration_s=r.duration_s, target=r.target, pred=r.pred, confidence=r.confidence, loss=r.loss,
            agree=r.agree, cutoff_score=r.cutoff_score if has_score else (1.0 if r.cutoff_signal else 0.0),
            cutoff_source="analysis" if has_score else "signal", suggested_label=r.suggested_label,
            flag=flag_dict(flags.get(cid)),
        ))
    return out
