"""``create_app(settings)``: the FastAPI application, built by a factory (nothing at import time).

It opens the store, mounts ``static/`` and the plotly.js that the plotly package ships (served at
``/static/vendor/plotly.min.js``; no CDN anywhere), includes every module of ``app.web.routes``
that has a ``router`` (its optional ``NAV = (title, path, order)`` goes into the nav bar), and
installs the one error handler: problems render ``templates/error.html`` for pages and JSON
``{title, detail, hint, status}`` under ``/api`` and ``/media``.

Run it with ``earmark serve`` or ``uvicorn --factory app.web.main:app_from_env``.
"""

from __future__ import annotations

import gc
import importlib
import logging
import pkgutil
import threading
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import EarmarkError
from app.store.cache import RunCache
from app.store.db import open_store
from app.web import routes as routes_pkg
from app.web.body_guard import JsonBodyGuard
from app.web.deps import STATIC_DIR, render
from app.web.security import guard

log = logging.getLogger(__name__)


# Appended to the served bundle: plotly.js 4 shows a "Share chart" button (showSendToCloud) that
# uploads the figure to cloud.plotly.com, and a logo linking to plotly.com. Off for every chart.
PLOTLY_LOCAL_ONLY = (b'\n;Plotly.setPlotConfig({showSendToCloud: false, displaylogo: false, '
                     b'plotlyServerURL: "", watermark: false});\n')


def plotly_js_path() -> Path:
    """The plotly.min.js bundled with the installed plotly Python package."""
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts)


def _problem(request: Request, title: str, detail: str, hint: str, status: int):
    path = request.url.path
    if path.startswith(("/api", "/media")) or path == "/openapi.json":
        return JSONResponse({"title": title, "detail": detail, "hint": hint, "status": status}, status_code=status)
    return render(request, "error.html", status_code=status, title=title, detail=detail, hint=hint, status=status)


def internal_error(request: Request, exc: BaseException):
    """The 500 answer: a generic message and an error id; the details go to the server log only.

    The body never holds the exception text: on PostgreSQL it carries the SQL and its bound
    parameters (a submitted note, say).
    """
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc)
    return _problem(request, "internal error", f"something went wrong on the server (error id {error_id})",
                    f"this is a bug in earmark; the server log has the details under {error_id}", 500)


class CatchUnexpected:
    """ASGI middleware: answer an unhandled error with ``internal_error`` and swallow it.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then closes the
    keep-alive socket without ``Connection: close``, so the client's next request on it fails.
    Swallowing the error here keeps the connection usable. An error after the answer has begun
    cannot be answered again; it propagates and the connection is closed.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:  # noqa: BLE001 - every unhandled error becomes one logged 500
            if started:
                raise
            await internal_error(Request(scope, receive), exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """One rendering for every problem: EarmarkError, 404s and 422s, and unexpected failures."""

    @app.exception_handler(EarmarkError)
    async def _earmark_error(request: Request, exc: EarmarkError):
        return _problem(request, exc.title, exc.detail, exc.hint, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            detail = exc.detail if exc.detail != "Not Found" else f"nothing at {request.url.path}"
            return _problem(request, "not found", str(detail), "check the address, or start from the overview", 404)
        return _problem(request, str(exc.detail), "", "", exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return _problem(request, "invalid request", _describe_validation(exc),
                        "fix the parameter named above and try again", 422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # Reached only for errors outside the routes (in a middleware); Starlette re-raises after this
        # answer and uvicorn then drops the socket, so tell the client not to reuse it.
        response = internal_error(request, exc)
        response.headers["Connection"] = "close"
        return response

    app.add_middleware(CatchUnexpected)  # innermost: a route's error answers 500 and keeps the connection


async def drop_empty_params(request: Request, call_next):
    """Treat ``?a=&b=1`` as ``?b=1``: an empty field of a GET form means "not given", not a bad value."""
    raw = request.scope.get("query_string", b"")
    if raw and (b"=&" in raw or raw.endswith(b"=")):
        pairs = [p for p in raw.split(b"&") if p and not p.endswith(b"=")]
        request.scope["query_string"] = b"&".join(pairs)
    return await call_next(request)


def include_routes(app: FastAPI) -> list[dict]:
    """Include every ``app.web.routes`` module with a ``router``; returns the nav entries, sorted."""
    nav = []
    for info in sorted(pkgutil.iter_modules(routes_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes_pkg.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is None:
            continue
        app.include_router(router)
        entry = getattr(module, "NAV", None)
        if entry:
            title, path, order = entry
            nav.append(dict(title=title, path=path, order=order))
    nav.sort(key=lambda e: (e["order"], e["title"]))
    return nav


def warm_up(app: FastAPI) -> None:
    """Load the newest complete run's per-clip columns, embeddings and cloud payload (first page fast)."""
    from app.store.runs import newest_complete_run

    try:
        with app.state.store.session() as session:
            run = newest_complete_run(session)
            if run is None:
                return
            n = app.state.run_cache.warm(session, run)
            log.info("warmed run %s: %d clips", run.id, n)
    except Exception:  # noqa: BLE001 - warming is an optimisation; requests load lazily anyway
        log.exception("warm-up failed")
    finally:
        # Move everything alive now (modules, routes, templates, caches) out of the collector's view:
        # full collections then scan only per-request garbage, which keeps p95 latency flat.
        gc.collect()
        gc.freeze()
        app.state.warm = True


def create_app(settings: Settings, warm: bool = False) -> FastAPI:
    """Build the app for ``settings``: store opened (and migrated), routes included, errors handled.

    ``warm=True`` (what ``earmark serve`` uses) loads the newest run's caches in a background thread.
    """
    app = FastAPI(
        title="earmark",
        description="Error analysis for audio classifiers. State-changing requests are POSTs carrying "
                    "the header `X-Earmark-CSRF: 1`; with a token set, send `Authorization: Bearer <token>`.",
        version="0.1.0",
        docs_url=None,  # the default /docs loads Swagger UI from a CDN; routes/docs.py serves an offline page
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = open_store(settings)
    app.state.run_cache = RunCache()  # per-run frames, embeddings and cloud bodies (app.store.cache)
    app.state.warm = False

    plotly_js = plotly_js_path()
    bundle: list[bytes] = []

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_bundle():
        if not bundle:  # read once, on first use; the defaults keep every chart on this machine
            bundle.append(plotly_js.read_bytes() + PLOTLY_LOCAL_ONLY)
        return Response(bundle[0], media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.state.nav = include_routes(app)
    install_error_handlers(app)
    app.add_middleware(JsonBodyGuard)  # JSON bodies: size and nesting checked before anything parses them
    app.middleware("http")(drop_empty_params)
    app.middleware("http")(guard)  # added last, so it runs first
    if warm:
        threading.Thread(target=warm_up, args=(app,), name="earmark-warm-up", daemon=True).start()
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(Settings(), warm=True)
