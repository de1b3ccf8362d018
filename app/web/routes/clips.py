"""The clip list: high-loss first by default, filtered and sorted by the query string, paginated;
``/clips.csv`` with the same query is every row of the filter as CSV."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.store.datasets import get_dataset
from app.store.filters import condition_params, describe_condition, filter_rows
from app.store.findings import get_finding
from app.store.flags import correctable_labels
from app.web import urls, views
from app.web.clip_export import stream_clip_csv
from app.web.deps import CacheDep, ClipFilterDep, PageNo, PerPage, RunDep, SessionDep, filter_params, render
from app.web.slice_views import colour_columns
from ml.analysis.quality import NEEDS as QUALITY_NEEDS

router = APIRouter()
NAV = ("Clips", "/clips", 30)


@router.get("/clips")
def list_clips(request: Request, session: SessionDep, cache: CacheDep, run: RunDep, f: ClipFilterDep,
               page: PageNo = 1, per_page: PerPage = 50):
    """The clip list page."""
    data = views.clip_page(session, cache, run, f, page, per_page)
    dataset = get_dataset(session, run.dataset_id)
    frame = cache.frame(session, run)
    labels = correctable_labels(session, dataset, run)  # what a flag may correct to (app.flags)
    finding_title = get_finding(session, f.finding).title if f.finding is not None else None
    context = filter_params(f)
    column_filters = []
    for c in f.columns:
        own = condition_params(c)
        column_filters.append(dict(label=describe_condition(c), params=own,
                                   in_form=c.column == "speaker" and c.value is not None and not (c.not_in or c.missing),
                                   remove_url=urls.clip_list(run.id, **{k: v for k, v in context.items() if k not in own})))
    # a quality filter that needs stats some clips lack says so, and how to measure them
    note = views.quality_note(session, dataset) if f.quality and QUALITY_NEEDS[f.quality] else None
    return render(request, "clips.html", run=run, f=f, data=data, vocab=frame.vocab, labels=labels,
                  context=context, column_filters=column_filters,
                  filter_columns=colour_columns(dataset.meta_columns or {}), finding_title=finding_title,
                  quality_options=views.quality_options(), quality_note=note,
                  quality_off_url=urls.clip_list(run.id, **{k: v for k, v in context.items() if k != "quality"}),
                  offset=(data["page"] - 1) * per_page)


@router.get("/clips.csv", summary="The filtered clip list as CSV: every row, not only one page")
def export_clips_csv(request: Request, session: SessionDep, cache: CacheDep, run: RunDep, f: ClipFilterDep):
    """The same filters and sort as ``/clips``; text cells formula-escaped (``app.web.clip_export``)."""
    if f.finding is not None:
        get_finding(session, f.finding)  # an unknown finding is a 404, not an empty file
    frame = cache.frame(session, run)
    rows = filter_rows(session, frame, run.dataset_id, f, views.filter_columns(session, cache, run, f),
                       views.filter_quality(session, cache, run, f))
    ids = [int(i) for i in frame.clip_ids[rows]]
    return StreamingResponse(stream_clip_csv(request.app.state.store, run.id, ids), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="earmark-run{run.id}-clips.csv"'})
