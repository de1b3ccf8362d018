"""The flags queue, and flags as files: export to CSV/JSON and import them back.

A flag is one person's (or a detector's) decision about one clip. This module reads the queue
(every flag joined to its clip) and moves flags in and out of the store as files:

- ``export_flags`` writes the decisions as CSV or JSON, sorted by data set and clip path, times in
  canonical ISO 8601 UTC (``2026-11-21T12:41:47.123456Z``). The output depends only on the stored
  flags, so exporting twice gives the same bytes.
- ``import_flags`` reads a file in that format, validates every row first (data set, clip path,
  original label, reason, corrected label, time), and only then upserts all of them in one
  transaction, keeping the file's times. A file with any problem is rejected as a whole with the
  line numbers and changes nothing. Re-exporting what was imported gives the file back byte for
  byte (for a file this module wrote).

The file format itself (columns, CSV formula escaping, JSON layout, times, parsing with line
numbers) lives in ``app.pipeline.flag_files``; the SQL in ``app.store.flags``; the rules (reasons,
validation, who may write what) in ``app.flags``. Every row of a file goes through the same
``validate_flag`` as the API.

Bulk flagging lives here too: ``flag_clips`` (a cloud selection, the bulk API) and ``flag_finding``
(every clip of a detector's finding). A bulk action never replaces a flag a person wrote unless it
is asked to (``overwrite_people``), and it says how many it kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.flags import AUTO, FlagValues, Reason, validate_flag
from app.pipeline.flag_files import ImportRejected, parse_flags_file, parse_time, render_csv, render_json
from app.store import flags as store
from app.store.datasets import resolve_dataset
from app.store.findings import finding_members, get_finding, top_finding
from app.store.models import Dataset
from app.store.runs import resolve_run


def _dataset_id(session: Session, dataset: str | int | None) -> int | None:
    return resolve_dataset(session, dataset).id if dataset not in (None, "") else None


# ---------------------------------------------------------------------------------------- queue


def list_flags(session: Session, dataset: str | int | None = None, reason: str | None = None,
               limit: int | None = None, offset: int = 0) -> list[dict]:
    """The flags queue, newest change first: each flag with its clip's path, label and split.

    ``dataset`` is an id or name (``None``: every data set); ``reason`` one of ``app.flags.REASONS``.
    """
    return store.queue(session, _dataset_id(session, dataset), reason, limit, offset)


def count_flags(session: Session, dataset: str | int | None = None) -> dict[str, int]:
    """Number of flags per reason (every reason present, zeros included) and ``total``."""
    return store.count_by_reason(session, _dataset_id(session, dataset))


# --------------------------------------------------------------------------------------- export


def export_records(session: Session, dataset: str | int | None = None, reason: str | None = None) -> list[dict]:
    """The flags as export records (``EXPORT_COLUMNS``), sorted by data set name and clip path."""
    return store.export_records(session, _dataset_id(session, dataset), reason)


def export_flags(session: Session, fmt: str = "csv", dataset: str | int | None = None,
                 reason: str | None = None) -> str:
    """The flags as a CSV or JSON document (see ``render_csv`` / ``render_json``)."""
    if fmt not in ("csv", "json"):
        raise EarmarkError(f"unknown export format {fmt!r}", hint="use csv or json", status=422)
    records = export_records(session, dataset, reason)
    return render_csv(records) if fmt == "csv" else render_json(records)


# --------------------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    """What an import did."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    datasets: list[str] = field(default_factory=list)


