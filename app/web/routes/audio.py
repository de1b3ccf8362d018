"""Media by clip id: the WAV (with HTTP Range), the spectrograms and the waveform images."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.store.datasets import get_dataset
from app.store.models import Clip
from app.web import media
from app.web.deps import ClipDep, OptionalRunDep, SessionDep, SettingsDep

router = APIRouter(prefix="/media", tags=["media"])
_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")
IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400"}
AUDIO_TYPES = {".flac": "audio/flac", ".ogg": "audio/ogg"}  # the file as stored (native rate); else WAV


def _file(session: Session, clip: Clip):
    return media.clip_file(get_dataset(session, clip.dataset_id), clip)


def _cache_key(clip: Clip) -> str:
    return clip.content_hash if _HEX.match(clip.content_hash or "") else f"clip{clip.id:012d}"


@router.get("/clips/{clip_id}/audio.wav", summary="The clip's WAV file (HTTP Range supported)")
def stream_audio(clip: ClipDep, request: Request, session: SessionDep):
    """The WAV bytes; ``Range: bytes=a-b`` gives a 206 with ``Content-Range``; an unusable range a 416."""
    path = _file(session, clip)
    size = path.stat().st_size
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    media_type = AUDIO_TYPES.get(path.suffix.lower(), "audio/wav")
    try:
        span = media.parse_range(request.headers.get("range"), size)
    except media.RangeNotSatisfiable as exc:
        body = exc.as_dict()
        return JSONResponse(body, status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    if span is None:
        return Response(path.read_bytes(), media_type=media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(media.read_range(path, start, end), status_code=206, media_type=media_type, headers=headers)


@router.get("/clips/{clip_id}/spectrogram.png", summary="The clip's log-mel spectrogram")
def show_spectrogram(clip: ClipDep, session: SessionDep, settings: SettingsDep, run: OptionalRunDep,
                     size: Annotated[Literal["small", "large"], Query(description="small or large")] = "large",
                     view: Annotated[Literal["display", "model"], Query(
                         description="display: 64 mel bands, 32 ms window, for the eye (not the model's input); "
                                     "model: the run's own front end (what its model hears)")] = "display"):
    """A PNG rendered with numpy + Pillow and cached on disk."""
    fe = media.DISPLAY
    if view == "model":
        fe = media.model_front_end(run.config if run else None)
        if fe is None:
            raise EarmarkError("this run's model has no spectrogram front end",
                               detail="a raw-waveform model (m5) hears the samples themselves" if run else
                               "there is no run", hint="use view=display", status=422)
    png = media.spectrogram_png(_file(session, clip), _cache_key(clip), size, settings.cache_dir, fe)
    return Response(png, media_type="image/png", headers=IMAGE_HEADERS)


@router.get("/clips/{clip_id}/waveform.png", summary="The clip's waveform")
def show_waveform(clip: ClipDep, session: SessionDep, settings: SettingsDep):
    """A PNG of min/max per pixel column, cached on disk."""
    return Response(media.waveform_png(_file(session, clip), _cache_key(clip), settings.cache_dir), media_type="image/png",
                    headers=IMAGE_HEADERS)
