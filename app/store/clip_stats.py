"""Per-clip columns for slicing a run: signal stats, speakers and the analysis' label doubts, as numpy
arrays aligned with a run's clip ids (one scan of the data set each, no IN lists); the audio-quality
stats the quality findings and the clip list's ``quality`` filter read (``quality_arrays``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.models import Clip, ClipScore


@dataclass(frozen=True)
class StatColumn:
    """A signal stat the slices page bins: its column on ``Clip``, its title and unit."""

    name: str
    title: str
    unit: str


# the signal stats ingest measures (ml.audio / ml.analysis.signal), in the order the slices page shows them
STATS = (
    StatColumn("rms_dbfs", "loudness", "dBFS"),
    StatColumn("duration_s", "duration", "s"),
    StatColumn("lead_silence_ms", "lead silence", "ms"),
    StatColumn("end_energy_db", "end energy", "dB"),
    StatColumn("clipped_frac", "clipping", "share of samples"),
)
STAT_NAMES = tuple(s.name for s in STATS)


def _align(all_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``all_ids`` of each of ``ids``, whether it was found); ``all_ids`` sorted."""
    if not len(all_ids):
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    pos = np.clip(np.searchsorted(all_ids, ids), 0, len(all_ids) - 1)
    return pos, all_ids[pos] == ids


def clip_stat_arrays(session: Session, dataset_id: int, clip_ids: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
    """The signal stats (``STAT_NAMES``: float64, NaN where unknown) and ``speaker`` (object, None where
    unknown) of a data set's clips, aligned with ``clip_ids``."""
    cols = [getattr(Clip, name) for name in STAT_NAMES]
    rows = session.execute(select(Clip.id, Clip.speaker, *cols).where(Clip.dataset_id == dataset_id)
                           .order_by(Clip.id)).all()
    ids = np.asarray(clip_ids, dtype=np.int64)
    all_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    pos, found = _align(all_ids, ids)
    out: dict[str, np.ndarray] = {}
    cols = list(zip(*rows, strict=True)) if rows else [()] * (2 + len(STAT_NAMES))
    for j, name in enumerate(STAT_NAMES):
        full = np.array(cols[2 + j], dtype=np.float64)  # None reads as NaN
        out[name] = np.where(found, full[pos], np.nan) if len(full) else np.full(len(ids), np.nan)
    speakers = np.empty(len(rows), dtype=object)
    speakers[:] = [s or None for s in cols[1]]
    col = np.empty(len(ids), dtype=object)
    col[:] = None
    if len(rows):
        col[found] = speakers[pos[found]]
    out["speaker"] = col
    return out


def label_doubts(session: Session, run_id: int, clip_ids: Sequence[int] | np.ndarray) -> np.ndarray | None:
    """Whether ``earmark analyze`` doubts each clip's label under the run (``ClipScore.label_issue``),
    aligned with ``clip_ids``; None when the run was not analyzed."""
    rows = session.execute(select(ClipScore.clip_id, ClipScore.label_issue).where(ClipScore.run_id == run_id)
                           .order_by(ClipScore.clip_id)).all()
    if not rows:
        return None
    ids = np.asarray(clip_ids, dtype=np.int64)
    all_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    flags = np.fromiter((bool(r[1]) for r in rows), dtype=bool, count=len(rows))
    pos, found = _align(all_ids, ids)
    return found & flags[pos]


# the stored audio-quality stats (ml.analysis.quality; migration 0006), as ``quality_arrays`` names them
QUALITY_COLUMNS = {"peak": Clip.peak, "plateau_share": Clip.plateau_share, "dc": Clip.dc_offset,
                   "band_step_db": Clip.band_step_db}


def quality_arrays(session: Session, dataset_id: int,
                   clip_ids: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The audio-quality stats of a data set's clips aligned with ``clip_ids`` (every clip in id order when
    None; float64, NaN where not measured: clips ingested before migration 0006), keyed as
    ``ml.analysis.quality.flags_from_columns`` takes them, plus ``speaker`` (object, None where unknown).
    Read fresh: a re-ingest fills them."""
    rows = session.execute(select(Clip.id, Clip.speaker, *QUALITY_COLUMNS.values())
                           .where(Clip.dataset_id == dataset_id).order_by(Clip.id)).all()
    all_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    ids = all_ids if clip_ids is None else np.asarray(clip_ids, dtype=np.int64)
    pos, found = _align(all_ids, ids)
    cols = list(zip(*rows, strict=True)) if rows else [()] * (2 + len(QUALITY_COLUMNS))
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(QUALITY_COLUMNS):
        full = np.array(cols[2 + j], dtype=np.float64)  # None reads as NaN
        out[name] = np.where(found, full[pos], np.nan) if len(full) else np.full(len(ids), np.nan)
    speakers = np.empty(len(ids), dtype=object)
    speakers[:] = None
    if len(rows):
        spk = np.empty(len(rows), dtype=object)
        spk[:] = [s or None for s in cols[1]]
        speakers[found] = spk[pos[found]]
    out["speaker"] = speakers
    return out


def count_unmeasured_quality(session: Session, dataset_id: int) -> int:
    """How many of the data set's clips lack the audio-quality stats (ingested before migration 0006);
    ``earmark ingest`` of the same folder fills them."""
    return int(session.scalar(select(func.count()).select_from(Clip).where(
        Clip.dataset_id == dataset_id, Clip.plateau_share.is_(None))) or 0)
