"""Pages a user can read and trust (issue 15), in a real Chromium over a demo-shaped store.

The store has 36 classes (like Speech Commands' 35 words plus one), 1,296 real WAV clips, a
baseline run and a retrained run that adds ``_cutoff_`` and only relabels clips to it (plus a few
genuine fixes), a cut-off finding, and a second data set without speakers. Each test is one item of
the issue: no Plotly "Share chart", leakage in sentences, the confusion matrix at 36 classes, every
class labelled, the compare matrix and table, the clip page's axes and playhead, the user guide, and
no page wider than an 800 px viewport.

Screenshots of every page at 1440 and 800 px go to test-artifacts/screenshots/, or to
docs/screenshots/ with ``EARMARK_DOCS_SCREENSHOTS=1`` (they show times, so they are refreshed on
purpose, not on every run).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update

from app.config import Settings
from app.measured import TERMS, score_help
from app.pipeline.ingest_report import leakage_report
from app.store.db import open_store
from app.store.flags import upsert_flag
from app.store.models import Clip, ClipScore, Dataset, Finding, FindingClip, Prediction, Run
from tests.browser.conftest import serve_in_thread, wait_for_js
from tests.factories import _metrics, make_dataset, make_run

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "screenshots" if os.environ.get("EARMARK_DOCS_SCREENSHOTS") == "1" \
    else REPO / "test-artifacts" / "screenshots"
WORDS = ["backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
         "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
         "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero", "_unknown_"]
CUT = "_cutoff_"
PER_CLASS = 36  # clips per class: 12 per split, so a diagonal cell holds up to 12


def _retrained_run(s, base, root):
    """Run b: a's predictions, every 9th clip relabeled to _cutoff_ (and predicted so), and 5 of a's
    same-target errors fixed. So every change but those 5 is relabeling."""
    ds = s.get(Dataset, base.dataset_id)
    fb = make_run(s, root, labels=WORDS, name="retrained", seed=0, dataset=(ds, base.clip_ids), write_audio=False,
                  disagree_every=7)
    rb = s.get(Run, fb.run_id)
    rb.classes = list(rb.classes) + [CUT]
    rb.parent_run_id = base.run_id
    rb.flags_used = [{"clip_id": 0}] * 144
    rb.config = {"cutoff_policy": "class"}
    a_preds = {p.clip_id: p for p in s.scalars(select(Prediction).where(Prediction.run_id == base.run_id))}
    fixed = []
    for j, p in enumerate(s.scalars(select(Prediction).where(Prediction.run_id == rb.id).order_by(Prediction.clip_id))):
        pa = a_preds[p.clip_id]
        p.probs, p.pred, p.confidence, p.loss = pa.probs + np.float32(0).tobytes(), pa.pred, pa.confidence, pa.loss
        if j % 9 == 0:
            p.target, p.pred = CUT, CUT
        elif not pa.agree and len(fixed) < 5:
            p.pred = p.target
            fixed.append(p.clip_id)
        p.agree = p.pred == p.target
    s.flush()
    k = len(rb.classes)
    per_split: dict[str, np.ndarray] = {}
    for split, t, p in s.execute(select(Clip.split, Prediction.target, Prediction.pred)
                                 .join(Clip, Clip.id == Prediction.clip_id).where(Prediction.run_id == rb.id)):
        cm = per_split.setdefault(split, np.zeros((k, k), dtype=int))
        cm[rb.classes.index(t), rb.classes.index(p)] += 1
    rb.metrics = {split: _metrics(cm, rb.classes) for split, cm in per_split.items()}
    return fb, fixed


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """(base URL, info) of a server over the demo-shaped store described in the module doc."""
    root = tmp_path_factory.mktemp("readable")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    with store.sessions() as s:
        fa = make_run(s, root / "audio", n_clips=PER_CLASS * len(WORDS), labels=WORDS, name="melcnn-baseline",
                      disagree_every=7)
        ds = s.get(Dataset, fa.dataset_id)
        ds.name = "speech-demo"
        for k in (1, 4, 7):  # three speakers recorded in two splits each
            s.execute(update(Clip).where(Clip.dataset_id == ds.id, Clip.speaker == f"{k:08x}")
                      .values(speaker=f"{k - 1:08x}"))
        rows = s.execute(select(Clip.path, Clip.split, Clip.speaker, Clip.content_hash)
                         .where(Clip.dataset_id == ds.id)).all()
        ds.leakage = leakage_report(rows)  # speakers span splits: a real, non-zero count
        fb, fixed = _retrained_run(s, fa, root / "audio")
        # a cut-off finding on run b, its clips scored as cut off
        cut_ids = fa.clip_ids[3:40:4]
        finding = Finding(run_id=fb.run_id, kind="cutoff", rank=1, score=215.1, n_clips=len(cut_ids),
                          reason="cutoff", title=f"{len(cut_ids)} clips end while the word is still being spoken",
                          description="speech energy is still high in the last 50 ms")
        s.add(finding)
        s.flush()
        for cid in cut_ids:
            s.add(FindingClip(finding_id=finding.id, clip_id=cid, score=0.9))
        s.execute(update(ClipScore).where(ClipScore.run_id == fb.run_id, ClipScore.clip_id.in_(cut_ids))
                  .values(cutoff_score=0.93, suggested_label="learn", label_quality=0.096, label_issue=True))
        # a cluster finding (labelled on the cloud), and a few people's flags (the Flags page's picture)
        cluster_ids = [c for c in fa.clip_ids if c % 36 == 9][:30]
        s.add(Finding(run_id=fb.run_id, kind="cluster", rank=2, score=41.0, n_clips=len(cluster_ids), reason="mislabeled",
                      title="an error cluster", description="clips the model keeps confusing"))
        s.flush()
        cluster = s.scalars(select(Finding).where(Finding.run_id == fb.run_id, Finding.kind == "cluster")).one()
        s.add_all([FindingClip(finding_id=cluster.id, clip_id=c, score=0.5) for c in cluster_ids])
        for cid, reason, label, note, who in [(fa.clip_ids[50], "mislabeled", "go", "says go, clearly", "ana"),
                                               (fa.clip_ids[51], "noise_only", None, "", "ben"),
                                               (fa.clip_ids[52], "multiple_words", None, "two words", "ana")]:
            upsert_flag(s, cid, reason, label, note=note, author=who)
        # a second data set, without speakers and without leakage
        ds2, _ = make_dataset(s, root / "audio2", n_clips=60, name="no-speakers", write_audio=False)
        s.execute(update(Clip).where(Clip.dataset_id == ds2.id).values(speaker=None))
        ds2.leakage = leakage_report(s.execute(select(Clip.path, Clip.split, Clip.speaker, Clip.content_hash)
                                               .where(Clip.dataset_id == ds2.id)).all())
        s.commit()
        info = dict(a=fa.run_id, b=fb.run_id, clip=fa.clip_ids[5], cut_clip=cut_ids[0], fixed=len(fixed),
                    finding=finding.id, ds=ds.id, ds2=ds2.id)
    store.engine.dispose()
    with serve_in_thread(settings) as base:
        yield base, info


def _context_page(browser, width: int, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.errors, pg.outside = [], []
    pg.on("console", lambda m: pg.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda exc: pg.errors.append(f"pageerror: {exc}"))
    pg.on("request", lambda r: pg.outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:"))
          else None)
    return context, pg


@pytest.fixture
def wide(browser):
    """A 1440 x 900 page recording console errors and any request that leaves the machine."""
    context, pg = _context_page(browser, 1440)
    yield pg
    context.close()


@pytest.fixture
def narrow(browser):
    """An 800 x 900 page, the same."""
    context, pg = _context_page(browser, 800)
    yield pg
    context.close()


def shot(pg, name: str) -> Path:
    """A full-page screenshot (its first 2,400 px), stored as a 256-colour PNG to keep the repo small.
    The slices page's pictures in docs/ are test_slices_page.py's: this one goes to test-artifacts/."""
    from PIL import Image

    folder = REPO / "test-artifacts" / "screenshots" if name.startswith("slices") else SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    with Image.open(path) as im:
        small = im.convert("RGB").crop((0, 0, im.width, min(im.height, 2400))).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path


def pages(info) -> dict[str, str]:
    """Every page of the app, by name."""
    b = info["b"]
    return {
        "overview": f"/?run={b}", "clips": f"/clips?run={b}&agreement=disagree", "clip": f"/clips/{info['cut_clip']}?run={b}",
        "cloud": f"/cloud?run={b}", "confusion": f"/confusion?run={info['a']}&split=train",
        "issues": f"/issues?run={b}", "flags": "/flags", "compare": f"/compare?a={info['a']}&b={b}&split=train",
        "guide": "/guide", "api-docs": "/docs", "slices": f"/slices?run={b}",
    }


def _load(pg, base, path, name):
    resp = pg.goto(base + path, wait_until="networkidle")
    assert resp.status == 200, (name, resp.status)
    if name == "cloud":
        pg.wait_for_selector("#cloud[data-ready='1']", timeout=20_000)
    if name in ("overview", "compare"):
        pg.wait_for_selector(".main-svg", timeout=20_000)


@pytest.mark.parametrize("name", ["cloud", "compare", "overview", "confusion"])
def test_no_share_button_logo_or_outside_link_on_charts(demo_site, wide, name):
    base, info = demo_site
    _load(wide, base, pages(info)[name], name)
    for plot in wide.locator(".js-plotly-plot").all():
        plot.hover()
        ctx = plot.evaluate("gd => ({cloud: gd._context.showSendToCloud, logo: gd._context.displaylogo, "
                            "server: gd._context.plotlyServerURL})")
        assert ctx == {"cloud": False, "logo": False, "server": ""}, name
    assert wide.locator("[data-title^='Share'], .modebar-btn--logo, a[href*='plotly.com']").count() == 0
    html = wide.content()
    assert "cloud.plotly.com" not in html and "Produced with Plotly" not in html
    assert wide.outside == [] and wide.errors == []


def test_overview_says_leakage_in_sentences(demo_site, wide):
    base, info = demo_site
    _load(wide, base, pages(info)["overview"], "overview")
    demo = wide.locator(f"#dataset-{info['ds']} .leakage")
    text = demo.inner_text()
    assert "counts" not in text and "_" not in text and "splits count" not in text
    speakers = demo.locator("[data-leak=speakers_in_several_splits]")
    n = int(speakers.get_attribute("data-n"))
    assert n > 0 and re.search(rf"\b{n} speakers? (has|have) clips in more than one split", speakers.inner_text())
    assert speakers.locator(".bad").count() == 1
    # checks that found nothing are sentences too, and never red
    for item in demo.locator("[data-leak]").all():
        assert (item.locator(".bad").count() == 1) == (int(item.get_attribute("data-n")) > 0)
    other = wide.locator(f"#dataset-{info['ds2']} .leakage")
    assert "Speaker leakage not checked" in other.inner_text()
    assert "No file or identical audio appears in more than one split" in other.inner_text()
    assert other.locator(".bad").count() == 0


def test_confusion_matrix_fits_with_sticky_headers_and_errors_on_their_own_scale(demo_site, wide):
    base, info = demo_site
    _load(wide, base, pages(info)["confusion"], "confusion")
    width = wide.evaluate("document.documentElement.scrollWidth")
    assert width <= 1440
    box = wide.locator(".cm-wrap")
    fits = box.evaluate("el => el.scrollWidth <= el.clientWidth + 1")
    if not fits:  # scrolls in its own box: the label column stays in view
        left = wide.locator("#confusion tbody th.row").first.bounding_box()["x"]
        box.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        assert wide.locator("#confusion tbody th.row").first.bounding_box()["x"] == pytest.approx(left, abs=1)
    assert wide.locator("#confusion thead th").first.evaluate("el => getComputedStyle(el).position") == "sticky"
    # an off-diagonal 1 stands out next to a diagonal 12: errors are on their own (warm) scale
    assert max(int(t) for t in wide.locator("#confusion td.diag a").all_inner_texts()) >= 10
    one = wide.locator("#confusion td.c.err a", has_text=re.compile(r"^1$")).first
    rgb = [int(v) for v in re.findall(r"\d+", one.evaluate("a => getComputedStyle(a.parentElement).backgroundColor"))[:3]]
    assert rgb[0] - rgb[2] > 40 and min(rgb) < 235  # visibly warm, not near-white
    # the most-confused pairs, each a link to its clips
    pairs = wide.locator("#top-confusions li a")
    assert pairs.count() >= 5
    counts = [int(x) for x in wide.locator("#top-confusions li [data-n]").evaluate_all("els => els.map(e => e.dataset.n)")]
    assert counts == sorted(counts, reverse=True)
    href = pairs.first.get_attribute("href")
    assert "label=" in href and "pred=" in href and "split=train" in href
    pairs.first.click()
    wide.wait_for_url(re.compile(r"/clips\?"))
    assert wide.locator("tr[data-clip]").count() == counts[0]
    assert wide.errors == []


def test_class_distribution_labels_every_class(demo_site, wide):
    base, info = demo_site
    _load(wide, base, pages(info)["overview"], "overview")
    charts = wide.locator(f"#dataset-{info['ds']} .dist-chart")
    assert charts.count() == 3
    for chart in charts.all():
        ticks = chart.evaluate("el => Array.from(el.querySelectorAll('.xtick text, .ytick text')).map(t => t.textContent)")
        assert set(WORDS) <= set(ticks)


def test_compare_matrix_scale_relabeling_axis_titles_sortable_table_and_fixed(demo_site, wide):
    base, info = demo_site
    _load(wide, base, pages(info)["compare"], "compare")
    fig = wide.evaluate("(() => { const gd = document.getElementById('cm-diff'); const t = gd.data[0];"
                        " return {z: t.z, x: t.x, zmax: t.zmax}; })()")
    cut = fig["x"].index(CUT)
    rest = [abs(v) for i, row in enumerate(fig["z"]) for j, v in enumerate(row)
            if i != cut and j != cut and v is not None]
    assert fig["zmax"] == max(rest + [1])  # the _cutoff_ cell does not set the scale
    # b only relabeled clips (and fixed 5): nothing may show as worse
    assert all(v is None or v >= 0 for row in fig["z"] for v in row)
    # axis titles clear of the tick labels
    for axis in ("x", "y"):
        overlap = wide.evaluate(f"""(() => {{
            const t = document.querySelector('#cm-diff .{axis}title').getBoundingClientRect();
            return Array.from(document.querySelectorAll('#cm-diff .{axis}tick text')).some(e => {{
              const r = e.getBoundingClientRect();
              return !(r.right <= t.left || r.left >= t.right || r.bottom <= t.top || r.top >= t.bottom); }}); }})()""")
        assert not overlap, axis
    # "Fixed" counts only clips fixed under the same target
    assert wide.locator("[data-fixed]").first.inner_text().strip() == str(wide.locator("[data-fixed]").first
                                                                          .get_attribute("data-fixed"))
    n_fixed = int(wide.locator("[data-fixed]").first.get_attribute("data-fixed"))
    api = wide.evaluate(f"fetch('/api/compare?a={info['a']}&b={info['b']}').then(r => r.json())")
    assert n_fixed == api["splits"]["train"]["agreement"]["fixed"] <= info["fixed"]
    assert sum(sp["agreement"]["fixed"] for sp in api["splits"].values()) == info["fixed"]
    # the per-class table sorts by a click on a header, both ways
    th = wide.locator("#per-class th[data-sort=f1_delta]")

    def column():
        vals = wide.locator("#per-class tbody tr").evaluate_all("rs => rs.map(r => r.dataset.f1_delta)")
        nums = [float(v) for v in vals if v != ""]
        assert vals[len(nums):] == [""] * (len(vals) - len(nums))  # rows without a value (only b has the class) last
        return nums

    th.click()
    vals = column()
    assert vals == sorted(vals) and th.get_attribute("aria-sort") == "ascending"
    th.click()
    vals = column()
    assert vals == sorted(vals, reverse=True)
    assert wide.errors == []


def test_clip_page_axes_playhead_times_and_cut_off_wording(demo_site, wide):
    base, info = demo_site
    # flag it, so the page shows who flagged it and when
    wide.goto(base + "/", wait_until="networkidle")
    wide.evaluate(f"earmark.post('/api/clips/{info['cut_clip']}/flag', {{reason: 'cutoff', author: 'dana'}})")
    _load(wide, base, pages(info)["clip"], "clip")
    ticks = wide.locator(".spectro-fig").first.locator(".t-axis span").all_inner_texts()
    assert "0" in ticks[0] and any("0.5" in t for t in ticks) and ticks[-1].endswith("s")
    freqs = wide.locator(".spectro-fig").first.locator(".f-axis span").all_inner_texts()
    assert any("kHz" in f for f in freqs) and len(freqs) >= 4
    assert wide.locator(".wave-fig .t-axis span").count() >= 3
    # the playhead moves while the clip plays
    head = wide.locator(".spectro-fig .playhead").first
    x0 = head.bounding_box()["x"]
    wide.keyboard.press(" ")
    wait_for_js(wide, "document.getElementById('clip-audio').currentTime > 0.4", timeout=10_000)
    assert head.is_visible() and head.bounding_box()["x"] > x0 + 100
    # times are local and relative, not raw ISO strings
    when = wide.locator("time[datetime]").first
    assert not re.search(r"\d{4}-\d\d-\d\dT", when.inner_text()) and "ago" in when.inner_text()
    # a clip the analysis calls cut off: no "suggested label" advice
    facts = wide.locator(".prediction-facts").inner_text()
    assert "suggested label" not in facts and "likely cut off" in facts
    assert wide.errors == []


def test_user_guide_explains_every_score_and_every_page_links_it(demo_site, wide):
    base, info = demo_site
    anchors = {t.anchor for t in TERMS}  # app/measured.py: every entry a page may link, each with its tooltip
    for name, path in pages(info).items():
        _load(wide, base, path, name)
        assert wide.locator("nav.nav a[href='/guide'], nav.nav a[href^='/guide?']").count() == 1, name
        for link in wide.locator("a.score-help").all():
            anchor = link.get_attribute("href").split("#")[1]
            assert anchor in anchors, (name, anchor)
            assert link.get_attribute("title") == score_help.tooltip(anchor), (name, anchor)
    _load(wide, base, "/guide", "guide")
    for anchor in anchors:
        entry = wide.locator(f"#{anchor}")
        assert entry.count() == 1 and len(entry.inner_text()) > 120, anchor
    for key in ("j", "k", "c", "m", "x"):
        assert wide.locator("#shortcuts kbd", has_text=re.compile(rf"^{key}$")).count() >= 1
    # every score on the clip, clips, issues and compare pages links to its entry
    for name in ("clip", "clips", "issues", "compare"):
        _load(wide, base, pages(info)[name], name)
        assert wide.locator("a.score-help").count() >= 1, name
    # the API page: no raw reStructuredText, no sentence cut off mid-way
    _load(wide, base, "/docs", "api-docs")
    text = wide.locator("main").inner_text()
    assert "``" not in text and not re.search(r"`[^`\n]+`", text)
    for cell in wide.locator("td.what").all_inner_texts():
        assert not re.search(r"\b(the|a|an|of|to|and|or|with)$", cell.strip()), cell


@pytest.mark.parametrize("name", ["overview", "clips", "clip", "cloud", "confusion", "issues", "flags", "compare",
                                  "guide", "api-docs", "slices"])
def test_no_page_wider_than_800px(demo_site, narrow, wide, name):
    base, info = demo_site
    _load(wide, base, pages(info)[name], name)
    shot(wide, f"{name}-1440")
    _load(narrow, base, pages(info)[name], name)
    shot(narrow, f"{name}-800")
    assert narrow.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        (name, narrow.evaluate("document.documentElement.scrollWidth"))
    for sel in ("#run-picker", "#author-name"):
        if narrow.locator(sel).count():
            box = narrow.locator(sel).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 800, (name, sel, box)
    for path in narrow.locator(".path").all()[:20]:  # file paths wrap at slashes, not a letter a line
        b = path.bounding_box()
        if b and path.inner_text().strip():
            assert b["width"] >= 120 or b["height"] <= 40, (name, path.inner_text(), b)
    if name == "cloud":
        assert narrow.locator("#cloud").bounding_box()["width"] >= 700
    assert narrow.errors == [] and wide.errors == []
