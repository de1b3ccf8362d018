"""Typed dependencies and the one page renderer every route module uses.

Use them as route parameters (FastAPI resolves them)::

    from app.web.deps import SessionDep, SettingsDep, RunDep, OptionalRunDep, render

    @router.get("/issues")
    def show_issues(request: Request, session: SessionDep, run: RunDep):
        return render(request, "issues.html", run=run, findings=...)

- ``SessionDep``: a SQLAlchemy ``Session`` for this request (closed afterwards; commit yourself). Hand it
  to ``app.store`` functions or ``app.web.views``; a route never runs SQL itself.
- ``CacheDep``: the app's ``app.store.cache.RunCache`` (per-run frames, embeddings, cloud bodies).
- ``ClipDep`` / ``FindingDep``: the clip (``clip_id``) / finding (``fid``) named in the path, or the one
  ``ClipNotFound`` / ``FindingNotFound`` problem.
- ``SettingsDep``: the ``app.config.Settings`` the app was built with.
- ``RunDep``: the ``Run`` named by the ``run`` query parameter (id or name), or the newest
  complete run when absent; a 404 problem when it does not exist or there are no runs.
- ``OptionalRunDep``: the same, but ``None`` instead of an error when there are no runs.
- ``ClipFilterDep``: the clip-list filters (split, label, pred, agreement, flag, finding, audio
  quality, ranges of confidence/loss/cut-off, sort) validated from the query string, as an ``app.store.filters.ClipFilter``;
  ``filter_params(f)`` turns one back into query parameters.
- ``templates``: the ``Jinja2Templates`` object (autoescape on; never ``|safe`` on data, embed
  JSON with ``|tojson``).
- ``render(request, name, **ctx)``: renders ``templates/<name>`` with ``ctx`` plus ``nav`` (the
  persistent nav bar), ``runs`` (for the run selector), ``run`` (the current run, if passed),
  ``auth_enabled`` and ``csrf_header``. Templates extend ``base.html`` and fill the blocks
  ``title``, ``head``, ``content`` and ``scripts``. The run selector is read with the request's own
  session; only a page without one (an error page) opens a session for it.

Jinja globals available in every template: ``qs(request, **changes)`` gives the current URL with
query parameters changed (``None`` removes one), ``url(path, **params)`` builds a URL with a
query string (``None`` values are dropped), and ``urls`` is ``app.web.urls`` (every URL the app
hands out; ``urls.js_templates()`` reaches the scripts through base.html); ``score_help`` is
``app.measured.score_help`` (what each score means and its real-speech figures: tooltips and the guide). State-changing requests are POSTs that must carry
the header ``X-Earmark-CSRF: 1``; in the browser use ``earmark.post(url, json)`` from app.js.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.templating import Jinja2Templates
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import NotFound
from app.flags import REASONS
from app.flags import vocabulary as flag_vocabulary
from app.limits import MAX_ID, check_text
from app.measured import score_help
from app.store.cache import RunCache
from app.store.clips import get_clip
from app.store.filters import ClipFilter, condition_params, parse_conditions
from app.store.findings import get_finding
from app.store.models import Clip, Finding, Run
from app.store.runs import newest_complete_run, resolve_run, run_choices, run_state
from app.web import urls
from app.web.urls import with_query as url
from ml.analysis.quality import FINDINGS as QUALITY_FINDINGS

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
CSRF_HEADER = "X-Earmark-CSRF"


def qs(request: Request, **changes) -> str:
    """The current page's URL with some query parameters changed (``None`` drops one); repeated keys stay."""
    params: dict = {}
    for key, value in request.query_params.multi_items():
        params[key] = [*params[key], value] if isinstance(params.get(key), list) else \
            [params[key], value] if key in params else value
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return url(request.url.path, **params)


def _fmt(value, digits: int = 3) -> str:
    """Numbers for tables: fixed digits, an en dash for missing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def make_templates() -> Jinja2Templates:
    """The template environment (autoescaped) with earmark's globals and filters."""
    tpl = Jinja2Templates(directory=str(TEMPLATES_DIR))
    tpl.env.globals.update(url=url, urls=urls, js_urls=urls.js_templates(), qs=qs, csrf_header=CSRF_HEADER,
                           flag_vocab=flag_vocabulary(), run_state=run_state, score_help=score_help)
    tpl.env.filters.update(fmt=_fmt, pct=_pct)
    return tpl


templates = make_templates()


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards (``render`` reads the run selector with it too)."""
    with request.app.state.store.session() as session:
        request.state.session = session
        try:
            yield session
        finally:
            request.state.session = None


def get_run_cache(request: Request) -> RunCache:
    """The app's run cache."""
    return request.app.state.run_cache


# Row ids everywhere (path, query, JSON body): 1..MAX_ID, the range both databases can look up.
DbId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="a row id")]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a row id")]
IdField = Annotated[int, Field(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="rows to skip")]

SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CacheDep = Annotated[RunCache, Depends(get_run_cache)]


def get_clip_dep(clip_id: Annotated[int, PathParam(ge=1, le=MAX_ID, description="the clip's id")], session: SessionDep) -> Clip:
    """The clip named by ``clip_id`` in the path, or ``ClipNotFound``."""
    return get_clip(session, clip_id)


def get_finding_dep(fid: Annotated[int, PathParam(ge=1, le=MAX_ID, description="the finding's id")], session: SessionDep) -> Finding:
    """The finding named by ``fid`` in the path, or ``FindingNotFound``."""
    return get_finding(session, fid)


