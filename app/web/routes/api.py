"""The read side of the JSON API under ``/api``: everything the pages show.

Runs are named by the ``run`` query parameter (id or name; default the newest complete run), the
same as on the pages, so a page URL and its API URL take the same query string.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from app.errors import EarmarkError, NotFound
from app.limits import MAX_ID
from app.store import datasets as datasets_store
from app.store.runs import resolve_run, runs_of
from app.web import views
from app.web.deps import CacheDep, ClipDep, ClipFilterDep, DbId, PageNo, PerPage, RunDep, SessionDep, Split

router = APIRouter(prefix="/api", tags=["read"])
_IDS = re.compile(r"^[0-9]{1,10}(,[0-9]{1,10}){0,499}$")  # ASCII digits; each id also <= MAX_ID


@router.get("/datasets", summary="Ready data sets with their class distribution and leakage")
def list_datasets(session: SessionDep, cache: CacheDep) -> list[dict]:
    """Every ready data set, newest first."""
    return [views.dataset_summary(session, cache, ds) for ds in datasets_store.ready_datasets(session)]


@router.get("/datasets/{dataset_id}", summary="One data set, with its first 200 ingest rejects")
def show_dataset(dataset_id: DbId, session: SessionDep, cache: CacheDep) -> dict:
    """A data set's summary plus rejects."""
    ds = datasets_store.get_dataset(session, dataset_id)
    if ds is None or ds.status != "ready":
        raise NotFound(f"no data set {dataset_id}", hint="list them at /api/datasets")
    out = views.dataset_summary(session, cache, ds)
    out["rejects"] = [dict(path=r.path, reason=r.reason, detail=r.detail)
                      for r in datasets_store.rejects(session, ds.id)]
    return out


@router.get("/runs", summary="Runs with per-split accuracy and macro-F1")
def list_runs(session: SessionDep) -> list[dict]:
    """Every run, newest first."""
    return [views.run_summary(r) for r in runs_of(session)]


@router.get("/runs/{run_ref}", summary="One run, with its full metrics (per class, confusion)")
def show_run(run_ref: Annotated[str, Path(max_length=200, description="run id, name or 'latest'")],
             session: SessionDep) -> dict:
    """A run's summary plus ``Run.metrics`` and its training config."""
    run = resolve_run(session, run_ref)
    out = views.run_summary(run)
    out.update(full_metrics=run.metrics or {}, config=run.config or {}, embedding_dim=run.embedding_dim)
    return out


@router.get("/confusion", summary="Confusion matrix of a run on one split")
def get_confusion(session: SessionDep, cache: CacheDep, run: RunDep,
                  split: Annotated[Split | None, Query(description="default: validation")] = None) -> dict:
    """Rows are labels, columns predictions; ``counts`` and row-normalised ``rates``."""
    return views.confusion_data(session, cache, run, split or views.default_split(run))


@router.get("/clips", summary="The clip list: filtered, sorted, paginated")
def list_clips_api(session: SessionDep, cache: CacheDep, run: RunDep, f: ClipFilterDep,
                   page: PageNo = 1, per_page: PerPage = 50,
                   ids: Annotated[str | None, Query(max_length=7000, description="comma-separated clip ids "
                                                    "(at most 500): exactly these clips, in this order")] = None
                   ) -> dict:
    """One page of clips (``ids`` bypasses the filters and returns those clips)."""
    if ids is not None:
        if not _IDS.match(ids) or max(int(i) for i in ids.split(",")) > MAX_ID:
            raise EarmarkError("ids must be up to 500 comma-separated clip ids", detail=f"got {ids[:80]!r}",
                               status=422)
        return views.clips_by_id(session, run, [int(i) for i in ids.split(",")])
    return views.clip_page(session, cache, run, f, page, per_page)


@router.get("/clips/{clip_id}", summary="One clip: metadata, signal, prediction, top-5, neighbours, speaker")
def show_clip_api(clip: ClipDep, session: SessionDep, cache: CacheDep, run: RunDep) -> dict:
    """Everything the clip page shows."""
    return views.clip_detail(session, cache, run, clip)


@router.get("/cloud", summary="Legend and layout of the embedding cloud's binary point data")
def get_cloud_meta(session: SessionDep, cache: CacheDep, run: RunDep) -> dict:
    """Vocabulary, ranges and the byte layout of ``/api/cloud.bin``."""
    meta, body = cache.cloud(session, run, with_flag_column=False)
    return dict(meta, bytes=len(body))


@router.get("/cloud.bin", summary="Every projected point, as compact binary columns",
            response_class=Response, responses={200: {"content": {"application/octet-stream": {}}}})
def get_cloud_points(session: SessionDep, cache: CacheDep, run: RunDep) -> Response:
    """16 bytes a point (ids, quantised x/y, codes); the layout is in ``/api/cloud``."""
    _, body = cache.cloud(session, run)
    return Response(body, media_type="application/octet-stream", headers={"Cache-Control": "no-store"})