def _validate(session: Session, rows: list[tuple[int, dict]], dataset: str | int | None,
              default_author: str) -> tuple[list[dict], list[tuple[int, str]], list[str]]:
    """Check every row against the store; returns (flag values, problems, data set names)."""
    problems: list[tuple[int, str]] = []
    forced = resolve_dataset(session, dataset) if dataset not in (None, "") else None
    by_name: dict[str, Dataset | None] = {}
    wanted: dict[int, set[str]] = {}
    resolved: list[tuple[int, dict, Dataset]] = []
    for line, rec in rows:
        ds = forced
        if ds is None:
            name = rec.get("dataset", "").strip()
            if name not in by_name:
                try:
                    by_name[name] = resolve_dataset(session, name or None)
                except EarmarkError:
                    by_name[name] = None
            ds = by_name[name]
            if ds is None:
                problems.append((line, f"unknown data set {name!r}" if name else "no data set in the store"))
                continue
        resolved.append((line, rec, ds))
        wanted.setdefault(ds.id, set()).add(rec.get("path", ""))
    clips = {(ds_id, path): hit for ds_id, paths in wanted.items()
             for path, hit in store.clips_by_path(session, ds_id, paths).items()}
    out: list[dict] = []
    allowed: dict[int, set[str]] = {}
    for line, rec, ds in resolved:
        path = rec.get("path", "")
        hit = clips.get((ds.id, path))
        if hit is None:
            problems.append((line, f"unknown clip path {path!r} in data set {ds.name!r}"))
            continue
        cid, label = hit
        if rec.get("label") and rec["label"] != label:
            problems.append((line, f"label {rec['label']!r} does not match the clip's label {label!r}"))
        if ds.id not in allowed:
            allowed[ds.id] = set(store.correctable_labels(session, ds))
        try:  # the API's own checks: reason, corrected label, note and author length, no NUL
            v: FlagValues = validate_flag(rec.get("reason", ""), rec.get("corrected_label"), rec.get("note", ""),
                                          (rec.get("author") or "").strip() or default_author, allowed[ds.id])
        except EarmarkError as exc:
            problems.append((line, exc.title))
            continue
        when = None
        if rec.get("time", "").strip():
            try:
                when = parse_time(rec["time"])
            except (ValueError, OverflowError) as exc:
                problems.append((line, f"bad time {rec['time']!r}: {exc}"))
        out.append(dict(clip_id=cid, reason=v.reason, corrected_label=v.corrected_label, note=v.note,
                        author=v.author, time=when, dataset=ds.name))
    return out, problems, sorted({ds.name for _, _, ds in resolved})


def import_flags(session: Session, data: bytes | str, fmt: str | None = None, dataset: str | int | None = None,
                 default_author: str = "anonymous", now: datetime | None = None) -> ImportResult:
    """Validate a whole export file, then upsert every flag in one transaction (commits).

    Rows for the same clip: the last one in the file wins. A row without a time gets ``now``.
    An existing detector flag keeps its finding link when the row leaves its decision unchanged.
    Raises ``ImportRejected`` (nothing changed) when any row has a problem.
    """
    rows, problems = parse_flags_file(data, fmt)
    values, more, names = _validate(session, rows, dataset, default_author)
    problems += more
    if problems:
        session.rollback()
        raise ImportRejected(sorted(problems))
    now = now or datetime.now(UTC)
    last: dict[int, dict] = {}
    for v in values:
        last.pop(v["clip_id"], None)
        last[v["clip_id"]] = v
    existing = store.existing_flags(session, list(last))
    result = ImportResult(rows=len(values), datasets=names)
    params = []
    for cid, v in last.items():
        when = v["time"] or now
        old = existing.get(cid)
        finding_id = old[3] if old and old[:3] == (v["reason"], v["corrected_label"], v["author"]) else None
        params.append(dict(clip_id=cid, reason=v["reason"], corrected_label=v["corrected_label"], note=v["note"],
                           author=v["author"], finding_id=finding_id, created_at=when, updated_at=when))
        result.updated += old is not None
        result.created += old is None
    try:
        store.upsert_flags(session, params)  # one transaction
        session.commit()
    except Exception:
        session.rollback()
        raise
    return result


# ----------------------------------------------------------------------------------------- bulk


