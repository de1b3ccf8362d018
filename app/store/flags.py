"""Flags in the store: the one upsert, clear, and every read of the flags table.

Every write of a flag goes through ``upsert_flags`` (``upsert_flag`` for one clip): one
``INSERT ... ON CONFLICT (clip_id) DO UPDATE`` per clip, the same on SQLite and PostgreSQL, so
the last write wins and concurrent writers never lose one. It answers with the rows it wrote
(``RETURNING``), never by reading them back, so a clear racing a set cannot turn the set into an
error. The rules (reasons, validation, what a flag does to a label) live in ``app.flags``; this
module runs the SQL. Flags change all the time, so nothing here is cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.flags import ANONYMOUS, AUTO, REASONS, check_reason, correctable, iso_utc, validate_flag
from app.store.models import Clip, Dataset, Finding, Flag, Run, utcnow

_IN_CHUNK = 500  # ids per IN (...) list
_MANY_CHUNK = 2000  # rows per executemany
_UPDATED = ("reason", "corrected_label", "note", "author", "finding_id", "updated_at")
_COLUMNS = (Flag.clip_id, Flag.reason, Flag.corrected_label, Flag.note, Flag.author, Flag.finding_id,
            Flag.created_at, Flag.updated_at)


def _chunks(ids: Sequence[int], n: int = _IN_CHUNK) -> Iterable[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def _upsert_stmt(session: Session, keep_people: bool = False):
    name = session.get_bind().dialect.name
    if name not in ("postgresql", "sqlite"):
        raise EarmarkError(f"unsupported database dialect {name!r}", hint="use SQLite or PostgreSQL")
    stmt = (postgresql.insert if name == "postgresql" else sqlite.insert)(Flag)
    # keep_people: a conflicting row is only replaced when a detector wrote it.
    where = (Flag.author == AUTO) if keep_people else None
    return stmt.on_conflict_do_update(index_elements=[Flag.clip_id], set_={k: stmt.excluded[k] for k in _UPDATED},
                                      where=where)


def flag_dict(flag) -> dict | None:
    """A flag (a ``Flag`` or a row with its columns) as the API returns it."""
    if flag is None:
        return None
    return dict(clip_id=flag.clip_id, reason=flag.reason, corrected_label=flag.corrected_label, note=flag.note,
                author=flag.author, finding_id=flag.finding_id,
                created_at=flag.created_at.isoformat() if flag.created_at else None,
                updated_at=flag.updated_at.isoformat() if flag.updated_at else None)


def upsert_flags(session: Session, rows: Sequence[dict], keep_people: bool = False) -> int:
    """Write many flags (dicts with ``clip_id, reason, corrected_label, note, author, finding_id`` and
    optional ``created_at``/``updated_at``), in executemany batches; the caller commits.

    Values are written as given (validate them with ``app.flags.validate_flag`` first).
    ``keep_people``: an existing flag written by a person is left as it is. Returns the row count.
    """
    now = utcnow()
    params = [{"clip_id": int(r["clip_id"]), "reason": r["reason"], "corrected_label": r.get("corrected_label"),
               "note": r.get("note") or "", "author": r.get("author") or ANONYMOUS,
               "finding_id": r.get("finding_id"), "created_at": r.get("created_at") or now,
               "updated_at": r.get("updated_at") or r.get("created_at") or now} for r in rows]
    stmt = _upsert_stmt(session, keep_people)
    for i in range(0, len(params), _MANY_CHUNK):
        session.execute(stmt, params[i:i + _MANY_CHUNK])
    return len(params)


def upsert_flag(session: Session, clip_id: int, reason: str, corrected_label: str | None = None, note: str = "",
                author: str = ANONYMOUS, finding_id: int | None = None) -> dict:
    """Set the one flag of ``clip_id`` atomically (the last write wins); returns the flag as written
    (``flag_dict``), from the statement itself. Validates with ``app.flags.validate_flag``. Caller commits."""
    v = validate_flag(reason, corrected_label, note, author)
    now = utcnow()
    stmt = _upsert_stmt(session).values(clip_id=clip_id, reason=v.reason, corrected_label=v.corrected_label,
                                        note=v.note, author=v.author, finding_id=finding_id, created_at=now,
                                        updated_at=now)
    return flag_dict(session.execute(stmt.returning(*_COLUMNS)).one())


def clear_flag(session: Session, clip_id: int) -> bool:
    """Remove the flag of ``clip_id``; True when there was one. Caller commits."""
    return session.execute(delete(Flag).where(Flag.clip_id == clip_id)).rowcount > 0


# ----------------------------------------------------------------------------------------- reads


def flag_map(session: Session, dataset_id: int) -> dict[int, str]:
    """clip id -> flag reason for every flagged clip of a data set."""
    rows = session.execute(select(Flag.clip_id, Flag.reason).join(Clip, Clip.id == Flag.clip_id)
                           .where(Clip.dataset_id == dataset_id)).all()
    return {cid: reason for cid, reason in rows}


def flags_for(session: Session, clip_ids: Sequence[int]) -> dict[int, Flag]:
    """The Flag rows of some clips, by clip id."""
    out: dict[int, Flag] = {}
    for chunk in _chunks(clip_ids):
        out.update({f.clip_id: f for f in session.scalars(select(Flag).where(Flag.clip_id.in_(chunk)))})
    return out


def dataset_flags(session: Session, dataset_id: int) -> list[tuple[int, str, str | None, datetime | None]]:
    """``(clip_id, reason, corrected_label, updated_at)`` of every flag of a data set, by clip id
    (what ``app.flags.plan_labels`` reads)."""
    q = (select(Flag.clip_id, Flag.reason, Flag.corrected_label, Flag.updated_at)
         .join(Clip, Clip.id == Flag.clip_id).where(Clip.dataset_id == dataset_id).order_by(Flag.clip_id))
    return [tuple(r) for r in session.execute(q).all()]


def people_flagged(session: Session, clip_ids: Sequence[int]) -> set[int]:
    """The clips among ``clip_ids`` whose flag a person wrote (any author but ``auto``)."""
    out: set[int] = set()
    for chunk in _chunks(clip_ids):
        out.update(session.scalars(select(Flag.clip_id).where(Flag.clip_id.in_(chunk), Flag.author != AUTO)))
    return out


def clip_datasets(session: Session, clip_ids: Sequence[int]) -> dict[int, int]:
    """``clip_id -> dataset_id`` for the clips among ``clip_ids`` that exist (what a bulk flag checks)."""
    out: dict[int, int] = {}
    for chunk in _chunks(clip_ids):
        out.update(dict(session.execute(select(Clip.id, Clip.dataset_id).where(Clip.id.in_(chunk))).all()))
    return out


def correctable_labels(session: Session, dataset: Dataset | int | None = None, run: Run | None = None) -> list[str]:
    """Labels a flag may be corrected to (``app.flags.correctable``): the data set's labels, the
    special labels, and the classes of ``run`` (or of every run of the data set). Without a data
    set: every ready data set and every run."""
    if dataset is None:
        labels = session.scalars(select(Dataset.labels).where(Dataset.status == "ready")).all()
        return correctable((x for ls in labels for x in ls or []), session.scalars(select(Run.classes)).all())
    ds = dataset if isinstance(dataset, Dataset) else session.get(Dataset, int(dataset))
    if ds is None:
        return correctable([])
    if run is not None:
        return correctable(ds.labels or [], [run.classes])
    return correctable(ds.labels or [], session.scalars(select(Run.classes).where(Run.dataset_id == ds.id)).all())


# ----------------------------------------------------------------------------------------- queue


def _queue_query(dataset_id: int | None, reason: str | None):
    # Plain columns, not ORM objects: the export of 100k flags should not build 100k instances.
    q = (select(Flag.clip_id, Flag.reason, Flag.corrected_label, Flag.note, Flag.author, Flag.finding_id,
                Flag.created_at, Flag.updated_at, Clip.path, Clip.label, Clip.word, Clip.split, Clip.dataset_id,
                Dataset.name.label("dataset"))
         .select_from(Flag).join(Clip, Clip.id == Flag.clip_id).join(Dataset, Dataset.id == Clip.dataset_id))
    if dataset_id is not None:
        q = q.where(Clip.dataset_id == dataset_id)
    if reason:
        q = q.where(Flag.reason == check_reason(reason).value)
    return q


def _queue_row(r, finding_runs: dict[int, int]) -> dict:
    return {
        "clip_id": r.clip_id, "dataset": r.dataset, "dataset_id": r.dataset_id, "path": r.path, "label": r.label,
        "word": r.word, "split": r.split, "reason": r.reason, "corrected_label": r.corrected_label,
        "note": r.note or "", "author": r.author, "finding_id": r.finding_id,
        "finding_run_id": finding_runs.get(r.finding_id) if r.finding_id else None,
        "created_at": iso_utc(r.created_at), "updated_at": iso_utc(r.updated_at),
    }


def queue(session: Session, dataset_id: int | None = None, reason: str | None = None, limit: int | None = None,
          offset: int = 0) -> list[dict]:
    """The flags queue, newest change first: each flag with its clip's path, label and split."""
    order = (Flag.updated_at.desc(), Flag.clip_id.desc())
    q = _queue_query(dataset_id, reason).order_by(*order)
    if limit is not None or offset:
        # Pick the page on the narrow flags table first, then join it: sorting 100k joined rows with
        # their notes and paths to keep 100 was the slow part (0.43 s -> 0.07 s at 105k flags).
        page = select(Flag.clip_id).order_by(*order).offset(offset)
        if dataset_id is not None:
            page = page.join(Clip, Clip.id == Flag.clip_id).where(Clip.dataset_id == dataset_id)
        if reason:
            page = page.where(Flag.reason == reason)
        if limit is not None:
            page = page.limit(limit)
        q = q.where(Flag.clip_id.in_(page.scalar_subquery()))
    rows = session.execute(q).all()
    fids = {r.finding_id for r in rows if r.finding_id}
    finding_runs = dict(session.execute(select(Finding.id, Finding.run_id).where(Finding.id.in_(fids))).all()) \
        if fids else {}
    return [_queue_row(r, finding_runs) for r in rows]


