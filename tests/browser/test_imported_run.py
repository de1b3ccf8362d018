"""An imported run in a real Chromium: the overview says where it came from, its coverage and what it
lacks; its clip list and confusion matrix show its predictions, with no console errors."""

from __future__ import annotations

import numpy as np
import pytest

from app.config import Settings
from app.pipeline.import_run import import_run
from app.run_files import from_arrays
from app.store.db import open_store
from app.store.predictions import read_outputs
from app.store.runs import get_run
from tests.browser.conftest import screenshot, serve_in_thread
from tests.factories import make_run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def imported_site(tmp_path_factory):
    """(base URL, full import id, reduced import id) over a store with one trained-like run and two imports."""
    root = tmp_path_factory.mktemp("imported")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    with store.session() as s:
        fx = make_run(s, root / "audio", n_clips=90)
        base = read_outputs(s, get_run(s, fx.run_id))
    paths = np.asarray(base.paths, dtype=object)
    probs = base.probs.copy()
    probs[::4] = np.roll(probs[::4], 1, axis=1)
    full = import_run(store, from_arrays(paths, classes=fx.labels, probs=probs, embeddings=base.embeddings,
                                         model="their-kws", model_version="2.0"), fx.dataset_id, "their-kws")
    keep = np.arange(90) % 3 != 0
    reduced = import_run(store, from_arrays(paths[keep], classes=fx.labels, pred=base.pred[keep],
                                            confidence=base.confidence[keep]), fx.dataset_id, "their-reduced")
    store.engine.dispose()
    with serve_in_thread(settings) as url:
        yield url, full.run_id, reduced.run_id


def test_imported_runs_overview_and_clip_list(imported_site, page):
    base, full, reduced = imported_site
    page.goto(base + "/", wait_until="networkidle")
    row = page.locator(f"tr[data-run-row='{full}']")
    assert "their-kws" in row.inner_text() and "2.0" in row.inner_text()
    assert "coverage 90 of 90 clips (100.0%)" in row.locator("[data-coverage]").inner_text()
    small = page.locator(f"tr[data-run-row='{reduced}']")
    assert "coverage 60 of 90 clips (66.7%)" in small.locator("[data-coverage]").inner_text()
    assert "30 without a prediction" in small.inner_text()
    assert "imported without probabilities" in small.locator("[data-missing]").inner_text()
    screenshot(page, "imported-overview")

    page.goto(base + f"/clips?run={full}&agreement=disagree", wait_until="networkidle")
    rows = page.locator("tr[data-clip]")
    assert rows.count() > 0
    screenshot(page, "imported-clips")
    page.goto(base + f"/clips?run={reduced}", wait_until="networkidle")
    assert page.locator("tr[data-clip]").count() > 0
    page.goto(base + f"/confusion?run={reduced}", wait_until="networkidle")
    assert page.errors == []