@dataclass
class BulkResult:
    """What a bulk action did (or, with ``dry_run``, would do)."""

    flagged: int = 0  # flags written
    kept: int = 0  # flags people wrote, left as they were
    replaced: int = 0  # flags people wrote, replaced (only with overwrite_people)
    skipped: int = 0  # clips left alone for another reason (a 'mislabeled' finding clip without a label)
    kept_ids: list[int] = field(default_factory=list)  # the clips of ``kept``

    def as_dict(self) -> dict:
        """The API form."""
        return {"flagged": self.flagged, "kept": self.kept, "replaced": self.replaced, "skipped": self.skipped,
                "kept_ids": self.kept_ids}


def _write_bulk(session: Session, rows: list[dict], overwrite_people: bool, dry_run: bool,
                result: BulkResult) -> BulkResult:
    people = store.people_flagged(session, [r["clip_id"] for r in rows])
    if overwrite_people:
        result.replaced = len(people)
    else:
        result.kept, result.kept_ids = len(people), sorted(people)
        rows = [r for r in rows if r["clip_id"] not in people]
    result.flagged = len(rows)
    if not dry_run:
        store.upsert_flags(session, rows, keep_people=not overwrite_people)
        session.commit()
    return result


def flag_clips(session: Session, clip_ids: list[int], values: FlagValues, finding_id: int | None = None,
               overwrite_people: bool = False, dry_run: bool = False) -> BulkResult:
    """Give every clip of ``clip_ids`` the same (validated) flag, in one transaction (commits).

    A flag a person wrote is kept unless ``overwrite_people``; ``dry_run`` only counts.
    """
    rows = [dict(clip_id=cid, reason=values.reason, corrected_label=values.corrected_label, note=values.note,
                 author=values.author, finding_id=finding_id) for cid in sorted(set(clip_ids))]
    return _write_bulk(session, rows, overwrite_people, dry_run, BulkResult())


def flag_finding(session: Session, finding_id: int, clip_ids: list[int] | None = None, author: str = AUTO,
                 overwrite_people: bool = False, dry_run: bool = False) -> BulkResult:
    """Flag a finding's clips (all, or only ``clip_ids`` among them) with its reason and suggested label.

    Each clip gets the finding's reason ('other' when the finding suggests none) and its own
    suggested label (or the finding's); a 'mislabeled' clip without any suggestion is skipped, since
    such a flag needs the correct label. A flag a person wrote is kept unless ``overwrite_people``.
    Commits (unless ``dry_run``).
    """
    f = get_finding(session, finding_id)
    rows = finding_members(session, f.id)
    if clip_ids is not None:
        wanted = {int(c) for c in clip_ids}
        unknown = sorted(wanted - {c for c, _ in rows})
        if unknown:
            raise EarmarkError(f"{len(unknown)} of the selected clips are not in finding {f.id}",
                               detail="not members: " + ", ".join(map(str, unknown[:20])),
                               hint="select clips from the finding's own clip list", status=422)
        rows = [r for r in rows if r[0] in wanted]
    reason = f.reason or Reason.OTHER.value
    note = f"auto: {f.title}"[:500]
    out, result = [], BulkResult()
    for clip_id, label in rows:
        corrected = (label or f.suggested_label) if reason == Reason.MISLABELED else None
        try:
            v = validate_flag(reason, corrected, note, author or AUTO)
        except EarmarkError:
            result.skipped += 1  # e.g. 'mislabeled' without a suggestion
            continue
        out.append(dict(clip_id=clip_id, reason=v.reason, corrected_label=v.corrected_label, note=v.note,
                        author=v.author, finding_id=f.id))
    return _write_bulk(session, out, overwrite_people, dry_run, result)


def flag_top_finding(session: Session, run_ref: str | int | None, kind: str, author: str = AUTO,
                     overwrite_people: bool = False):
    """Flag the best-ranked finding of ``kind`` in a run; returns ``(finding, BulkResult)``."""
    f = top_finding(session, resolve_run(session, run_ref).id, kind)
    return f, flag_finding(session, f.id, author=author, overwrite_people=overwrite_people)
