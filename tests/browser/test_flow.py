"""Flow in a real Chromium (issue 15): the run picker keeps the page's state, Compare never dead-ends,
lists reached from a finding keep it, and a bulk flag on Issues refreshes the table's flag column."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.config import Settings
from app.store.db import open_store
from app.store.flags import upsert_flag
from app.store.models import Clip, Dataset, Finding, FindingClip
from tests.browser.conftest import serve_in_thread, wait_for_js
from tests.factories import make_run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Two complete runs of one 120-clip data set; run 2 has a mislabel finding of 12 clips, the first
    of which carries a person's flag."""
    root = tmp_path_factory.mktemp("flow")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    with store.sessions() as s:
        fx1 = make_run(s, root / "audio", n_clips=120, name="first")
        ds = s.get(Dataset, fx1.dataset_id)
        fx2 = make_run(s, root / "audio", name="second", seed=1, dataset=(ds, fx1.clip_ids))
        ids = list(s.scalars(select(Clip.id).where(Clip.dataset_id == ds.id).order_by(Clip.id)))
        members = ids[3:75:6]  # 12 clips spread over the data set
        f = Finding(run_id=fx2.run_id, kind="label", rank=1, score=3.5, title="likely mislabeled",
                    description="d", reason="mislabeled", n_clips=len(members))
        s.add(f)
        s.flush()
        s.add_all([FindingClip(finding_id=f.id, clip_id=c, score=1.0 - i / 100, suggested_label="go")
                   for i, c in enumerate(members)])
        upsert_flag(s, members[0], "cutoff", None, note="I listened", author="ana")
        s.commit()
        fid = f.id
    with serve_in_thread(settings) as base:
        yield base, fx1.run_id, fx2.run_id, fid, members
    store.engine.dispose()


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_run_picker_keeps_filters_sort_page_and_scroll(site, page):
    base, r1, r2, fid, _ = site
    page.goto(f"{base}/clips?run={r2}&split=train&sort=id&agreement=agree&page=2&per_page=20",
              wait_until="networkidle")
    page.evaluate("window.scrollTo(0, 200)")
    y = page.evaluate("window.scrollY")
    assert y >= 200
    page.select_option("#run-picker", str(r1))
    page.wait_for_url(lambda u: f"run={r1}" in u)
    page.wait_for_load_state("load")
    q = _query(page.url)
    assert q["run"] == [str(r1)] and q["split"] == ["train"] and q["sort"] == ["id"]
    assert q["agreement"] == ["agree"] and q["page"] == ["2"] and q["per_page"] == ["20"]
    assert page.eval_on_selector("#clip-filters select[name=split]", "s => s.value") == "train"
    assert page.eval_on_selector("#clip-filters select[name=sort]", "s => s.value") == "id"
    wait_for_js(page, f"Math.abs(window.scrollY - {y}) < 5", timeout=5_000)
    # the confusion matrix keeps its split and normalisation; the cloud its colouring, changed in place
    page.goto(f"{base}/confusion?run={r1}&split=validation&norm=row", wait_until="networkidle")
    page.select_option("#run-picker", str(r2))
    page.wait_for_url(lambda u: f"run={r2}" in u)
    assert _query(page.url) == {"run": [str(r2)], "split": ["validation"], "norm": ["row"]}
    page.goto(f"{base}/cloud?run={r2}&finding={fid}", wait_until="networkidle")
    page.select_option("#color-by", "label")
    page.select_option("#run-picker", str(r1))
    page.wait_for_url(lambda u: f"run={r1}" in u)
    assert _query(page.url) == {"run": [str(r1)], "color": ["label"]}  # a finding belongs to one run
    assert page.errors == []


