"""The real-speech figures the app quotes (``app.measured``): each one appears in its section of
docs/benchmarks.md (a figure changed in one place only fails here), the guide page states them in each
score's entry, and every score a page shows carries its tooltip from the same home."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from app.measured import ROWS, TERMS, Figure, Measured, ScoreHelp, score_help
from app.web.deps import templates
from app.web.main import create_app
from ml.analysis import cutoff, quality
from tests.factories import add_finding, make_run
from tests.test_html import parse

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "docs" / "benchmarks.md"
TEMPLATES = REPO / "templates"
# a number as the docs print them: 0.949, 374/394, 95.7%, 4,704
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def section(text: str, heading: str) -> str:
    """The lines after ``heading`` up to the next heading of any level ('' when there is no such heading)."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start + 1:end])


def _has(text: str, token: str) -> bool:
    return re.search(rf"(?<![\d.,/]){re.escape(token)}(?![\d/]|[.,]\d)", text) is not None


def _agrees(f: Figure) -> bool:
    """A figure's value is its count, rounded as printed."""
    if f.value is None or f.count is None:
        return True
    hits, total = (int(x) for x in f.count.split("/"))
    decimals = len(f.value.split(".")[1]) if "." in f.value else 0
    return total > 0 and abs(float(f.value) - hits / total) <= 0.5 * 10 ** -decimals + 1e-9


def problems(row: Measured, text: str) -> list[str]:
    """What of ``row`` docs/benchmarks.md (``text``) does not say, in its section."""
    body = section(text, row.source)
    if not body:
        return [f"no section {row.source!r} in docs/benchmarks.md"]
    out = []
    for name in ("precision", "audited", "recall"):
        for f in getattr(row, name):
            for token in (f.value, f.count):
                if token is not None and not _has(body, token):
                    out.append(f"{row.finder} ({row.what}): {name} {token} is not in {row.source!r}")
            if not _agrees(f):
                out.append(f"{row.finder} ({row.what}): {name} {f.value} is not {f.count}")
    for cmd in row.commands:
        if cmd not in body:
            out.append(f"{row.finder}: command {cmd!r} is not in {row.source!r}")
    for name in ("model", "summary", "extra", "weak"):
        for token in NUMBER.findall(getattr(row, name)):
            if not _has(body, token):
                out.append(f"{row.finder} ({row.what}): {name} quotes {token}, which {row.source!r} does not")
    return out


def test_every_quoted_figure_is_in_docs_benchmarks():
    text = BENCHMARKS.read_text(encoding="utf-8")
    found = [p for row in ROWS for p in problems(row, text)]
    assert not found, "change docs/benchmarks.md and app/measured.py together:\n" + "\n".join(found)


def test_a_figure_changed_in_one_place_only_is_caught():
    text = BENCHMARKS.read_text(encoding="utf-8")
    row = next(r for r in ROWS if r.current and r.precision and r.precision[0].count)
    f = row.precision[0]
    assert problems(row, text) == []
    # changed in the docs only (value and count, as a re-measurement would)
    hits, total = (int(x) for x in f.count.split("/"))
    new = Figure(f"{(hits - 3) / total:.{len(f.value) - 2}f}", f"{hits - 3}/{total}")
    assert problems(row, text.replace(f"{f.value}** ({f.count})", f"{new.value}** ({new.count})"))
    # changed in the home only
    moved = dataclasses.replace(row, precision=(new, *row.precision[1:]))
    assert problems(moved, text)
    # a value that does not match its count, and a number in the words the docs do not give
    assert problems(dataclasses.replace(row, precision=(Figure("0.5", f.count), *row.precision[1:])), text)
    assert problems(dataclasses.replace(row, extra=row.extra + ", 999/1000 more"), text)
    # a section that is gone
    assert problems(dataclasses.replace(row, source="## No such section"), text)


def test_every_finder_with_rows_has_an_entry_and_current_rows_come_first():
    finders = {f for t in TERMS for f in t.finders}
    assert {r.finder for r in ROWS} <= finders
    for t in TERMS:
        rows = score_help.rows_for(t.anchor)
        assert [r.current for r in rows] == sorted((r.current for r in rows), reverse=True)
    assert score_help.rows_for("cutoff-score")[0].current and score_help.rows_for("label-issues")[0].current


@pytest.fixture
def site(sqlite_store, tmp_path):
    """A 90-clip run with a cut-off finding, and a client on it."""
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=90)
        add_finding(s, fx.run_id, fx.clip_ids[10:13])
        s.commit()
    return TestClient(create_app(sqlite_store.settings)), fx


def _entry(doc, anchor: str):
    found = doc.select(id=anchor)
    assert len(found) == 1, anchor
    return found[0]


