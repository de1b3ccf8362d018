"""The slices page in a real Chromium at 1440 and 800 px: no horizontal scroll, no console errors, a
click on a slice opens its clips; the cloud coloured by a metadata column. Screenshots go to
docs/screenshots/slices-1440.png and slices-800.png."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.pipeline.ingest import ingest
from app.store.db import open_store
from app.store.models import Clip, Dataset, Prediction
from tests.browser.conftest import serve_in_thread, wait_for_js
from tests.factories import make_run
from tests.ingest_helpers import clip, write_wav_fast

pytestmark = pytest.mark.browser
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off")
ACCENTS = ("british", "american", "indian", "german")


@pytest.fixture(scope="module")
def slices_site(tmp_path_factory):
    """A 480-clip manifest set (gender, accent, take) and a run that errs most on one accent."""
    root = tmp_path_factory.mktemp("slices")
    data = root / "set"
    rows = ["path,label,split,speaker,gender,accent,take"]
    for i in range(480):
        rel = f"audio/{WORDS[i % 8]}_{i:04d}.wav"
        write_wav_fast(data / rel, clip(i, seconds=0.4 + 0.05 * (i % 9)))
        spk = i % 24
        rows.append(f"{rel},{WORDS[i % 8]},{('train', 'validation', 'test')[spk % 3]},spk{spk:02d},"
                    f"{('female', 'male')[spk % 2]},{ACCENTS[spk % 4]},{i % 6}")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    report = ingest(store, data / "manifest.csv", name="accents", workers=1)
    rng = np.random.default_rng(3)
    with store.sessions() as s:
        ds = s.get(Dataset, report.dataset_id)
        ids = [c for (c,) in s.query(Clip.id).filter(Clip.dataset_id == ds.id).order_by(Clip.id)]
        fx = make_run(s, root, labels=list(WORDS), write_audio=False, disagree_every=11, dataset=(ds, ids))
        classes = sorted(WORDS)
        for p, c in s.query(Prediction, Clip).join(Clip, Clip.id == Prediction.clip_id).filter(
                Prediction.run_id == fx.run_id):
            if c.meta["accent"] == "indian" and rng.random() < 0.45:
                p.pred = classes[(classes.index(p.target) + 3) % len(classes)]
                p.agree, p.loss = False, 2.5
        s.commit()
    store.engine.dispose()
    with serve_in_thread(settings) as base:
        yield base, fx


@pytest.mark.parametrize("width", [1440, 800])
def test_slices_page_fits_and_opens_a_slice(slices_site, browser, width):
    base, fx = slices_site
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/slices?run={fx.run_id}&split=all&family=meta.accent", wait_until="networkidle")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{overflow}px of horizontal scroll at {width}px"
    first = page.locator("#family-table tbody tr").first
    assert first.locator("td").first.inner_text().startswith("indian")
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_SHOTS / f"slices-{width}.png"), full_page=True)
    n = int(first.locator("td").nth(1).inner_text().replace(",", ""))
    first.locator("td").nth(3).click()  # a click anywhere on the row (slices.js), not only on its link
    page.wait_for_url(re.compile(r"/clips\?.*meta\.accent=indian"))
    assert f"{n:,} clips" in page.locator(".page-head .sub").inner_text()
    assert "accent = indian" in page.locator(".column-filters").inner_text()
    assert errors == []
    context.close()


def test_cloud_coloured_by_a_metadata_column(slices_site, browser):
    base, fx = slices_site
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/cloud?run={fx.run_id}", wait_until="networkidle")
    page.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    page.select_option("#color-by", "meta.accent")
    wait_for_js(page, "Array.from(document.querySelectorAll('#cloud .legendtext')).some(t => t.textContent.startsWith('indian'))",
                timeout=15_000)
    names = page.evaluate("Array.from(document.querySelectorAll('#cloud .legendtext')).map(t => t.textContent)")
    assert sorted(n.split(" (")[0] for n in names) == sorted(ACCENTS)
    assert sum(int(re.search(r"\((\d+)\)", n).group(1)) for n in names) == 480
    assert "color=meta.accent" in page.url
    page.select_option("#color-by", "stat.duration_s")
    wait_for_js(page, "document.querySelector('#cloud .colorbar') !== null", timeout=15_000)
    assert errors == []
    context.close()