def test_compare_offers_choices_instead_of_a_dead_end(site, page):
    base, r1, r2, _, _ = site
    # the older run has no earlier run: the page says so and preselects two different runs
    resp = page.goto(f"{base}/compare?run={r1}", wait_until="networkidle")
    assert resp.status == 200
    assert "no earlier complete run" in page.inner_text("#compare-problem")
    a, b = page.eval_on_selector("#pick-a", "s => s.value"), page.eval_on_selector("#pick-b", "s => s.value")
    assert {a, b} == {str(r1), str(r2)}
    page.click("form.pickers button[type=submit]")
    page.wait_for_selector("#per-class")
    # the same run twice: a clear message on the page (not raw validation), pickers on two runs
    resp = page.goto(f"{base}/compare?a={r2}&b={r2}", wait_until="networkidle")
    assert resp.status == 200  # the page, with the form to fix it (the JSON API still answers 422)
    assert "compared with itself" in page.inner_text("#compare-problem")
    assert "pick two different runs" in page.inner_text("#compare-problem")
    a, b = page.eval_on_selector("#pick-a", "s => s.value"), page.eval_on_selector("#pick-b", "s => s.value")
    assert a == str(r1) and b == str(r2)
    # picking in one the run the other holds swaps them: never the same run twice
    page.select_option("#pick-a", str(r2))
    assert page.eval_on_selector("#pick-b", "s => s.value") == str(r1)
    page.select_option("#pick-b", str(r2))
    assert page.eval_on_selector("#pick-a", "s => s.value") == str(r1)
    assert page.errors == []


def test_clips_reached_from_a_finding_keep_it(site, page):
    base, _, r2, fid, members = site
    page.goto(f"{base}/issues?run={r2}", wait_until="networkidle")
    page.click(f"#finding-{fid} details summary")
    links = page.eval_on_selector_all(f"#finding-{fid} td.path a", "els => els.map(e => e.href)")
    assert len(links) == len(members) and all(_query(u)["finding"] == [str(fid)] for u in links)
    page.goto(links[0], wait_until="networkidle")
    assert "of 12 in" in page.inner_text(".clip-head")  # the finding's list, not all 120 clips
    page.click(".clip-head a[href*='/clips?']")  # its list, then its first clip
    page.click("tr[data-clip] td a")
    page.wait_for_selector("[data-current-clip]")
    assert "1 of 12 in" in page.inner_text(".clip-head")
    seen = [int(page.get_attribute("[data-current-clip]", "data-current-clip"))]
    for _ in range(len(members) - 1):  # j walks the finding's clips, and only those
        page.keyboard.press("j")
        page.wait_for_url(lambda u, last=seen[-1]: f"/clips/{last}?" not in u)
        page.wait_for_load_state("domcontentloaded")
        assert _query(page.url)["finding"] == [str(fid)]
        seen.append(int(page.get_attribute("[data-current-clip]", "data-current-clip")))
    assert sorted(seen) == sorted(members)
    assert page.errors == []


def test_issues_bulk_flag_refreshes_the_flag_column(site, page):
    base, _, r2, fid, members = site
    page.on("dialog", lambda d: d.accept() if d.message.startswith("Flag") else d.dismiss())
    page.goto(f"{base}/issues?run={r2}", wait_until="networkidle")
    page.click(f"#finding-{fid} details summary")
    for c in members[:3]:
        page.check(f"#finding-{fid} input.pick[value='{c}']")
    page.click(f"#finding-{fid} button.flag-selected")
    for c in members[1:3]:
        page.wait_for_selector(f"#finding-{fid} [data-flag-cell='{c}'] .badge.flag-mislabeled")
        assert page.inner_text(f"#finding-{fid} [data-flag-cell='{c}']").strip() == "mislabeled → go"
    # the person's flag was kept, and the column still shows it
    assert page.inner_text(f"#finding-{fid} [data-flag-cell='{members[0]}']").strip() == "cutoff"
    assert page.inner_text(f"#finding-{fid} [data-flag-cell='{members[3]}']").strip() == ""
    assert page.errors == []


