"""The loop in a real Chromium: flag a clip on its page -> see it in the queue -> edit it -> export CSV.

Also renders the compare page. Screenshots (1280x800 viewport) are test artifacts under
test-artifacts/screenshots/; with ``EARMARK_DOCS_SCREENSHOTS=1`` they replace the guide's pictures in
docs/screenshots/ instead (they show the time of the run, so refreshing them on every test run would
change tracked files each time).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from app.config import Settings
from app.store.db import open_store
from app.store.flags import upsert_flag
from app.store.models import Clip, Finding, FindingClip, Run
from tests.browser.conftest import serve_in_thread, wait_for_js
from tests.test_compare import _two_runs

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
DOCS_SHOTS = REPO / "docs" / "screenshots" if os.environ.get("EARMARK_DOCS_SCREENSHOTS") == "1" \
    else REPO / "test-artifacts" / "screenshots"
NOTE = "=SUM(1) word ends at the edge"  # a formula-looking note: the CSV must neutralise it


def shot(pg, name: str) -> Path:
    """A viewport screenshot (1280x800) for the guide, stored as a 256-colour PNG to keep the repo small."""
    from PIL import Image

    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    path = DOCS_SHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=False)
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path


@pytest.fixture(scope="module")
def loop_site(tmp_path_factory):
    """A server over a store with a baseline run, a retrained run (adds _cutoff_) and two auto flags."""


    root = tmp_path_factory.mktemp("loop")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    engine, sessions = store.engine, store.sessions
    with sessions() as s:
        fa, fb = _two_runs(s, root / "audio", n_clips=120)
        s.get(Run, fa.run_id).name = "melcnn-baseline"
        s.get(Run, fb.run_id).name = "melcnn-apply-flags"
        clips = s.scalars(select(Clip).where(Clip.dataset_id == fa.dataset_id).order_by(Clip.id)).all()
        finding = Finding(run_id=fa.run_id, kind="cutoff", rank=1, score=0.93, n_clips=2, reason="cutoff",
                          title="2 clips end while the word is still being spoken",
                          description="speech energy is still high in the last 50 ms")
        s.add(finding)
        s.flush()
        for c in clips[10:12]:
            s.add(FindingClip(finding_id=finding.id, clip_id=c.id, score=0.9))
            upsert_flag(s, c.id, "cutoff", author="auto", finding_id=finding.id)
        s.commit()
        target = clips[3]
        info = dict(a=fa.run_id, b=fb.run_id, clip_id=target.id, path=target.path, label=target.label,
                    dataset="fixture")
    engine.dispose()
    with serve_in_thread(settings) as base:
        yield base, info


@pytest.fixture
def small_page(browser):
    """A 1280x800 page recording console errors, with downloads allowed."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.errors.append(f"pageerror: {exc}"))
    yield pg
    context.close()


