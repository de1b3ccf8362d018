"""Browser-test fixtures: a real uvicorn serving a factory-built SQLite store, and Debian's Chromium.

The server runs in a thread on a free port; Chromium is driven by Playwright. Without Chromium (or
Playwright) the tests are skipped locally and fail under CI (``tests.conftest.skip_or_fail``).
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.config import Settings
from app.store.db import open_store
from tests.conftest import skip_or_fail
from tests.factories import make_run

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required",
                 # WebGL (plotly scattergl) on the software rasteriser, since there is no GPU
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(settings: Settings):
    """Serve ``create_app(settings)`` with a real uvicorn on a free loopback port; yields the base URL."""
    import uvicorn

    from app.web.main import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_site(tmp_path_factory):
    """(base URL, fixture) of a uvicorn server over a fresh store with one 150-clip run."""
    root = tmp_path_factory.mktemp("site")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    engine, sessions = store.engine, store.sessions
    with sessions() as s:
        fx = make_run(s, root / "audio", n_clips=150)
    engine.dispose()
    with serve_in_thread(settings) as base:
        yield base, fx


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (the system one)."""
    if not CHROMIUM.exists():
        skip_or_fail(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and uncaught exceptions in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda msg: pg.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.errors.append(f"pageerror: {exc}"))
    yield pg
    context.close()


def wait_for_js(pg, expression: str, timeout: float = 30_000) -> None:
    """Wait until the JS ``expression`` is truthy, polling with ``pg.evaluate``.

    Playwright's ``wait_for_function`` compiles a string predicate with ``eval`` inside the page,
    which the app's Content-Security-Policy forbids (no 'unsafe-eval'); ``evaluate`` goes through
    the DevTools protocol and is not subject to it.
    """
    deadline = time.monotonic() + timeout / 1000
    while not pg.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout / 1000:.0f} s: {expression}")
        pg.wait_for_timeout(50)


def screenshot(pg, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path