def test_label_picker_and_keys_update_the_form(site, page):
    base, _, r2, _, _ = site
    clips = page.request.get(f"{base}/api/clips?run={r2}&agreement=disagree&flag=none&cutoff_max=0.2&per_page=10").json()["items"]
    c = clips[0]
    page.goto(f"{base}/clips/{c['id']}?run={r2}", wait_until="networkidle")
    form = f"form.flag-form[data-clip='{c['id']}']"
    # m: a searchable picker, pre-filled with the suggestion (here the prediction); Enter accepts it
    page.keyboard.press("m")
    page.wait_for_selector("dialog#label-picker[open]")
    assert page.input_value("#label-picker input") == c["pred"]
    assert page.inner_text("#label-picker li.active").startswith(c["pred"])
    page.keyboard.press("Enter")
    page.wait_for_selector(f"[data-flag-cell='{c['id']}'] .badge.flag-mislabeled")
    assert page.inner_text(f"[data-flag-cell='{c['id']}']").strip() == f"mislabeled → {c['pred']}"
    assert page.is_checked(f"{form} input[value=mislabeled]")
    assert page.input_value(f"{form} select[name=corrected_label]") == c["pred"]
    assert page.is_visible("#flag-by") and "flagged by anonymous" in page.inner_text("#flag-by")
    assert "ago" in page.inner_text("#flag-by time")
    # the search is case-insensitive: typing replaces the suggestion
    other = next(lbl for lbl in page.evaluate("earmark.labels()") if lbl not in (c["pred"], c["target"]))
    page.keyboard.press("m")
    page.wait_for_selector("dialog#label-picker[open]")
    page.keyboard.type(other.upper())
    assert page.inner_text("#label-picker li.active").startswith(other)
    page.keyboard.press("Enter")
    wait_for_js(page, f"document.querySelector(\"{form} select[name=corrected_label]\").value === '{other}'")
    assert page.inner_text(f"[data-flag-cell='{c['id']}']").strip() == f"mislabeled → {other}"
    # Escape cancels and writes nothing
    page.keyboard.press("m")
    page.wait_for_selector("dialog#label-picker[open]")
    page.keyboard.press("Escape")
    wait_for_js(page, "!document.querySelector('dialog#label-picker')")
    # with the audio player focused: space plays it (once, not toggled twice), c still flags, the form follows
    page.focus("#clip-audio")
    page.keyboard.press(" ")
    wait_for_js(page, "!document.getElementById('clip-audio').paused", timeout=5_000)
    page.evaluate("document.getElementById('clip-audio').pause()")
    page.focus("#clip-audio")
    page.keyboard.press("c")
    page.wait_for_selector(f"[data-flag-cell='{c['id']}'] .badge.flag-cutoff")
    assert page.is_checked(f"{form} input[value=cutoff]")
    assert page.input_value(f"{form} select[name=corrected_label]") == ""
    page.focus("#clip-audio")
    page.keyboard.press("x")
    wait_for_js(page, f"!document.querySelector(\"[data-flag-cell='{c['id']}'] .badge\")")
    assert not page.is_checked(f"{form} input[value=cutoff]") and page.is_hidden("#flag-by")
    # typing in the note field is typing, not shortcuts
    page.fill(f"{form} input[name=note]", "")
    page.focus(f"{form} input[name=note]")
    page.keyboard.type("jkcx")
    assert page.input_value(f"{form} input[name=note]") == "jkcx" and f"/clips/{c['id']}?" in page.url
    assert page.inner_text(f"[data-flag-cell='{c['id']}']").strip() == ""
    flag = page.request.get(f"{base}/api/clips/{c['id']}?run={r2}").json()["flag"]
    assert flag is None
    assert page.errors == []


