"""The cloud (issue 15): the selection list puts disagreements first, then the highest loss, with
thumbnails; cluster findings are labelled on the plot; 40 classes get 40 distinct colours; the legend
clears the modebar."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.config import Settings
from app.store.db import open_store
from app.store.models import Clip, Finding, FindingClip
from tests.browser.conftest import serve_in_thread, wait_for_js
from tests.factories import make_run

pytestmark = pytest.mark.browser
WORDS40 = [f"word{i:02d}" for i in range(40)]


@pytest.fixture(scope="module")
def cloud_site(tmp_path_factory):
    """A 40-class run of 240 clips with one cluster finding of 20 clips."""
    root = tmp_path_factory.mktemp("cloud40")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    with store.sessions() as s:
        fx = make_run(s, root / "audio", n_clips=240, labels=WORDS40, disagree_every=5)
        ids = list(s.scalars(select(Clip.id).where(Clip.dataset_id == fx.dataset_id).order_by(Clip.id)))
        f = Finding(run_id=fx.run_id, kind="cluster", rank=2, score=5.0, title="word03 heard as word04",
                    description="d", reason="mislabeled", n_clips=20)
        s.add(f)
        s.flush()
        s.add_all([FindingClip(finding_id=f.id, clip_id=c, score=1.0) for c in ids[:20]])
        s.commit()
    with serve_in_thread(settings) as base:
        yield base, fx
    store.engine.dispose()


def _lasso_all(page):
    box = page.locator("#cloud .nsewdrag").first.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    pts = [(0.03, 0.97), (0.97, 0.97), (0.97, 0.03), (0.45, 0.03), (0.03, 0.2), (0.03, 0.95)]  # clear of the legend
    page.mouse.move(x0 + w * pts[0][0], y0 + h * pts[0][1])
    page.mouse.down()
    for px, py in pts[1:]:
        page.mouse.move(x0 + w * px, y0 + h * py, steps=8)
    page.mouse.up()
    page.wait_for_selector("#sel-list li", timeout=10_000)


def test_selection_lists_disagreements_first_with_thumbnails(cloud_site, page):
    base, fx = cloud_site
    page.goto(f"{base}/cloud?run={fx.run_id}", wait_until="networkidle")
    page.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    _lasso_all(page)
    wait_for_js(page, "document.querySelectorAll('#sel-list li').length >= 20")
    listed = page.eval_on_selector_all("#sel-list li", "els => els.map(e => Number(e.dataset.selClip))")
    clips = {c["id"]: c for c in page.request.get(
        f"{base}/api/clips?run={fx.run_id}&ids={','.join(map(str, listed))}").json()["items"]}
    agree = [clips[c]["agree"] for c in listed]
    n_dis = agree.count(False)
    assert 0 < n_dis < len(listed) and agree == [False] * n_dis + [True] * (len(listed) - n_dis)
    for part in (listed[:n_dis], listed[n_dis:]):  # then by loss, highest first (as the cloud's 8-bit loss)
        losses = [clips[c]["loss"] for c in part]
        assert all(a >= b - 0.05 * max(losses) for a, b in zip(losses, losses[1:], strict=False))
    assert page.locator("#sel-list li img.spectro.small").count() == len(listed)
    wait_for_js(page, "Array.from(document.querySelectorAll('#sel-list li img')).slice(0, 3)"
                      ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.errors == []


def test_cluster_labels_colours_and_legend(cloud_site, page):
    base, fx = cloud_site
    page.goto(f"{base}/cloud?run={fx.run_id}&color=label", wait_until="networkidle")
    page.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    notes = page.evaluate("document.getElementById('cloud').layout.annotations")
    assert [n["text"] for n in notes] == ["<b>C2</b>"] and "word03 heard as word04 (20 clips)" in notes[0]["hovertext"]
    assert page.locator("#cloud .annotation-text", has_text="C2").count() == 1
    colours = page.evaluate("document.getElementById('cloud').data.map(t => t.marker.color)")
    assert len(colours) == 40 and len(set(colours)) == 40
    legend = page.locator("#cloud .legend").bounding_box()
    bar = page.locator("#cloud .modebar").bounding_box()
    overlap_x = min(legend["x"] + legend["width"], bar["x"] + bar["width"]) - max(legend["x"], bar["x"])
    overlap_y = min(legend["y"] + legend["height"], bar["y"] + bar["height"]) - max(legend["y"], bar["y"])
    assert overlap_x <= 0 or overlap_y <= 0, (legend, bar)
    assert page.errors == []
