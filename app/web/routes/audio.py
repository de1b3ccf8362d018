"""Media by clip id: the WAV (with HTTP Range), the spectrogram and the waveform images."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store.models import Clip, Dataset
from app.web import media
from app.web.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/media", tags=["media"])
ClipId = Annotated[int, Path(ge=1, description="the clip's id")]
_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")
IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400"}


def _clip_and_file(session: Session, clip_id: int):
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"no clip {clip_id}", hint="clip ids come from /api/clips")
    dataset = session.get(Dataset, clip.dataset_id)
    return clip, media.clip_file(dataset, clip)


def _cache_key(clip: Clip) -> str:
    return clip.content_hash if _HEX.match(clip.content_hash or "") else f"clip{clip.id:012d}"


@router.get("/clips/{clip_id}/audio.wav", summary="The clip's WAV file (HTTP Range supported)")
def stream_audio(clip_id: ClipId, request: Request, session: SessionDep):
    """The WAV bytes; ``Range: bytes=a-b`` gives a 206 with ``Content-Range``; an unusable range a 416."""
    _, path = _clip_and_file(session, clip_id)
    size = path.stat().st_size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    try:
        span = media.parse_range(request.headers.get("range"), size)
    except media.RangeNotSatisfiable as exc:
        body = exc.as_dict()
        return JSONResponse(body, status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is None:
        return Response(path.read_bytes(), media_type="audio/wav", headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(media.read_range(path, start, end), status_code=206, media_type="audio/wav", headers=headers)


@router.get("/clips/{clip_id}/spectrogram.png", summary="The clip's log-mel spectrogram")
def show_spectrogram(clip_id: ClipId, session: SessionDep, settings: SettingsDep,
                     size: Annotated[Literal["small", "large"], Query(description="small or large")] = "large"):
    """A PNG rendered with numpy + Pillow and cached on disk."""
    clip, path = _clip_and_file(session, clip_id)
    png = media.spectrogram_png(path, _cache_key(clip), size, settings.cache_dir)
    return Response(png, media_type="image/png", headers=IMAGE_HEADERS)


@router.get("/clips/{clip_id}/waveform.png", summary="The clip's waveform")
def show_waveform(clip_id: ClipId, session: SessionDep, settings: SettingsDep):
    """A PNG of min/max per pixel column, cached on disk."""
    clip, path = _clip_and_file(session, clip_id)
    return Response(media.waveform_png(path, _cache_key(clip), settings.cache_dir), media_type="image/png",
                    headers=IMAGE_HEADERS)