ClipDep = Annotated[Clip, Depends(get_clip_dep)]
FindingDep = Annotated[Finding, Depends(get_finding_dep)]


def _run_param(run: Annotated[str | None, Query(max_length=200, description="Run id or name; default: the newest "
                                                 "complete run.")] = None) -> str | None:
    return check_text(run.strip(), "run") if run and run.strip() else None


def get_optional_run(session: SessionDep, run: Annotated[str | None, Depends(_run_param)]) -> Run | None:
    """The run named in the query string, the newest complete run, or ``None`` when there is none."""
    if run is None:
        return newest_complete_run(session)
    return resolve_run(session, run)


def get_run(current: Annotated[Run | None, Depends(get_optional_run)]) -> Run:
    """Like ``get_optional_run`` but a 404 problem when there are no runs at all."""
    if current is None:
        raise NotFound("there are no runs yet", hint="train one with `earmark train --dataset NAME`, "
                       "then `earmark infer`")
    return current


OptionalRunDep = Annotated[Run | None, Depends(get_optional_run)]
RunDep = Annotated[Run, Depends(get_run)]


def _run_choices(request: Request, status_code: int) -> list:
    """The run selector's entries, read with the request's session. A page rendered without one (an
    error page: the request's session is closed by then) opens one, and shows no selector when the
    store itself is what failed."""
    session = getattr(request.state, "session", None)
    if session is not None:
        return run_choices(session)
    try:
        with request.app.state.store.session() as fresh:
            return run_choices(fresh)
    except SQLAlchemyError:
        if status_code < 400:
            raise
        return []  # the error page must render even when the store is down


def render(request: Request, name: str, status_code: int = 200, **ctx):
    """Render a page with the shared context (nav, run selector, auth state) added."""
    state = request.app.state
    base = dict(nav=getattr(state, "nav", []), auth_enabled=bool(state.settings.token), run=None,
                runs=[], page_path=request.url.path)
    if "runs" not in ctx:
        base["runs"] = _run_choices(request, status_code)
    base.update(ctx)
    return templates.TemplateResponse(request, name, base, status_code=status_code)


Split = Literal["train", "validation", "test"]
FlagState = Literal[("any", "none", *REASONS)]  # any, none, or a flag reason (app.flags)
Sort = Literal["loss", "-loss", "confidence", "-confidence", "cutoff", "-cutoff", "id"]
Quality = Literal[QUALITY_FINDINGS]  # clipped, too_quiet, dc_offset, silent, upsampled


def get_clip_filter(
    request: Request,
    split: Annotated[Split | None, Query(description="train, validation or test")] = None,
    label: Annotated[str | None, Query(max_length=100, description="the clip's label (as the run maps it)")] = None,
    pred: Annotated[str | None, Query(max_length=100, description="the predicted class")] = None,
    agreement: Annotated[Literal["agree", "disagree"] | None, Query(description="agree or disagree")] = None,
    flag: Annotated[FlagState | None, Query(description="any, none, or a flag reason")] = None,
    finding: Annotated[int | None, Query(ge=1, le=MAX_ID, description="only the clips of this finding "
                                                                  "(Issues page)")] = None,
    conf_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    conf_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    loss_min: Annotated[float | None, Query(ge=0)] = None,
    loss_max: Annotated[float | None, Query(ge=0)] = None,
    cutoff_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    cutoff_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    sort: Annotated[Sort, Query(description="loss (highest first), -loss, confidence (lowest first), "
                                "-confidence, cutoff (highest first), -cutoff, id")] = "loss",
    q: Annotated[str | None, Query(max_length=200, description="text in the clip's path or label, any case")] = None,
    quality: Annotated[Quality | None, Query(description="only clips with this audio-quality defect: clipped, "
                                             "too_quiet, dc_offset, silent or upsampled (from the stats ingest "
                                             "stored; no analyze needed)")] = None,
) -> ClipFilter:
    """The clip list's filters from the query string (FastAPI validates them: a bad one is a 422).

    Conditions on metadata, signal stats and speakers come as ``meta.<name>=value``,
    ``meta.<name>.not=value`` (repeatable), ``meta.<name>.missing=1``, ``meta.<name>.min=x`` /
    ``.below=y`` (a range ``[x, y)``), ``stat.<name>.min`` / ``.below`` / ``.missing``, and ``speaker=``
    (``app.store.filters.parse_conditions``)."""
    return ClipFilter(split=split, label=label or None, pred=pred or None, agreement=agreement, flag=flag,
                      finding=finding, conf_min=conf_min, conf_max=conf_max, loss_min=loss_min, loss_max=loss_max,
                      cutoff_min=cutoff_min, cutoff_max=cutoff_max, sort=sort,
                      columns=parse_conditions(request.query_params.multi_items()),
                      q=check_text(q.strip(), "search text") if q and q.strip() else None, quality=quality)


ClipFilterDep = Annotated[ClipFilter, Depends(get_clip_filter)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000, description="page number, from 1")]
PerPage = Annotated[int, Query(ge=10, le=200, description="rows per page")]
FILTER_KEYS = ("split", "label", "pred", "agreement", "flag", "finding", "conf_min", "conf_max", "loss_min",
               "loss_max", "cutoff_min", "cutoff_max", "sort", "q", "quality")


def filter_params(f: ClipFilter) -> dict:
    """The non-default filters of ``f`` as query parameters (to carry a list's context to a link)."""
    out = {k: getattr(f, k) for k in FILTER_KEYS if getattr(f, k) is not None}
    if out.get("sort") == "loss":
        out.pop("sort")
    for c in f.columns:
        out.update(condition_params(c))
    return out
