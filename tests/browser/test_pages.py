"""Every page in a real Chromium: no console errors, the confusion matrix, audio, lasso, keyboard flags."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import screenshot, wait_for_js

pytestmark = pytest.mark.browser


def _open(page, url):
    page.goto(url, wait_until="networkidle")
    return page


@pytest.mark.parametrize("name,path", [
    ("overview", "/"), ("confusion", "/confusion?norm=row&split=train"),
    ("clips", "/clips?agreement=disagree&sort=confidence"), ("clip", "/clips/{cid}"),
    ("cloud", "/cloud"), ("cloud-by-label", "/cloud?color=label"), ("cloud-by-loss", "/cloud?color=loss&disagree=true"),
    ("api-docs", "/docs"), ("not-found", "/clips/987654"),
])
def test_page_loads_without_console_errors(live_site, page, name, path):
    base, fx = live_site
    url = base + path.format(cid=fx.clip_ids[5])
    resp = page.goto(url, wait_until="networkidle")
    assert resp.status == (404 if name == "not-found" else 200)
    if name.startswith("cloud"):
        page.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    if name == "overview":
        page.wait_for_selector(".dist-chart .main-svg")
    screenshot(page, name)
    errors = [e for e in page.errors if not (name == "not-found" and "404" in e)]
    assert errors == []


def test_confusion_cell_opens_the_filtered_list(live_site, page):
    base, _ = live_site
    _open(page, base + "/confusion?split=train")
    cell = page.locator("#confusion td.c:not(.diag) a").first
    label, pred, n = cell.get_attribute("data-label"), cell.get_attribute("data-pred"), int(cell.inner_text())
    cell.click()
    page.wait_for_url(re.compile(r"/clips\?"))
    assert f"label={label}" in page.url and f"pred={pred}" in page.url and "split=train" in page.url
    rows = page.locator("tr[data-clip]")
    assert rows.count() == n
    for i in range(n):
        cells = rows.nth(i).locator("td")  # a checkbox, play, clip, spectrogram, label, prediction
        assert cells.nth(4).inner_text().startswith(label) and cells.nth(5).inner_text().startswith(pred)


def test_clip_audio_really_plays(live_site, page):
    base, fx = live_site
    _open(page, f"{base}/clips/{fx.clip_ids[3]}")
    page.keyboard.press(" ")  # space plays the clip page's own player
    wait_for_js(page, "document.getElementById('clip-audio').currentTime > 0.2", timeout=10_000)
    assert page.evaluate("document.getElementById('clip-audio').duration") == pytest.approx(1.0, abs=0.05)
    # and the list's play buttons use the same endpoint, with a Range request
    _open(page, f"{base}/clips")
    page.locator("button.play").first.click()
    wait_for_js(page, "window.earmark.player.currentTime > 0.1", timeout=10_000)


def test_cloud_lasso_lists_the_selected_clips(live_site, page):
    base, _ = live_site
    _open(page, base + "/cloud")
    page.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    box = page.locator("#cloud .nsewdrag").first.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    # a lasso around the whole middle of the plot
    pts = [(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.12)]
    page.mouse.move(x0 + w * pts[0][0], y0 + h * pts[0][1])
    page.mouse.down()
    for px, py in pts[1:]:
        page.mouse.move(x0 + w * px, y0 + h * py, steps=8)
    page.mouse.up()
    page.wait_for_selector("#sel-list li", timeout=10_000)
    n = int(page.locator("#sel-count").inner_text().replace(",", ""))
    assert n > 10 and page.locator("#sel-list li").count() == min(n, 100)
    assert page.locator("#sel-list li button.play").count() == page.locator("#sel-list li").count()
    screenshot(page, "cloud-lasso")
    # bulk-flag the selection: no default reason, so the button alone flags nothing
    assert page.eval_on_selector("#bulk-flag select[name=reason]", "s => s.value") == ""
    page.click("#bulk-flag button[type=submit]")
    wait_for_js(page, "!document.getElementById('toast').hidden")
    assert "pick a reason" in page.inner_text("#toast")
    # pick a reason, then the confirm names the count and the reason; accepting it writes the flags
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.select_option("#bulk-flag select[name=reason]", "noise_only")
    page.click("#bulk-flag button[type=submit]")
    wait_for_js(page, "(document.getElementById('toast').textContent || '').startsWith('flagged')")
    assert dialogs == [f"Flag {n:,} selected clips as noise only?"]
    assert page.inner_text("#toast") == f"flagged {n:,} selected clips as noise only"
    flagged = page.evaluate("fetch('/api/clips?flag=noise_only&per_page=200').then(r => r.json())")
    selected = page.evaluate("window.earmarkCloud.selected")
    assert flagged["total"] == n == len(selected)
    assert sorted(c["id"] for c in flagged["items"]) == sorted(selected)
    assert all(c["flag"]["author"] == "anonymous" for c in flagged["items"])
    # the selection list shows the new flag on each row
    assert page.locator("#sel-list li [data-flag-cell] .badge.flag-noise_only").count() == min(n, 100)
    assert page.errors == []


def test_cloud_click_plays_and_shows_details(live_site, page):
    base, _ = live_site
    _open(page, base + "/cloud?color=split")
    page.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    # click the first point of the first trace where plotly drew it
    xy = page.evaluate("""() => { const gd = document.getElementById('cloud'); const fl = gd._fullLayout;
        const t = gd._fullData[0]; const x = fl.xaxis.l2p(t.x[0]) + fl.xaxis._offset;
        const y = fl.yaxis.l2p(t.y[0]) + fl.yaxis._offset; const r = gd.getBoundingClientRect();
        return [r.left + x, r.top + y]; }""")
    page.evaluate("Plotly.relayout('cloud', {dragmode: 'zoom'})")
    page.mouse.click(xy[0], xy[1])
    page.wait_for_selector("#clip-detail dl", timeout=10_000)
    assert "label" in page.inner_text("#clip-detail")
    wait_for_js(page, "window.earmark.player.currentTime > 0.05", timeout=10_000)


def test_keyboard_flag_survives_a_reload(live_site, page):
    base, _ = live_site
    _open(page, base + "/clips?sort=id&split=validation")
    page.keyboard.press("j")
    page.keyboard.press("j")
    second = page.locator("tr.current").get_attribute("data-clip")
    page.keyboard.press("c")
    page.wait_for_selector(f"[data-flag-cell='{second}'] .badge")
    page.keyboard.press("j")
    third = page.locator("tr.current").get_attribute("data-clip")
    page.keyboard.press("m")  # the label picker: search "go", Enter takes the first match
    page.wait_for_selector("dialog#label-picker[open]")
    page.keyboard.type("go")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"[data-flag-cell='{third}'] .badge")
    page.reload(wait_until="networkidle")
    assert page.inner_text(f"[data-flag-cell='{second}']").strip() == "cutoff"
    assert page.inner_text(f"[data-flag-cell='{third}']").strip() == "mislabeled → go"
    # x clears, and that survives a reload too; clip page keys work the same
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("x")
    wait_for_js(page, f"!document.querySelector(\"[data-flag-cell='{second}'] .badge\")")
    page.reload(wait_until="networkidle")
    assert page.inner_text(f"[data-flag-cell='{second}']").strip() == ""
    ids = page.eval_on_selector_all("tr[data-clip]", "els => els.map(e => e.dataset.clip)")
    page.goto(f"{base}/clips/{third}?sort=id&split=validation", wait_until="networkidle")
    page.keyboard.press("j")
    page.wait_for_url(lambda u: f"/clips/{third}?" not in u)
    assert f"/clips/{ids[ids.index(third) + 1]}?" in page.url
    assert page.errors == []
