"""The flag API: set, clear and bulk-set flags (POST only, ``X-Earmark-CSRF: 1`` required).

- ``POST /api/clips/{clip_id}/flag`` ``{reason, corrected_label?, note?, author?}`` -> the flag
- ``POST /api/clips/{clip_id}/flag/clear`` -> ``{"clip_id", "cleared": bool}``
- ``POST /api/flags/bulk`` ``{clip_ids, reason, corrected_label?, note?, author?, finding_id?}``
  -> ``{"flagged": n}``

Writes go through ``app.store.writes.upsert_flag`` (one atomic upsert, the last write wins).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import EarmarkError, NotFound
from app.store.models import Clip, Dataset, Finding, Flag, Run
from app.store.queries import flag_dict
from app.store.writes import clear_flag, upsert_flag, validate_flag
from app.web.deps import SessionDep

router = APIRouter(prefix="/api", tags=["flags"])
Reason = Literal["cutoff", "mislabeled", "multiple_words", "noise_only", "other"]
EXTRA_LABELS = ("_unknown_", "_silence_", "_cutoff_")
BULK_CHUNK = 5000


class FlagIn(BaseModel):
    """A flag as a person sets it."""

    reason: Reason
    corrected_label: str | None = Field(None, max_length=100, description="required for 'mislabeled'")
    note: str = Field("", max_length=2000)
    author: str = Field("anonymous", max_length=100, description="the name typed in the UI")


class BulkFlagIn(FlagIn):
    """The same flag on many clips (a cloud selection, or all clips of an issue)."""

    clip_ids: list[int] = Field(..., min_length=1, max_length=200_000)
    finding_id: int | None = Field(None, ge=1)


def known_labels(session: Session, dataset_id: int) -> set[str]:
    """Labels a flag may correct to: the data set's labels, its runs' classes, and the special classes."""
    labels = set(session.scalar(select(Dataset.labels).where(Dataset.id == dataset_id)) or [])
    for classes in session.scalars(select(Run.classes).where(Run.dataset_id == dataset_id)):
        labels.update(classes or [])
    return labels | set(EXTRA_LABELS)


def _clean(body: FlagIn, session: Session, dataset_id: int) -> str | None:
    return validate_flag(body.reason, body.corrected_label, sorted(known_labels(session, dataset_id)))


@router.post("/clips/{clip_id}/flag", summary="Flag one clip (the last write wins)")
def flag_clip(clip_id: Annotated[int, Path(ge=1)], body: FlagIn, session: SessionDep) -> dict:
    """Set the clip's flag; returns the stored flag."""
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"no clip {clip_id}", hint="clip ids come from /api/clips")
    label = _clean(body, session, clip.dataset_id)
    upsert_flag(session, clip_id, body.reason, label, body.note, (body.author or "").strip() or "anonymous")
    session.commit()
    return flag_dict(session.scalars(select(Flag).where(Flag.clip_id == clip_id)).one())


@router.post("/clips/{clip_id}/flag/clear", summary="Remove a clip's flag")
def clear_clip_flag(clip_id: Annotated[int, Path(ge=1)], session: SessionDep) -> dict:
    """Clear the flag; ``cleared`` says whether there was one."""
    if session.get(Clip, clip_id) is None:
        raise NotFound(f"no clip {clip_id}", hint="clip ids come from /api/clips")
    cleared = clear_flag(session, clip_id)
    session.commit()
    return {"clip_id": clip_id, "cleared": cleared}


@router.post("/flags/bulk", summary="Flag many clips at once")
def flag_bulk(body: BulkFlagIn, session: SessionDep) -> dict:
    """Flag every clip of ``clip_ids`` (all must exist and share one data set), in one transaction."""
    ids = sorted(set(body.clip_ids))
    datasets: set[int] = set()
    found = 0
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start:start + BULK_CHUNK]
        rows = session.execute(select(Clip.id, Clip.dataset_id).where(Clip.id.in_(chunk))).all()
        found += len(rows)
        datasets.update(d for _, d in rows)
    if found != len(ids):
        raise NotFound(f"{len(ids) - found} of the {len(ids)} clip ids do not exist", hint="reload the page")
    if len(datasets) != 1:
        raise EarmarkError("the clips belong to several data sets", hint="flag one data set at a time", status=422)
    if body.finding_id is not None and session.get(Finding, body.finding_id) is None:
        raise NotFound(f"no finding {body.finding_id}")
    label = _clean(body, session, datasets.pop())
    author = (body.author or "").strip() or "anonymous"
    for cid in ids:
        upsert_flag(session, cid, body.reason, label, body.note, author, body.finding_id)
    session.commit()
    return {"flagged": len(ids), "reason": body.reason, "corrected_label": label}
