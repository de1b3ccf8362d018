"""The clip page: player, spectrograms (each captioned with what it is), waveform, metadata, top-5,
nearest clips, speaker, flag form."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.store.datasets import get_dataset
from app.store.flags import correctable_labels
from app.web import charts, media, urls, views
from app.web.deps import CacheDep, ClipDep, ClipFilterDep, RunDep, SessionDep, filter_params, render
from ml.analysis.cutoff import CUTOFF_THRESHOLD

router = APIRouter()


@router.get("/clips/{clip_id}")
def show_clip(clip: ClipDep, request: Request, session: SessionDep, cache: CacheDep, run: RunDep, f: ClipFilterDep):
    """The clip page; j/k move through the list it was opened from (its filters are in the query)."""
    detail = views.clip_detail(session, cache, run, clip)
    context = filter_params(f)
    prev_id, next_id, pos, total = views.position_in_list(session, cache, run, f, clip.id)
    dataset = get_dataset(session, run.dataset_id)
    labels = correctable_labels(session, dataset, run)  # what a flag may correct to (app.flags)
    axes = charts.clip_axes(detail["duration_s"], detail["sample_rate"],
                            {"display": media.DISPLAY, "model": media.model_front_end(run.config)})
    return render(
        request, "clip.html", run=run, clip=detail, labels=labels, pos=pos, total=total, axes=axes,
        cut_off_threshold=CUTOFF_THRESHOLD,
        prev_url=urls.clip_page(prev_id, run.id, **context) if prev_id else None,
        next_url=urls.clip_page(next_id, run.id, **context) if next_id else None,
        list_url=urls.clip_list(run.id, **context),
    )
