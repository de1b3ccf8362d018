"""Typed dependencies and the one page renderer every route module uses.

Use them as route parameters (FastAPI resolves them)::

    from app.web.deps import SessionDep, SettingsDep, RunDep, OptionalRunDep, render

    @router.get("/issues")
    def show_issues(request: Request, session: SessionDep, run: RunDep):
        return render(request, "issues.html", run=run, findings=...)

- ``SessionDep``: a SQLAlchemy ``Session`` for this request (closed afterwards; commit yourself).
- ``SettingsDep``: the ``app.config.Settings`` the app was built with.
- ``RunDep``: the ``Run`` named by the ``run`` query parameter (id or name), or the newest
  complete run when absent; a 404 problem when it does not exist or there are no runs.
- ``OptionalRunDep``: the same, but ``None`` instead of an error when there are no runs.
- ``ClipFilterDep``: the clip-list filters (split, label, pred, agreement, flag, finding, ranges of
  confidence/loss/cut-off, sort) validated from the query string, as an ``app.store.queries.ClipFilter``;
  ``filter_params(f)`` turns one back into query parameters.
- ``templates``: the ``Jinja2Templates`` object (autoescape on; never ``|safe`` on data, embed
  JSON with ``|tojson``).
- ``render(request, name, **ctx)``: renders ``templates/<name>`` with ``ctx`` plus ``nav`` (the
  persistent nav bar), ``runs`` (for the run selector), ``run`` (the current run, if passed),
  ``auth_enabled`` and ``csrf_header``. Templates extend ``base.html`` and fill the blocks
  ``title``, ``head``, ``content`` and ``scripts``.

Jinja globals available in every template: ``qs(request, **changes)`` gives the current URL with
query parameters changed (``None`` removes one) and ``url(path, **params)`` builds a URL with a
query string (``None`` values are dropped). State-changing requests are POSTs that must carry
the header ``X-Earmark-CSRF: 1``; in the browser use ``earmark.post(url, json)`` from app.js.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Depends, Query, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import NotFound
from app.flags import REASONS
from app.flags import vocabulary as flag_vocabulary
from app.pipeline.common import resolve_run
from app.store.models import Dataset, Run
from app.store.queries import ClipFilter

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"
STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
CSRF_HEADER = "X-Earmark-CSRF"


def url(path: str, **params) -> str:
    """``path`` with a query string of the non-empty ``params``."""
    clean = {k: v for k, v in params.items() if v is not None and v != ""}
    return f"{path}?{urlencode(clean)}" if clean else path


def qs(request: Request, **changes) -> str:
    """The current page's URL with some query parameters changed (``None`` drops one)."""
    params = dict(request.query_params)
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
    tpl.env.globals.update(url=url, qs=qs, csrf_header=CSRF_HEADER, flag_vocab=flag_vocabulary())
    tpl.env.filters.update(fmt=_fmt, pct=_pct)
    return tpl


templates = make_templates()


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, closed afterwards."""
    with request.app.state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def newest_complete_run(session: Session) -> Run | None:
    """The run pages show when the URL names none: the newest complete one (else the newest)."""
    run = session.scalars(select(Run).where(Run.status == "complete").order_by(Run.id.desc())).first()
    return run or session.scalars(select(Run).order_by(Run.id.desc())).first()


def _run_param(run: Annotated[str | None, Query(max_length=200, description="Run id or name; default: the newest "
                                                 "complete run.")] = None) -> str | None:
    return run.strip() if run and run.strip() else None


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


def run_choices(session: Session) -> list[dict]:
    """Runs for the selector, newest first: id, name, status and data set name."""
    rows = session.execute(
        select(Run.id, Run.name, Run.status, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id)
        .order_by(Run.id.desc()).limit(200)
    ).all()
    return [dict(id=i, name=n, status=s, dataset=d) for i, n, s, d in rows]


def render(request: Request, name: str, status_code: int = 200, **ctx):
    """Render a page with the shared context (nav, run selector, auth state) added."""
    state = request.app.state
    base = dict(nav=getattr(state, "nav", []), auth_enabled=bool(state.settings.token), run=None,
                runs=[], page_path=request.url.path)
    if "runs" not in ctx:
        try:
            with state.sessions() as session:
                base["runs"] = run_choices(session)
        except Exception:  # noqa: BLE001 - the error page must render even when the store is down
            base["runs"] = []
    base.update(ctx)
    return templates.TemplateResponse(request, name, base, status_code=status_code)


Split = Literal["train", "validation", "test"]
FlagState = Literal[("any", "none", *REASONS)]  # any, none, or a flag reason (app.flags)
Sort = Literal["loss", "-loss", "confidence", "-confidence", "cutoff", "-cutoff", "id"]


def get_clip_filter(
    split: Annotated[Split | None, Query(description="train, validation or test")] = None,
    label: Annotated[str | None, Query(max_length=100, description="the clip's label (as the run maps it)")] = None,
    pred: Annotated[str | None, Query(max_length=100, description="the predicted class")] = None,
    agreement: Annotated[Literal["agree", "disagree"] | None, Query(description="agree or disagree")] = None,
    flag: Annotated[FlagState | None, Query(description="any, none, or a flag reason")] = None,
    finding: Annotated[int | None, Query(ge=1, description="only the clips of this finding (Issues page)")] = None,
    conf_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    conf_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    loss_min: Annotated[float | None, Query(ge=0)] = None,
    loss_max: Annotated[float | None, Query(ge=0)] = None,
    cutoff_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    cutoff_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    sort: Annotated[Sort, Query(description="loss (highest first), -loss, confidence (lowest first), "
                                "-confidence, cutoff (highest first), -cutoff, id")] = "loss",
) -> ClipFilter:
    """The clip list's filters from the query string (FastAPI validates them: a bad one is a 422)."""
    return ClipFilter(split=split, label=label or None, pred=pred or None, agreement=agreement, flag=flag,
                      finding=finding, conf_min=conf_min, conf_max=conf_max, loss_min=loss_min, loss_max=loss_max,
                      cutoff_min=cutoff_min, cutoff_max=cutoff_max, sort=sort)


ClipFilterDep = Annotated[ClipFilter, Depends(get_clip_filter)]
FILTER_KEYS = ("split", "label", "pred", "agreement", "flag", "finding", "conf_min", "conf_max", "loss_min",
               "loss_max", "cutoff_min", "cutoff_max", "sort")


def filter_params(f: ClipFilter) -> dict:
    """The non-default filters of ``f`` as query parameters (to carry a list's context to a link)."""
    out = {k: getattr(f, k) for k in FILTER_KEYS if getattr(f, k) is not None}
    if out.get("sort") == "loss":
        out.pop("sort")
    return out
