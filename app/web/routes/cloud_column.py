"""``/api/cloud/column``: colour the embedding cloud by any metadata column, signal stat or the speaker
(codes aligned with ``/api/cloud.bin``'s points; the encoding is in ``app.store.cloud_column``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.web.deps import CacheDep, RunDep, SessionDep

router = APIRouter(prefix="/api", tags=["read"])


@router.get("/cloud/column", summary="One metadata column, signal stat or the speaker, per cloud point")
def get_cloud_column(session: SessionDep, cache: CacheDep, run: RunDep,
                     name: Annotated[str, Query(max_length=200, description="meta.<column>, stat.<stat> "
                                                "(rms_dbfs, duration_s, lead_silence_ms, end_energy_db, "
                                                "clipped_frac) or speaker")]) -> dict:
    """Text and boolean columns: ``u1`` codes (0 none, 1..k ``names``, k+1 other); number columns:
    ``u2`` (0 none, else quantised over ``range``); ``data`` is the codes, base64, little-endian."""
    return cache.cloud_column(session, run, name)