def count_by_reason(session: Session, dataset_id: int | None = None) -> dict[str, int]:
    """Number of flags per reason (every reason present, zeros included) and ``total``."""
    q = select(Flag.reason, func.count()).group_by(Flag.reason)
    if dataset_id is not None:  # every flag has its clip (cascade), so join only to filter
        q = q.join(Clip, Clip.id == Flag.clip_id).where(Clip.dataset_id == dataset_id)
    counts = {r: 0 for r in REASONS}
    counts.update(dict(session.execute(q).all()))
    counts["total"] = sum(counts[r] for r in REASONS)
    return counts


def export_records(session: Session, dataset_id: int | None = None, reason: str | None = None) -> list[dict]:
    """The flags as export records (``EXPORT_COLUMNS``), sorted by data set name and clip path."""
    q = _queue_query(dataset_id, reason).order_by(Dataset.name, Clip.path)
    return [{"dataset": r.dataset, "path": r.path, "label": r.label, "reason": r.reason,
             "corrected_label": r.corrected_label, "note": r.note or "", "author": r.author,
             "time": iso_utc(r.updated_at)} for r in session.execute(q).all()]


def existing_flags(session: Session, clip_ids: Sequence[int]) -> dict[int, tuple[str, str | None, str, int | None]]:
    """``clip_id -> (reason, corrected_label, author, finding_id)`` of the clips that have a flag."""
    out = {}
    for chunk in _chunks(clip_ids):
        q = select(Flag.clip_id, Flag.reason, Flag.corrected_label, Flag.author, Flag.finding_id) \
            .where(Flag.clip_id.in_(chunk))
        out.update({r[0]: tuple(r[1:]) for r in session.execute(q)})
    return out


def clips_by_path(session: Session, dataset_id: int, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
    """``path -> (clip id, label)`` for the given paths of a data set (for imports)."""
    out: dict[str, tuple[int, str]] = {}
    plist = sorted(set(paths))
    for i in range(0, len(plist), _IN_CHUNK):
        q = select(Clip.path, Clip.id, Clip.label).where(Clip.dataset_id == dataset_id,
                                                        Clip.path.in_(plist[i:i + _IN_CHUNK]))
        out.update({path: (cid, label) for path, cid, label in session.execute(q)})
    return out