def test_guide_states_each_figure_in_its_entry(site):
    client, _ = site
    doc = parse(client.get("/guide").text)
    for t in TERMS:
        entry = _entry(doc, t.anchor)
        if not t.rated:
            continue
        # label issues is a paragraph of the label-quality entry: its figures sit beside it
        text = entry.text if entry.tag in ("article", "section", "div") else entry.parent.text
        rows = score_help.rows_for(t.anchor)
        if not rows:
            assert score_help.not_measured in text, t.anchor
        for r in rows:
            if t.anchor == "finding-score":
                continue  # its rows are error clusters', shown there; the entry says the line
            for f in (*r.precision, *r.audited, *r.recall):
                assert str(f) in text, (t.anchor, str(f))
            assert r.model in text and r.data in text and r.weak in text and r.extra in text, t.anchor
            for script in r.scripts:  # the entry names the bench script that makes its figures
                assert script in text, (t.anchor, script)
        if rows and all("real_finders" not in c for r in rows for c in r.commands):
            assert "bench/real_finders.py" not in text, t.anchor
    assert score_help.figures_line("finding-score") in _entry(doc, "finding-score").text
    page = doc.text
    assert score_help.not_evidence in page and "eSpeak" in page
    # the thresholds come from the code
    scores = _entry(doc, "scores").text
    assert f"at {cutoff.CUTOFF_THRESHOLD} or above" in scores
    assert f"below {quality.SILENT_PEAK_DBFS:g} dBFS" in scores and f"{quality.DC_MAX:g} of full scale" in scores


def test_a_new_row_shows_in_the_guide_and_the_tooltip():
    # what the audio-quality engineer does: add a row for a finder some term lists
    row = Measured("clipped", "clips clipped by ml.plant", "Arabic Speech Commands", (0,), "none", True,
                   "## Somewhere", (), precision=(Figure("0.987", "77/78"),), recall=(Figure("0.962", "77/80"),),
                   weak="soft clipping under 0.2% of samples")
    helped = ScoreHelp(rows=(*ROWS, row))
    html = templates.env.get_template("_help.html").module.figures("quality-clipped", help=helped)
    assert "0.987 (77/78)" in html and "0.962 (77/80)" in html and "soft clipping" in html
    unmeasured = [t.anchor for t in TERMS if t.rated and not score_help.rows_for(t.anchor)]
    for anchor in unmeasured[:1]:  # a term with no row yet says so
        assert score_help.not_measured in str(templates.env.get_template("_help.html").module.figures(anchor))
    assert "precision 0.987, recall 0.962" in helped.tooltip("quality-clipped")
    assert helped.kind_tooltip("clipped") == helped.tooltip("quality-clipped")


def _links(html: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in parse(html).select("a", cls="score-help"):
        out.setdefault(a.attrs["href"].split("#")[1], []).append(a.attrs.get("title") or "")
    return out


def test_every_score_a_page_shows_has_its_tooltip(site):
    client, fx = site
    cid = fx.clip_ids[0]
    pages = {"clips": f"/clips?run={fx.run_id}", "clip": f"/clips/{cid}?run={fx.run_id}",
             "issues": f"/issues?run={fx.run_id}", "cloud": f"/cloud?run={fx.run_id}&color=cutoff",
             "slices": f"/slices?run={fx.run_id}&family=split"}
    expect = {"clips": {"confidence", "loss", "cutoff-score"}, "clip": {"confidence", "loss", "cutoff-score"},
              "issues": {"finding-score"}, "cloud": {"confidence", "loss", "cutoff-score"}, "slices": {"label-issues"}}
    for name, path in pages.items():
        r = client.get(path)
        assert r.status_code == 200, (name, r.text[:300])
        links = _links(r.text)
        assert expect[name] <= set(links), (name, sorted(links))
        for anchor, titles in links.items():
            assert titles and all(t == score_help.tooltip(anchor) for t in titles), (name, anchor)
    # the tooltip says what the score means and its real-speech figure, read from the home
    tip = score_help.tooltip("cutoff-score")
    head = next(r for r in ROWS if r.finder == "cutoff" and r.current)
    assert head.precision[0].value in tip and head.recall[0].value in tip and "real speech" in tip
    assert str(escape(tip)) in client.get(pages["clips"]).text
    # the Issues page: each issue's kind badge carries its finder's tooltip
    issues = parse(client.get(pages["issues"]).text)
    badge = issues.select("span", cls="kind-cutoff")[0]
    assert badge.attrs["title"] == score_help.tooltip("cutoff-score")


def test_every_term_a_template_uses_has_a_guide_entry(site):
    client, _ = site
    used = set()
    for path in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"h\.(?:term|figures)\('([\w-]+)'", path.read_text(encoding="utf-8")))
    used |= {a for _, a in re.findall(r"\('(\w+)', '([\w-]+)'\)", (TEMPLATES / "cloud.html").read_text())
             if a in {t.anchor for t in TERMS}}
    assert used, "no h.term calls found"
    doc = parse(client.get("/guide").text)
    for anchor in used:
        score_help.term(anchor)
        _entry(doc, anchor)


def test_the_user_guides_real_speech_figures_are_in_docs_benchmarks():
    from ml.analysis.clusters import MIN_JUDGED

    guide = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
    text = BENCHMARKS.read_text(encoding="utf-8")
    body = section(guide, "## Real speech: how good each finder is, and where it is weak")
    assert body, "docs/guide.md lost its real-speech section"
    sources = "\n".join(section(text, s) for s in {r.source for r in ROWS})
    settings = {f"{cutoff.CUTOFF_THRESHOLD:g}", str(MIN_JUDGED)}  # the code's thresholds, not figures
    missing = [t for t in NUMBER.findall(body.replace("–", " ")) if t not in settings and not _has(sources, t)]
    assert not missing, f"docs/guide.md quotes figures docs/benchmarks.md does not give: {missing}"
