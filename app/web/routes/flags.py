"""The flags queue page, its JSON API, and flags as files (export and import).

- ``GET /flags?reason=&dataset=&page=``: every flagged clip, filterable, each playable, editable and
  clearable (the edits go through the flag API of ``routes/flag_api.py``).
- ``GET /api/flags?reason=&dataset=&limit=&offset=``: the same as JSON.
- ``GET /flags/export.csv`` and ``/flags/export.json`` (``?dataset=&reason=``): the export files.
- ``POST /flags/import`` (also ``/api/flags/import``): multipart ``file`` (+ optional ``dataset``);
  all rows or none, problems listed by line (422 JSON with ``problems``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from app.errors import EarmarkError
from app.flags import Reason
from app.pipeline import flags as fl
from app.pipeline.flag_files import ImportRejected
from app.store.datasets import ready_datasets, resolve_dataset
from app.store.flags import correctable_labels
from app.store.models import Dataset
from app.web.deps import Offset, OptionalRunDep, SessionDep, SettingsDep, render

router = APIRouter()
NAV = ("Flags", "/flags", 40)
PAGE_SIZE = 100
MAX_IMPORT_BYTES = 50 * 1024 * 1024
ReasonQ = Annotated[Reason | None, Query(description="only flags with this reason")]
DatasetQ = Annotated[str | None, Query(max_length=200, description="data set id or name; default: all")]


def _dataset(session, ref: str | None) -> Dataset | None:
    return resolve_dataset(session, ref) if ref and ref.strip() else None


@router.get("/flags", summary="The flags queue page")
def show_flags(request: Request, session: SessionDep, run: OptionalRunDep, reason: ReasonQ = None,
               dataset: DatasetQ = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1):
    """Every flagged clip, newest change first, with filters, play buttons, edit and clear."""
    ds = _dataset(session, dataset)
    ref = ds.id if ds else None
    counts = fl.count_flags(session, ref)
    total = counts[reason] if reason else counts["total"]
    pages = max(1, -(-total // PAGE_SIZE))
    rows = fl.list_flags(session, ref, reason, limit=PAGE_SIZE, offset=(min(page, pages) - 1) * PAGE_SIZE)
    datasets = sorted(ready_datasets(session), key=lambda d: d.name)
    return render(request, "flags.html", run=run, flags=rows, counts=counts, reason=reason, dataset=ds,
                  datasets=datasets, page=min(page, pages), pages=pages, total=total,
                  labels=correctable_labels(session, ds))


@router.get("/api/flags", summary="The flags queue as JSON")
def api_flags(session: SessionDep, reason: ReasonQ = None, dataset: DatasetQ = None,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
              offset: Offset = 0) -> dict:
    """Flags, newest change first: ``{total, counts, flags: [...]}`` (``total`` after the reason filter)."""
    ds = _dataset(session, dataset)
    ref = ds.id if ds else None
    counts = fl.count_flags(session, ref)
    return {"total": counts[reason] if reason else counts["total"], "counts": counts,
            "flags": fl.list_flags(session, ref, reason, limit=limit, offset=offset)}


def _export(session, fmt: str, dataset: str | None, reason: str | None) -> Response:
    ds = _dataset(session, dataset)
    text = fl.export_flags(session, fmt, ds.id if ds else None, reason)
    name = "earmark-flags" + (f"-{ds.id}" if ds else "") + (f"-{reason}" if reason else "") + f".{fmt}"
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(text.encode("utf-8"), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/flags/export.csv", summary="Export the flags as CSV")
def export_csv(session: SessionDep, dataset: DatasetQ = None, reason: ReasonQ = None):
    """dataset, path, label, reason, corrected_label, note, author, time (ISO 8601 UTC), sorted by path."""
    return _export(session, "csv", dataset, reason)


@router.get("/flags/export.json", summary="Export the flags as JSON")
def export_json(session: SessionDep, dataset: DatasetQ = None, reason: ReasonQ = None):
    """``{"format": "earmark-flags", "version": 1, "flags": [...]}``, one flag per line."""
    return _export(session, "json", dataset, reason)


@router.post("/flags/import", summary="Import flags from an export file (all rows or none)")
@router.post("/api/flags/import", include_in_schema=False)
def import_flags(session: SessionDep, settings: SettingsDep,
                       file: Annotated[UploadFile, File(description="a CSV or JSON export file")],
                       dataset: Annotated[str | None, Form(max_length=200)] = None,
                       author: Annotated[str | None, Form(max_length=100)] = None):
    """Validate the whole file, then upsert every flag in one transaction; 422 with line numbers otherwise."""
    # A plain def: FastAPI runs it in its thread pool, so a large import never blocks the event loop.
    data = file.file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise EarmarkError("the file is larger than 50 MB", hint="split it and import the parts", status=413)
    name = (file.filename or "").lower()
    fmt = "json" if name.endswith(".json") else "csv" if name.endswith(".csv") else None
    try:
        res = fl.import_flags(session, data, fmt, dataset or None,
                              default_author=(author or "").strip() or settings.user)
    except ImportRejected as exc:
        return JSONResponse(exc.as_dict(), status_code=422)
    return {"rows": res.rows, "created": res.created, "updated": res.updated, "datasets": res.datasets}
