"""Scores explained where they are shown, in a real Chromium: the guide's entries with their real-speech
figures fit 1440 and 800 px windows, and a score's tooltip shows on keyboard focus (the browser shows a
title only on hover). Screenshots go to test-artifacts/screenshots/score-help-*.png."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.measured import score_help
from app.store.db import open_store
from tests.browser.conftest import SCREENSHOTS, serve_in_thread
from tests.factories import add_finding, make_run


@pytest.fixture(scope="module")
def help_site(tmp_path_factory):
    """(base URL, fixture) of a server over a 120-clip run with a cut-off issue."""
    root = tmp_path_factory.mktemp("score-help")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    with store.sessions() as s:
        fx = make_run(s, root / "audio", n_clips=120)
        add_finding(s, fx.run_id, fx.clip_ids[10:13],
                    description="speech energy is still high in the last 50 ms")
        s.commit()
    store.engine.dispose()
    with serve_in_thread(settings) as base:
        yield base, fx


def _page(browser, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    return context, pg


def _shot(pg, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"score-help-{name}.png"))


@pytest.mark.parametrize("width", [1440, 800])
def test_guide_entries_show_their_figures_and_fit(browser, help_site, width):
    base, _ = help_site
    context, pg = _page(browser, width)
    try:
        pg.goto(base + "/guide#scores", wait_until="networkidle")
        _shot(pg, f"guide-scores-{width}")
        table = pg.locator("#cutoff-score .measured-table")
        assert table.is_visible()
        head = score_help.rows_for("cutoff-score")[0]
        assert str(head.precision[0]) in table.inner_text()
        table.scroll_into_view_if_needed()
        pg.evaluate("document.querySelector('#cutoff-score .measured').scrollIntoView()")
        _shot(pg, f"guide-figures-{width}")
        pg.evaluate("document.getElementById('audio-quality').scrollIntoView()")
        _shot(pg, f"guide-quality-{width}")
        # nothing wider than the window: a wide table scrolls inside its box
        assert pg.evaluate("document.documentElement.scrollWidth") <= width
        assert pg.errors == []
    finally:
        context.close()


@pytest.mark.parametrize("width", [1440, 800])
def test_a_score_tooltip_shows_on_keyboard_focus(browser, help_site, width):
    base, fx = help_site
    context, pg = _page(browser, width)
    try:
        pg.goto(f"{base}/clips/{fx.clip_ids[11]}?run={fx.run_id}", wait_until="networkidle")
        link = pg.locator("a.score-help[href$='#cutoff-score']").first
        assert link.get_attribute("title") == score_help.tooltip("cutoff-score")
        link.focus()
        shown = pg.evaluate("getComputedStyle(document.activeElement, '::after').content")
        assert "real speech" in shown
        box = link.bounding_box()
        pg.evaluate(f"window.scrollTo(0, {max(0, box['y'] - 200)})")
        _shot(pg, f"clip-tooltip-{width}")
        pg.goto(f"{base}/issues?run={fx.run_id}", wait_until="networkidle")
        pg.locator("a.score-help[href$='#finding-score']").first.focus()
        _shot(pg, f"issues-tooltip-{width}")
        assert pg.errors == []
    finally:
        context.close()


def test_the_cloud_explains_the_score_it_colours_by(browser, help_site):
    base, fx = help_site
    context, pg = _page(browser, 1440)
    try:
        pg.goto(f"{base}/cloud?run={fx.run_id}&color=cutoff", wait_until="networkidle")
        pg.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
        help_link = pg.locator("#color-help a.score-help:visible")
        assert help_link.count() == 1 and help_link.get_attribute("href").endswith("#cutoff-score")
        assert help_link.get_attribute("title") == score_help.tooltip("cutoff-score")
        pg.select_option("#color-by", "loss")
        help_link = pg.locator("#color-help a.score-help:visible")
        assert help_link.count() == 1 and help_link.get_attribute("href").endswith("#loss")
        pg.select_option("#color-by", "label")
        assert pg.locator("#color-help a.score-help:visible").count() == 0
        pg.select_option("#color-by", "cutoff")
        pg.locator("#color-help a.score-help:visible").focus()
        _shot(pg, "cloud-1440")
        assert pg.errors == []
    finally:
        context.close()