def _counts(page) -> dict[str, str]:
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('[data-count]'))
        .map(e => [e.dataset.count + (e.closest('.page-head') ? '@head' : ''), e.textContent]))""")


def test_flags_page_counts_follow_edits_clears_and_undo(site, page):
    base, _, r2, _, members = site
    hdr = {"X-Earmark-CSRF": "1", "Content-Type": "application/json"}
    for c, body in [(members[5], {"reason": "cutoff", "note": "ends early", "author": "bo"}),
                    (members[6], {"reason": "cutoff", "author": "bo"})]:
        assert page.request.post(f"{base}/api/clips/{c}/flag", data=body, headers=hdr).ok
    api = page.request.get(f"{base}/api/flags?limit=1").json()["counts"]
    page.goto(f"{base}/flags?run={r2}&reason=cutoff", wait_until="networkidle")
    total, cut = api["total"], api["cutoff"]
    assert _counts(page)["total@head"] == str(total) and _counts(page)["cutoff"] == str(cut)
    # times read as local date and time plus how long ago, from <time datetime>
    when = page.locator(f"tr[data-clip='{members[5]}'] td.when time").first
    assert when.get_attribute("datetime") and "ago" in when.inner_text()
    # Clear: the counts drop at once, the row greys and offers Undo
    page.click(f"tr[data-clip='{members[5]}'] [data-clear]")
    wait_for_js(page, f"document.querySelector('.page-head [data-count=total]').textContent === '{total - 1}'")
    assert _counts(page)["total"] == str(total - 1) and _counts(page)["cutoff"] == str(cut - 1)
    assert "cleared" in page.get_attribute(f"tr[data-clip='{members[5]}']", "class")
    assert page.request.get(f"{base}/api/clips/{members[5]}?run={r2}").json()["flag"] is None
    # Undo puts the flag back as it was, note and author included
    page.click(f"tr[data-clip='{members[5]}'] [data-undo]")
    wait_for_js(page, f"document.querySelector('.page-head [data-count=total]').textContent === '{total}'")
    flag = page.request.get(f"{base}/api/clips/{members[5]}?run={r2}").json()["flag"]
    assert (flag["reason"], flag["note"], flag["author"]) == ("cutoff", "ends early", "bo")
    assert "cleared" not in (page.get_attribute(f"tr[data-clip='{members[5]}']", "class") or "")
    # Edit to another reason: the tabs move the clip from one count to the other
    noise = _counts(page)["noise_only"]
    page.click(f"tr[data-clip='{members[6]}'] [data-edit]")
    page.select_option(f"tr[data-editor='{members[6]}'] select[name=reason]", "noise_only")
    page.click(f"tr[data-editor='{members[6]}'] button[type=submit]")
    wait_for_js(page, f"document.querySelector('[data-count=cutoff]').textContent === '{cut - 1}'")
    assert _counts(page)["noise_only"] == str(int(noise) + 1) and _counts(page)["total@head"] == str(total)
    # the x key clears too, and the counts follow
    page.click(f"tr[data-clip='{members[6]}'] td.note")
    page.keyboard.press("x")
    wait_for_js(page, f"document.querySelector('.page-head [data-count=total]').textContent === '{total - 1}'")
    assert page.errors == []


def test_clip_list_bulk_select_flags_through_bulk_flag(site, page):
    base, _, r2, _, _ = site
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    page.goto(f"{base}/clips?run={r2}&sort=id&split=test&flag=none&per_page=10", wait_until="networkidle")
    assert page.is_hidden("#bulk-clips")
    page.check("#select-page")
    assert page.locator("tr[data-clip] input.pick:checked").count() == 10
    assert page.inner_text("#bulk-count") == "10" and page.is_visible("#bulk-clips")
    ids = page.eval_on_selector_all("tr[data-clip]", "els => els.map(e => Number(e.dataset.clip))")
    page.uncheck(f"tr[data-clip='{ids[0]}'] input.pick")
    assert page.inner_text("#bulk-count") == "9" and page.eval_on_selector("#select-page", "b => b.indeterminate")
    page.click("#bulk-clips button[type=submit]")  # no reason yet: nothing is asked, nothing written
    assert dialogs == []
    page.select_option("#bulk-clips select[name=reason]", "noise_only")
    page.fill("#bulk-clips input[name=note]", "hum")
    page.click("#bulk-clips button[type=submit]")
    for c in ids[1:]:
        page.wait_for_selector(f"[data-flag-cell='{c}'] .badge.flag-noise_only")
    assert dialogs == ["Flag 9 selected clips as noise only?"]
    assert page.inner_text(f"[data-flag-cell='{ids[0]}']").strip() == ""
    got = page.request.get(f"{base}/api/clips?run={r2}&ids={','.join(map(str, ids))}").json()["items"]
    flags = {c["id"]: c["flag"] for c in got}
    assert flags[ids[0]] is None
    assert all((flags[c]["reason"], flags[c]["note"], flags[c]["author"]) == ("noise_only", "hum", "anonymous")
               for c in ids[1:])
    assert page.errors == []


def test_clip_list_search_and_export_link(site, page):
    base, _, r2, _, _ = site
    page.goto(f"{base}/clips?run={r2}&sort=id", wait_until="networkidle")
    page.fill("#clip-filters input[name=q]", "LEFT")
    page.fill("#clip-filters input[name=speaker]", "00000001")
    page.click("#clip-filters button[type=submit]")
    page.wait_for_url(lambda u: "q=LEFT" in u)
    rows = page.locator("tr[data-clip]")
    assert rows.count() == 1 and "left/00000001_nohash_0.wav" in rows.first.inner_text()
    href = page.get_attribute("#export-clips", "href")
    assert "/clips.csv?" in href and "q=LEFT" in href and "speaker=00000001" in href
    body = page.request.get(base + href).text()
    assert body.count("\r\n") == 2 and "left/00000001_nohash_0.wav" in body
    assert page.errors == []
