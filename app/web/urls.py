"""Every URL the web app hands out, built in one place.

Routes and templates call these functions (templates get them as the ``urls`` Jinja global); the
browser's scripts get ``js_templates()`` (in base.html, ``<script id="earmark-urls">``) and fill in
``{id}`` / ``{run}`` themselves, so no script spells out a path.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode


def with_query(path: str, **params) -> str:
    """``path`` with a query string of the non-empty ``params`` (a list or tuple is a repeated key)."""
    clean = {k: v for k, v in params.items() if v is not None and v != "" and v != [] and v != ()}
    return f"{path}?{urlencode(clean, doseq=True)}" if clean else path


# ---- pages -----------------------------------------------------------------------------------

def clip_page(clip_id: int, run_id: int | None = None, **filters) -> str:
    """The clip page (``filters`` carry the list it was opened from, for j/k)."""
    return with_query(f"/clips/{int(clip_id)}", run=run_id, **filters)


def clip_list(run_id: int | None = None, **filters) -> str:
    """The clip list, filtered."""
    return with_query("/clips", run=run_id, **filters)


def clip_list_csv(run_id: int | None = None, **filters) -> str:
    """Every clip of the filtered list, as CSV."""
    return with_query("/clips.csv", run=run_id, **filters)


def cloud_page(run_id: int | None = None, finding: int | None = None) -> str:
    """The cloud page (optionally highlighting a finding's clips)."""
    return with_query("/cloud", run=run_id, finding=finding)


def slices_page(run_id: int | None = None, split: str | None = None, family: str | None = None) -> str:
    """The slices page of a run (one split, or ``split="all"``; ``family`` opens one family)."""
    return with_query("/slices", run=run_id, split=split, family=family)


def finding_clips(run_id: int, finding_id: int) -> str:
    """The clip list of one finding."""
    return clip_list(run_id, finding=finding_id)


# ---- media -----------------------------------------------------------------------------------

def audio(clip_id: int) -> str:
    """The clip's WAV (HTTP Range supported)."""
    return f"/media/clips/{int(clip_id)}/audio.wav"


def spectrogram(clip_id: int, size: str = "large", view: str | None = None, run_id: int | None = None) -> str:
    """The clip's spectrogram image; ``view="model"`` is run ``run_id``'s own input features."""
    return with_query(f"/media/clips/{int(clip_id)}/spectrogram.png", size=size, view=view, run=run_id)


def waveform(clip_id: int) -> str:
    """The clip's waveform image."""
    return f"/media/clips/{int(clip_id)}/waveform.png"


def media(clip_id: int) -> dict[str, str]:
    """Every media URL of a clip, as the clip page and the API hand them out."""
    return dict(audio_url=audio(clip_id), spectrogram_url=spectrogram(clip_id), waveform_url=waveform(clip_id))


# ---- JSON API --------------------------------------------------------------------------------

def api_clip(clip_id: int, run_id: int | None = None) -> str:
    """One clip as JSON."""
    return with_query(f"/api/clips/{int(clip_id)}", run=run_id)


def api_cloud(run_id: int) -> str:
    """The cloud's legend."""
    return with_query("/api/cloud", run=run_id)


def api_cloud_bin(run_id: int) -> str:
    """The cloud's binary points."""
    return with_query("/api/cloud.bin", run=run_id)


def api_slices(run_id: int, split: str | None = None) -> str:
    """The slices of a run as JSON."""
    return with_query("/api/slices", run=run_id, split=split)


def api_cloud_column(run_id: int, name: str | None = None) -> str:
    """One column to colour the cloud by (a metadata column or a signal stat), aligned with its points."""
    return with_query("/api/cloud/column", run=run_id, name=name)


def api_clips_by_id(run_id: int | str, ids: str, per_page: int = 200) -> str:
    """Exactly these clips (comma-separated ids) of a run, as one page of the list."""
    return with_query("/api/clips", run=run_id, per_page=per_page, ids=ids)


def api_flags_bulk() -> str:
    """Flag many clips at once (POST)."""
    return "/api/flags/bulk"


def api_flags() -> str:
    """The flags queue as JSON (with the counts per reason)."""
    return "/api/flags"


def flags_import() -> str:
    """Import a flags file (POST, multipart)."""
    return "/flags/import"


def api_flag(clip_id: int) -> str:
    """Set a clip's flag (POST)."""
    return f"/api/clips/{int(clip_id)}/flag"


def api_flag_clear(clip_id: int) -> str:
    """Clear a clip's flag (POST)."""
    return f"/api/clips/{int(clip_id)}/flag/clear"


def api_finding_flag(finding_id: int) -> str:
    """Flag a finding's clips (POST)."""
    return f"/api/findings/{int(finding_id)}/flag"


def js_templates() -> dict[str, str]:
    """URL templates for the browser: ``{id}`` is a clip (or finding) id, ``{run}`` a run id."""
    marker = 999_999_999_999  # an id no store reaches, replaced by the placeholder

    def t(url: str) -> str:
        return url.replace(str(marker), "{id}").replace(quote(str(marker)), "{id}")

    return dict(
        audio=t(audio(marker)), spectrogram=t(spectrogram(marker)), waveform=t(waveform(marker)),
        clip_page=t(clip_page(marker)) + "?run={run}", api_clip=t(api_clip(marker)) + "?run={run}",
        flag=t(api_flag(marker)), flag_clear=t(api_flag_clear(marker)), finding_flag=t(api_finding_flag(marker)),
        api_clips_by_id=api_clips_by_id("{run}", "{ids}").replace("%7B", "{").replace("%7D", "}"),
        flags_bulk=api_flags_bulk(), flags_import=flags_import(), api_flags=api_flags(), overview="/",
    )
