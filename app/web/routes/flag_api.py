"""The flag API: set, clear and bulk-set flags (POST only, ``X-Earmark-CSRF: 1`` required).

- ``POST /api/clips/{clip_id}/flag`` ``{reason, corrected_label?, note?, author?}`` -> the flag as written
- ``POST /api/clips/{clip_id}/flag/clear`` -> ``{"clip_id", "cleared": bool}``
- ``POST /api/flags/bulk`` ``{clip_ids, reason, corrected_label?, note?, author?, finding_id?,
  overwrite_people?, dry_run?}`` -> ``{"flagged", "kept", "replaced", "skipped", "reason", "corrected_label"}``

Every flag is checked by ``app.flags.validate_flag`` (the one check the CLI and file imports use
too) and written by ``app.store.flags`` (one atomic upsert that answers with what it wrote). The
author ``auto`` is reserved for detectors; a person without a name is ``anonymous``. A bulk action
keeps every flag a person wrote unless ``overwrite_people`` is true, and says how many it kept.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.errors import EarmarkError, NotFound
from app.flags import ANONYMOUS, MAX_AUTHOR, MAX_LABEL, MAX_NOTE, FlagValues, Reason, validate_flag
from app.pipeline.flags import flag_clips
from app.store.clips import get_clip
from app.store.findings import get_finding
from app.store.flags import clear_flag, clip_datasets, correctable_labels, upsert_flag
from app.web.deps import DbId, IdField, SessionDep

router = APIRouter(prefix="/api", tags=["flags"])


class FlagIn(BaseModel):
    """A flag as a person sets it."""

    reason: Reason
    corrected_label: str | None = Field(None, max_length=MAX_LABEL, description="required for 'mislabeled'")
    note: str = Field("", max_length=MAX_NOTE)
    author: str = Field(ANONYMOUS, max_length=MAX_AUTHOR, description="the name typed in the UI ('auto' is "
                                                                      "reserved for detectors)")


class BulkFlagIn(FlagIn):
    """The same flag on many clips (a cloud selection, or all clips of an issue)."""

    clip_ids: list[IdField] = Field(..., min_length=1, max_length=200_000)
    finding_id: IdField | None = None
    overwrite_people: bool = Field(False, description="also replace flags that people wrote (kept by default)")
    dry_run: bool = Field(False, description="only count what would be flagged, kept and replaced")


def _check(body: FlagIn, session: Session, dataset_id: int) -> FlagValues:
    return validate_flag(body.reason.value, body.corrected_label, body.note, body.author,
                         correctable_labels(session, dataset_id), allow_auto=False)


@router.post("/clips/{clip_id}/flag", summary="Flag one clip (the last write wins)")
def flag_clip(clip_id: DbId, body: FlagIn, session: SessionDep) -> dict:
    """Set the clip's flag; returns the flag as written (never re-read, so a racing clear cannot fail it)."""
    clip = get_clip(session, clip_id)
    v = _check(body, session, clip.dataset_id)
    written = upsert_flag(session, clip_id, v.reason, v.corrected_label, v.note, v.author)
    session.commit()
    return written


@router.post("/clips/{clip_id}/flag/clear", summary="Remove a clip's flag")
def clear_clip_flag(clip_id: DbId, session: SessionDep) -> dict:
    """Clear the flag; ``cleared`` says whether there was one."""
    get_clip(session, clip_id)
    cleared = clear_flag(session, clip_id)
    session.commit()
    return {"clip_id": clip_id, "cleared": cleared}


@router.post("/flags/bulk", summary="Flag many clips at once")
def flag_bulk(body: BulkFlagIn, session: SessionDep) -> dict:
    """Flag every clip of ``clip_ids`` (all must exist and share one data set), in one transaction.

    Flags people wrote are kept unless ``overwrite_people``; ``kept``/``replaced`` count them.
    """
    ids = sorted(set(body.clip_ids))
    datasets = clip_datasets(session, ids)
    if len(datasets) != len(ids):
        raise NotFound(f"{len(ids) - len(datasets)} of the {len(ids)} clip ids do not exist", hint="reload the page")
    if len(set(datasets.values())) != 1:
        raise EarmarkError("the clips belong to several data sets", hint="flag one data set at a time", status=422)
    if body.finding_id is not None:
        get_finding(session, body.finding_id)
    v = _check(body, session, next(iter(datasets.values())))
    result = flag_clips(session, ids, v, body.finding_id, overwrite_people=body.overwrite_people,
                        dry_run=body.dry_run)
    return {**result.as_dict(), "reason": v.reason, "corrected_label": v.corrected_label,
            "dry_run": body.dry_run}