def test_loop_flag_queue_export(loop_site, small_page, tmp_path):
    base, info = loop_site
    pg = small_page
    cid = info["clip_id"]
    # 1. The clip page: type a name, pick "cut-off", add a note, save.
    pg.goto(f"{base}/clips/{cid}?run={info['b']}", wait_until="networkidle")
    pg.fill("#author-name", "dana")
    pg.dispatch_event("#author-name", "change")
    form = pg.locator(f"form.flag-form[data-clip='{cid}']")
    form.locator("input[name=reason][value=cutoff]").check()
    form.locator("input[name=note]").fill(NOTE)
    shot(pg, "loop-1-clip-page-flag")
    with pg.expect_response(lambda r: r.url.endswith(f"/api/clips/{cid}/flag") and r.status == 200):
        form.locator("button[type=submit]").click()

    # 2. The queue shows it, with who set it; the detector's flags link to their issue.
    pg.goto(f"{base}/flags", wait_until="networkidle")
    row = pg.locator(f"tr[data-clip='{cid}']")
    assert row.count() == 1
    assert "cutoff" in row.locator("[data-flag-cell]").inner_text().replace(" ", "")
    assert row.locator("[data-f=author]").inner_text() == "dana"
    assert row.locator("[data-f=note]").inner_text() == NOTE
    assert pg.locator("a[href*='#finding-']").count() == 2
    shot(pg, "loop-2-flags-queue")

    # Edit it in place: mislabeled -> "go", and the row updates without a reload.
    row.locator("[data-edit]").click()
    editor = pg.locator(f"tr[data-editor='{cid}']")
    editor.locator("select[name=reason]").select_option("mislabeled")
    editor.locator("select[name=corrected_label]").select_option("go")
    shot(pg, "loop-3-flags-edit")
    with pg.expect_response(lambda r: r.url.endswith(f"/api/clips/{cid}/flag") and r.status == 200):
        editor.locator("button[type=submit]").click()
    wait_for_js(pg, f"document.querySelector(\"tr[data-clip='{cid}'] [data-f=corrected]\").textContent === 'go'")
    assert editor.count() == 0  # closed after saving

    # Filter by reason: only the mislabeled one is left.
    pg.click("a[data-reason=mislabeled]")
    pg.wait_for_load_state("networkidle")
    assert pg.locator("table.flags tbody tr[data-clip]").count() == 1

    # 3. Download the CSV export and check what it holds.
    pg.goto(f"{base}/flags", wait_until="networkidle")
    with pg.expect_download() as dl:
        pg.click("#export-csv")
    path = tmp_path / "flags.csv"
    dl.value.save_as(path)
    raw = path.read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(raw, newline="")))
    mine = [r for r in rows if r["path"] == info["path"]]
    assert len(rows) == 3 and len(mine) == 1
    r = mine[0]
    assert (r["dataset"], r["label"], r["reason"], r["corrected_label"], r["author"]) == \
        (info["dataset"], info["label"], "mislabeled", "go", "dana")
    assert r["note"] == "'" + NOTE  # formula neutralised; import strips the apostrophe again
    assert r["time"].endswith("Z") and len(r["time"]) == len("2026-01-01T00:00:00.000000Z")
    assert {x["author"] for x in rows} == {"dana", "auto"}
    assert pg.errors == []


def test_loop_import_shows_problems(loop_site, small_page, tmp_path):
    base, info = loop_site
    pg = small_page
    bad = tmp_path / "bad.csv"
    bad.write_text(f"path,reason\r\n{info['path']},loud\r\nno/such.wav,cutoff\r\n")
    pg.goto(f"{base}/flags", wait_until="networkidle")
    before = pg.locator("table.flags tbody tr[data-clip]").count()
    pg.set_input_files("#import-file", str(bad))
    pg.click("#import-form button[type=submit]")
    pg.wait_for_selector("#import-problems:not([hidden])")
    text = pg.inner_text("#import-problems")
    assert "line 2: bad reason 'loud'" in text and "line 3: unknown clip path 'no/such.wav'" in text
    shot(pg, "loop-4-import-rejected")
    pg.reload(wait_until="networkidle")
    assert pg.locator("table.flags tbody tr[data-clip]").count() == before
    assert [e for e in pg.errors if "422" not in e] == []  # the rejected upload itself logs its 422


def test_loop_compare_page(loop_site, small_page):
    base, info = loop_site
    pg = small_page
    pg.goto(f"{base}/compare", wait_until="networkidle")
    assert pg.locator("#pick-a").input_value() == str(info["a"])
    assert pg.locator("#pick-b").input_value() == str(info["b"])
    pg.wait_for_selector("#cm-diff .main-svg")
    fig = json.loads(pg.inner_text("#cm-diff-data"))
    assert fig["data"][0]["x"][-1] == "_cutoff_"
    assert "same-target" in pg.inner_text(".honest")
    shot(pg, "loop-5-compare")
    pg.locator("#changes").scroll_into_view_if_needed()
    shot(pg, "loop-6-compare-changes")
    # Play a fixed clip from the list: its audio starts.
    first = pg.locator("#changes button.play").first
    first.click()
    wait_for_js(pg, "window.earmark.player.currentTime > 0", timeout=10_000)
    # Pick the runs the other way round with the pickers.
    pg.select_option("#pick-a", str(info["b"]))
    pg.select_option("#pick-b", str(info["a"]))
    pg.click(".pickers button[type=submit]")
    pg.wait_for_load_state("networkidle")
    assert f"a={info['b']}" in pg.url and f"b={info['a']}" in pg.url
    assert pg.errors == []
