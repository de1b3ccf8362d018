"""The clip page: player, spectrogram, waveform, metadata, top-5, nearest clips, speaker, flag form."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Path, Request
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store import queries
from app.store.models import Clip, ClipScore, Dataset, Prediction, Run
from app.web import media
from app.web.deps import ClipFilterDep, RunDep, SessionDep, filter_params, render, url

router = APIRouter()
ClipId = Annotated[int, Path(ge=1, description="the clip's id")]
SPEAKER_LIMIT = 40


def top_classes(pred: Prediction | None, classes: list[str], k: int = 5) -> list[dict]:
    """The ``k`` most probable classes of a prediction: [{class, prob}]."""
    if pred is None or not pred.probs:
        return []
    probs = np.frombuffer(pred.probs, dtype="<f4")
    order = np.argsort(-probs)[:k]
    return [dict(cls=classes[i] if i < len(classes) else str(i), prob=float(probs[i])) for i in order]


def clip_detail(session: Session, run: Run, clip_id: int, cache: dict) -> dict:
    """Everything the clip page shows (also the API's answer for one clip)."""
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"no clip {clip_id}", hint="clip ids come from /api/clips")
    if clip.dataset_id != run.dataset_id:
        raise NotFound(f"clip {clip_id} is not in the data set of run #{run.id}",
                       hint="pick a run of this clip's data set in the run selector")
    dataset = session.get(Dataset, clip.dataset_id)
    pred = session.get(Prediction, (run.id, clip_id))
    score = session.get(ClipScore, (run.id, clip_id))
    frame = queries.run_frame(session, run, cache)
    neighbours = queries.nearest(session, frame, clip_id, k=10)
    speaker_ids: list[int] = []
    if clip.speaker:
        speaker_ids = list(session.scalars(
            select(Clip.id).where(and_(Clip.dataset_id == clip.dataset_id, Clip.speaker == clip.speaker,
                                       Clip.id != clip_id)).order_by(Clip.id).limit(SPEAKER_LIMIT)))
    # one query (and one flag lookup) for the clip, its neighbours and the speaker's clips
    rows = {r["id"]: r for r in queries.clip_rows(session, run, [clip_id, *[c for c, _ in neighbours], *speaker_ids])}
    row = dict(rows[clip_id])
    near = [dict(rows[c], similarity=s) for c, s in neighbours if c in rows]
    speaker = [rows[c] for c in speaker_ids if c in rows]
    row.update(
        dataset=dict(id=dataset.id, name=dataset.name), sample_rate=clip.sample_rate, n_samples=clip.n_samples,
        channels=clip.channels, utterance=clip.utterance, content_hash=clip.content_hash,
        signal=media.signal_stats(clip), top5=top_classes(pred, list(run.classes or [])),
        scores=None if score is None else dict(
            cutoff_score=score.cutoff_score, label_quality=score.label_quality, label_issue=score.label_issue,
            suggested_label=score.suggested_label, outlier_score=score.outlier_score, cluster=score.cluster,
            duplicate_of=score.duplicate_of),
        neighbors=near, speaker_clips=speaker,
        audio_url=f"/media/clips/{clip_id}/audio.wav",
        spectrogram_url=f"/media/clips/{clip_id}/spectrogram.png", waveform_url=f"/media/clips/{clip_id}/waveform.png",
    )
    return row


def neighbours_in_list(session: Session, run: Run, f, clip_id: int, cache: dict) -> tuple[int | None, int | None,
                                                                                            int | None, int]:
    """(previous id, next id, position, total) of ``clip_id`` in the list filtered by ``f``."""
    frame = queries.run_frame(session, run, cache)
    rows = queries.filter_rows(session, frame, run.dataset_id, f)
    me = frame.index_of(clip_id)
    hits = np.nonzero(rows == me)[0] if me is not None else []
    if not len(hits):
        return None, None, None, len(rows)
    pos = int(hits[0])
    prev_id = int(frame.clip_ids[rows[pos - 1]]) if pos > 0 else None
    next_id = int(frame.clip_ids[rows[pos + 1]]) if pos + 1 < len(rows) else None
    return prev_id, next_id, pos, len(rows)


@router.get("/clips/{clip_id}")
def show_clip(clip_id: ClipId, request: Request, session: SessionDep, run: RunDep, f: ClipFilterDep):
    """The clip page; j/k move through the list it was opened from (its filters are in the query)."""
    cache = request.app.state.cache
    detail = clip_detail(session, run, clip_id, cache)
    context = filter_params(f)
    prev_id, next_id, pos, total = neighbours_in_list(session, run, f, clip_id, cache)
    dataset = session.get(Dataset, run.dataset_id)
    labels = sorted(set(dataset.labels or []) | set(run.classes or []))
    return render(
        request, "clip.html", run=run, clip=detail, labels=labels, pos=pos, total=total,
        prev_url=url(f"/clips/{prev_id}", run=run.id, **context) if prev_id else None,
        next_url=url(f"/clips/{next_id}", run=run.id, **context) if next_id else None,
        list_url=url("/clips", run=run.id, **context),
    )
