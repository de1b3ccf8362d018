"""Clips: one by id, a data set's clips as columns, a speaker's other clips, and the display rows
the clip list and clip page show (clip, prediction, score and flag in one query)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from app.errors import ClipNotFound
from app.store.flags import flag_dict, flags_for
from app.store.models import Clip, ClipScore, Dataset, Prediction, Run


@dataclass
class ClipTable:
    """The clips of a data set in id order, as parallel lists."""

    ids: list[int]
    paths: list[str]
    labels: list[str]
    splits: list[str]
    speakers: list[str | None]


@dataclass(frozen=True)
class SplitCounts:
    """What an ingest report says of a data set's clips, per split (train / validation / test...)."""

    clips: dict[str, int]  # split -> clips
    speakers: dict[str, int]  # split -> distinct speakers
    n_speakers: int  # distinct speakers over all splits
    n_cutoff_signal: int  # clips whose speech is still on at the end


class LeakageRow(NamedTuple):
    """One clip as the leakage check reads it."""

    path: str
    split: str
    speaker: str | None
    content_hash: str


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


def search_clip_ids(session: Session, dataset_id: int, text: str) -> np.ndarray:
    """Ids (int64, sorted) of the data set's clips whose path or label contains ``text``, any case
    (``%`` and ``_`` match themselves)."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    ids = session.scalars(select(Clip.id).where(
        Clip.dataset_id == dataset_id,
        Clip.path.ilike(pattern, escape="\\") | Clip.label.ilike(pattern, escape="\\")).order_by(Clip.id)).all()
    return np.asarray(ids, dtype=np.int64)


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


def clip_meta(session: Session, clip_id: int) -> dict:
    """A clip's metadata (column name -> value), in its data set's column order; {} when it has none."""
    row = session.execute(select(Clip.meta, Dataset.meta_columns).join(Dataset, Dataset.id == Clip.dataset_id)
                          .where(Clip.id == clip_id)).first()
    if row is None:
        raise ClipNotFound(clip_id)
    meta, columns = row[0] or {}, row[1] or {}
    ordered = {name: meta[name] for name in columns if name in meta}
    ordered.update({k: v for k, v in meta.items() if k not in ordered})
    return ordered


def meta_arrays(session: Session, dataset_id: int, clip_ids: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """Each metadata column of a data set as one array aligned with ``clip_ids``.

    A ``number`` column is float64 with NaN where a clip has no value; ``text`` and ``boolean``
    columns are object arrays of str / bool with None where missing. One query over the data set
    (no IN list, so 105k ids cost one scan), then aligned by id.
    """
    columns = session.scalar(select(Dataset.meta_columns).where(Dataset.id == dataset_id)) or {}
    ids = np.asarray(clip_ids, dtype=np.int64)
    if not columns:
        return {}
    rows = session.execute(select(Clip.id, Clip.meta).where(Clip.dataset_id == dataset_id)
                           .order_by(Clip.id)).all()
    all_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    metas = [r[1] or {} for r in rows]
    pos = np.searchsorted(all_ids, ids) if len(all_ids) else np.zeros(len(ids), dtype=np.int64)
    pos = np.clip(pos, 0, max(len(all_ids) - 1, 0))
    found = all_ids[pos] == ids if len(all_ids) else np.zeros(len(ids), dtype=bool)
    out: dict[str, np.ndarray] = {}
    for name, kind in columns.items():
        if kind == "number":
            full = np.array([m.get(name, np.nan) if m.get(name) is not None else np.nan for m in metas],
                            dtype=np.float64)
            col = np.where(found, full[pos] if len(full) else np.nan, np.nan)
        else:
            full_obj = np.empty(len(metas), dtype=object)
            full_obj[:] = [m.get(name) for m in metas]
            col = np.empty(len(ids), dtype=object)
            col[:] = None
            if len(full_obj):
                col[found] = full_obj[pos[found]]
        out[name] = col
    return out


def clip_durations(session: Session, dataset_id: int) -> np.ndarray:
    """Every clip's duration in seconds (float64, id order): what the trainer's window is fitted to."""
    rows = session.scalars(select(Clip.duration_s).where(Clip.dataset_id == dataset_id).order_by(Clip.id)).all()
    return np.asarray(rows, dtype=np.float64)


def split_counts(session: Session, dataset_id: int) -> SplitCounts:
    """Clips and speakers per split, speakers in all, and clips with a cut-off signal."""
    in_ds = Clip.dataset_id == dataset_id
    clips = dict(session.execute(select(Clip.split, func.count()).where(in_ds).group_by(Clip.split)).all())
    speakers = dict(session.execute(
        select(Clip.split, func.count(func.distinct(Clip.speaker))).where(in_ds).group_by(Clip.split)).all())
    n_speakers = session.scalar(select(func.count(func.distinct(Clip.speaker))).where(in_ds)) or 0
    n_cutoff = session.scalar(select(func.count()).select_from(Clip).where(in_ds, Clip.cutoff_signal.is_(True))) or 0
    return SplitCounts(clips, speakers, n_speakers, n_cutoff)


def clip_ids_by_path(session: Session, dataset_id: int) -> dict[str, int]:
    """{path: clip id} for every clip of the data set (what a re-ingest merges by)."""
    return dict(session.execute(select(Clip.path, Clip.id).where(Clip.dataset_id == dataset_id)).all())


def leakage_rows(session: Session, dataset_id: int) -> list[LeakageRow]:
    """(path, split, speaker, content hash) of every clip of the data set, for the leakage check."""
    return [LeakageRow(*r) for r in session.execute(
        select(Clip.path, Clip.split, Clip.speaker, Clip.content_hash).where(Clip.dataset_id == dataset_id)).all()]


def distinct_labels(session: Session, dataset_id: int) -> list[str]:
    """The data set's labels, sorted."""
    return sorted(session.scalars(select(Clip.label).where(Clip.dataset_id == dataset_id).distinct()))


def update_clips(session: Session, rows: list[dict]) -> None:
    """ORM bulk UPDATE by primary key: each row holds ``id`` and the columns to set. Caller commits."""
    if rows:
        session.execute(update(Clip), rows)


def delete_clips(session: Session, clip_ids: list[int], batch: int = 5000) -> None:
    """Delete these clips, ``batch`` ids a statement. Caller commits."""
    for i in range(0, len(clip_ids), batch):
        session.execute(delete(Clip).where(Clip.id.in_(clip_ids[i:i + batch])))
