"""The HTML pages through TestClient: status, content (parsed with CSS-like lookups), filters, escaping."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from app.store.models import Clip, Dataset, Prediction, Reject
from app.web.main import create_app
from tests.factories import add_finding, make_run


class Node:
    """A parsed element: tag, attributes, children and text."""

    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.text_parts = tag, dict(attrs), parent, [], []

    @property
    def text(self) -> str:
        return "".join(self.text_parts + [c.text for c in self.children]).strip()

    def iter(self):
        for c in self.children:
            yield c
            yield from c.iter()

    def select(self, tag=None, cls=None, **attrs) -> list[Node]:
        """Descendants matching a tag, a class and attribute values (True = present)."""
        out = []
        for n in self.iter():
            if tag and n.tag != tag:
                continue
            if cls and cls not in (n.attrs.get("class") or "").split():
                continue
            if any((k.replace("_", "-") not in n.attrs) if v is True else n.attrs.get(k.replace("_", "-")) != v
                   for k, v in attrs.items()):
                continue
            out.append(n)
        return out


VOID = {"meta", "link", "img", "input", "br", "hr", "source", "col", "area", "base", "wbr"}


class _Parser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {})
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text_parts.append(data)


def parse(html: str) -> Node:
    """Parse a page with the standard library's HTML parser."""
    p = _Parser()
    p.feed(html)
    return p.root


@pytest.fixture
def site(sqlite_store, tmp_path):
    """A store with one 90-clip run (real WAVs) and a client on it."""
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=90)
    client = TestClient(create_app(sqlite_store.settings))
    return client, fx, sqlite_store


def test_overview_lists_runs_charts_leakage_and_rejects(site):
    client, fx, st = site
    with st.sessions() as s:
        ds = s.get(Dataset, fx.dataset_id)
        ds.leakage = {"speakers_in_several_splits": ["abc123", "def456"], "files_in_several_splits": []}
        ds.n_rejects = 1
        s.add(Reject(dataset_id=ds.id, path="yes/bad.wav", reason="sample_rate", detail="8000 Hz, expected 16000"))
        s.commit()
    r = client.get("/")
    assert r.status_code == 200
    doc = parse(r.text)
    nav = [a.text for a in doc.select("nav", cls="nav")[0].select("a")]
    assert {"Overview", "Confusion", "Clips", "Cloud", "API"} <= set(nav)
    rows = doc.select("tr", data_run_row=str(fx.run_id))
    assert len(rows) == 1 and "%" in rows[0].text
    charts = json.loads(doc.select("script", cls="dist-data")[0].text)
    assert [c["layout"]["title"]["text"].split(" ")[0] for c in charts] == ["train", "validation", "test"]
    assert sum(sum(c["data"][0]["y"]) for c in charts) == 90
    leak = doc.select("div", cls="leakage")[0].text
    assert "abc123" in leak and "2 speakers have clips in more than one split" in leak and "_" not in leak
    assert "yes/bad.wav" in doc.select("div", cls="rejects")[0].text


def test_overview_marks_under_represented_classes(sqlite_store, tmp_path):
    labels = ["yes", "no", "up", "down"]
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=120, labels=labels, write_audio=False)
        # remove most 'up' clips so it is under-represented in every split
        ups = s.query(Clip.id).filter(Clip.label == "up").all()[3:]
        for (cid,) in ups:
            s.query(Prediction).filter(Prediction.clip_id == cid).delete()
            s.delete(s.get(Clip, cid))
        s.commit()
    client = TestClient(create_app(sqlite_store.settings))
    doc = parse(client.get("/").text)
    marked = [p.text for p in doc.select("p", cls="small") if "Under-represented" in p.text]
    assert marked and all("up" in t for t in marked)
    charts = json.loads(doc.select("script", cls="dist-data")[0].text)
    bar = charts[0]["data"][0]
    assert bar["marker"]["color"][bar["x"].index("up")] != bar["marker"]["color"][bar["x"].index("yes")]
    assert fx.run_id


def test_overview_empty_store_explains_first_steps(sqlite_store):
    r = TestClient(create_app(sqlite_store.settings)).get("/")
    assert r.status_code == 200 and "earmark ingest" in r.text


def test_confusion_cells_count_the_split_and_link_to_the_list(site):
    client, fx, st = site
    doc = parse(client.get(f"/confusion?run={fx.run_id}&split=train").text)
    links = doc.select("table", id="confusion")[0].select("a")
    with st.sessions() as s:
        n_train = s.query(Clip).filter(Clip.split == "train").count()
    assert sum(int(a.text) for a in links) == n_train
    href = links[0].attrs["href"]
    assert href.startswith("/clips?") and "label=" in href and "pred=" in href and "split=train" in href
    listed = parse(client.get(href).text).select("tr", data_clip=True)
    assert len(listed) == int(links[0].text)


def test_confusion_row_normalised_shows_percentages(site):
    client, fx, _ = site
    doc = parse(client.get(f"/confusion?run={fx.run_id}&split=validation&norm=row").text)
    rows = doc.select("table", id="confusion")[0].select("tbody")[0].select("tr")
    for row in rows:
        assert sum(int(a.text) for a in row.select("a")) in range(98, 103)  # rounding


def test_confusion_35_classes_renders_every_cell(sqlite_store, tmp_path):
    labels = [f"w{i:02d}" for i in range(35)]
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=35 * 6, labels=labels, write_audio=False)
    doc = parse(TestClient(create_app(sqlite_store.settings)).get(f"/confusion?run={fx.run_id}&split=train").text)
    table = doc.select("table", id="confusion")[0]
    assert len(table.select("th", cls="col")) == 35
    assert len(table.select("td", cls="c")) == 35 * 35


def _rows(client, query):
    doc = parse(client.get("/clips" + query).text)
    return doc, doc.select("tr", data_clip=True)


def _num(cell):
    return float(cell.text)


def test_clip_list_defaults_to_highest_loss_first(site):
    client, fx, _ = site
    _, rows = _rows(client, f"?run={fx.run_id}")
    losses = [_num(r.select("td", cls="num")[1]) for r in rows]
    assert len(rows) == 50 and losses == sorted(losses, reverse=True)


def test_clip_list_filters_split_label_prediction_agreement_and_ranges(site):
    client, fx, _ = site
    _, rows = _rows(client, f"?run={fx.run_id}&split=train&agreement=disagree")
    assert rows and all("disagrees" in r.text and "train" in r.text for r in rows)
    _, rows = _rows(client, f"?run={fx.run_id}&label=yes&pred=yes")
    assert rows and all(r.select("td")[4].text.startswith("yes") and r.select("td")[5].text.startswith("yes")
                        for r in rows)
    _, rows = _rows(client, f"?run={fx.run_id}&conf_min=0.5&conf_max=0.9&loss_max=1.5&per_page=200")
    assert rows and all(0.5 <= _num(r.select("td", cls="num")[0]) <= 0.9 for r in rows)
    assert all(_num(r.select("td", cls="num")[1]) <= 1.5 for r in rows)
    _, rows = _rows(client, f"?run={fx.run_id}&cutoff_min=0.7&sort=cutoff")
    cut = [_num(r.select("td", cls="num")[2]) for r in rows]
    assert cut and min(cut) >= 0.69 and cut == sorted(cut, reverse=True)
    _, rows = _rows(client, f"?run={fx.run_id}&sort=confidence")
    conf = [_num(r.select("td", cls="num")[0]) for r in rows]
    assert conf == sorted(conf)


def test_clip_list_flag_filter_and_empty_fields(site):
    client, fx, _ = site
    h = {"X-Earmark-CSRF": "1"}
    client.post(f"/api/clips/{fx.clip_ids[5]}/flag", json={"reason": "cutoff"}, headers=h)
    client.post(f"/api/clips/{fx.clip_ids[6]}/flag", json={"reason": "mislabeled", "corrected_label": "go"}, headers=h)
    _, rows = _rows(client, f"?run={fx.run_id}&flag=any&conf_min=&split=")
    assert sorted(int(r.attrs["data-clip"]) for r in rows) == [fx.clip_ids[5], fx.clip_ids[6]]
    _, rows = _rows(client, f"?run={fx.run_id}&flag=mislabeled")
    assert [int(r.attrs["data-clip"]) for r in rows] == [fx.clip_ids[6]] and "→ go" in rows[0].text
    _, rows = _rows(client, f"?run={fx.run_id}&flag=none&per_page=200")
    assert len(rows) == 88


def test_clip_list_paginates(site):
    client, fx, _ = site
    doc1, rows1 = _rows(client, f"?run={fx.run_id}&per_page=40")
    doc3, rows3 = _rows(client, f"?run={fx.run_id}&per_page=40&page=3")
    assert len(rows1) == 40 and len(rows3) == 10
    assert "page 3 of 3" in doc3.select("nav", cls="pager")[0].text
    assert not {r.attrs["data-clip"] for r in rows1} & {r.attrs["data-clip"] for r in rows3}
    assert doc1.select("a", rel="next")[0].attrs["href"].endswith("page=2")


def test_clip_list_restricts_to_a_finding(site):
    client, fx, st = site
    with st.sessions() as s:
        fid = add_finding(s, fx.run_id, fx.clip_ids[10:13], title="words cut at the end", score=0.9)
        s.commit()
    doc, rows = _rows(client, f"?run={fx.run_id}&finding={fid}")
    assert sorted(int(r.attrs["data-clip"]) for r in rows) == fx.clip_ids[10:13]
    assert "words cut at the end" in doc.text
    assert client.get(f"/clips?run={fx.run_id}&finding=9999").status_code == 404


def test_clip_rows_have_player_and_spectrogram(site):
    client, fx, _ = site
    _, rows = _rows(client, f"?run={fx.run_id}")
    row = rows[0]
    cid = row.attrs["data-clip"]
    assert row.select("button", cls="play")[0].attrs["data-play"] == cid
    assert row.select("img", cls="spectro")[0].attrs["src"] == f"/media/clips/{cid}/spectrogram.png?size=small"


def test_clip_page_shows_everything(site):
    client, fx, _ = site
    cid = fx.clip_ids[7]
    r = client.get(f"/clips/{cid}?run={fx.run_id}")
    assert r.status_code == 200
    doc = parse(r.text)
    assert doc.select("audio", id="clip-audio")[0].attrs["src"] == f"/media/clips/{cid}/audio.wav"
    assert doc.select("img", cls="spectro")[0].attrs["src"].startswith(f"/media/clips/{cid}/spectrogram.png")
    assert doc.select("img", cls="wave")
    assert len(doc.select("table", cls="top5")[0].select("tr")) == 5
    tables = doc.select("table", cls="data")
    near = [t for t in tables if "similarity" in t.text][0]
    assert len(near.select("tbody")[0].select("tr")) == 10
    assert doc.select("form", cls="flag-form")[0].attrs["data-clip"] == str(cid)
    assert "Other clips of speaker" in doc.text and "RMS level" in doc.text


def test_clip_page_prev_next_follow_the_list(site):
    client, fx, _ = site
    _, rows = _rows(client, f"?run={fx.run_id}&split=test")
    ids = [r.attrs["data-clip"] for r in rows]
    doc = parse(client.get(f"/clips/{ids[1]}?run={fx.run_id}&split=test").text)
    box = doc.select("div", data_current_clip=ids[1])[0]
    assert f"/clips/{ids[2]}?" in box.attrs["data-next"] and "split=test" in box.attrs["data-next"]
    assert f"/clips/{ids[0]}?" in box.attrs["data-prev"]


def test_cloud_page_embeds_config(site):
    client, fx, _ = site
    doc = parse(client.get(f"/cloud?run={fx.run_id}&color=loss&disagree=true").text)
    cfg = json.loads(doc.select("script", id="cloud-config")[0].text)
    assert cfg["color"] == "loss" and cfg["disagree"] is True and cfg["bin_url"].startswith("/api/cloud.bin")
    assert doc.select("script", src="/static/vendor/plotly.min.js")
    assert client.get("/cloud?color=rainbow").status_code == 422


def test_hostile_label_note_and_names_come_back_escaped(site):
    client, fx, st = site
    evil = "<script>alert(1)</script>"
    cid = fx.clip_ids[3]
    with st.sessions() as s:
        s.get(Dataset, fx.dataset_id).name = f"ds{evil}"
        s.get(Clip, cid).path = f"yes/{evil}.wav"
        s.get(Clip, fx.clip_ids[4]).label = evil  # goes into the chart JSON embedded in the overview
        s.add(Reject(dataset_id=fx.dataset_id, path=f"{evil}.wav", reason="unreadable", detail=evil))
        s.commit()
    r = client.post(f"/api/clips/{cid}/flag", json={"reason": "other", "note": evil, "author": evil},
                    headers={"X-Earmark-CSRF": "1"})
    assert r.status_code == 200 and r.json()["note"] == evil
    assert "\\u003cscript\\u003e" in client.get("/").text
    for url in ["/", f"/clips?run={fx.run_id}&flag=any", f"/clips/{cid}?run={fx.run_id}"]:
        html = client.get(url).text
        assert "<script>alert(1)</script>" not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
    # a label only the data carries, e.g. in a hostile query, is escaped too
    assert "<script>alert" not in client.get(f"/clips?run={fx.run_id}&label={evil}").text


def test_error_pages_render_problems(site):
    client, fx, _ = site
    r = client.get("/clips/424242")
    assert r.status_code == 404 and "no clip 424242" in r.text and 'class="problem' in r.text
    r = client.get("/clips?conf_min=high")
    assert r.status_code == 422 and "conf_min" in r.text
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/confusion?run=999").status_code == 404


def test_docs_page_works_offline_and_lists_the_api(site):
    client, _, _ = site
    r = client.get("/docs")
    assert r.status_code == 200
    assert "/api/clips" in r.text and "/api/flags/bulk" in r.text and "/openapi.json" in r.text
    assert not re.search(r"https?://(?!127\.0\.0\.1)", r.text.split("<main", 1)[1])


def test_pages_reference_no_external_assets(site):
    client, fx, _ = site
    for url in ["/", "/confusion", "/clips", f"/clips/{fx.clip_ids[0]}", "/cloud", "/docs"]:
        html = client.get(url).text
        assert not re.search(r"""(src|href)=["']https?://""", html), url
    assert client.get("/static/vendor/plotly.min.js").status_code == 200


def test_missing_clips_and_findings_answer_with_one_wording(site):
    """Every way of naming a clip or a finding that does not exist says so the same way (ClipNotFound /
    FindingNotFound), on pages and in the API."""
    from app.errors import ClipNotFound, FindingNotFound

    client, fx, _ = site
    clip, finding = ClipNotFound(424242), FindingNotFound(31337)
    for url in ["/clips/424242", "/api/clips/424242", "/media/clips/424242/audio.wav",
                "/media/clips/424242/spectrogram.png", "/media/clips/424242/waveform.png"]:
        r = client.get(url + f"?run={fx.run_id}" if "?" not in url else url)
        assert r.status_code == 404, url
        body = r.json() if url.startswith(("/api", "/media")) else None
        if body is not None:
            assert (body["title"], body["hint"]) == (clip.title, clip.hint), url
        else:
            assert clip.title in r.text and str(escape(clip.hint)) in r.text
    for url in ["/api/findings/31337", f"/clips?run={fx.run_id}&finding=31337", f"/api/clips?run={fx.run_id}&finding=31337",
                f"/cloud?run={fx.run_id}&finding=31337"]:
        r = client.get(url)
        assert r.status_code == 404, url
        if url.startswith("/api"):
            assert (r.json()["title"], r.json()["hint"]) == (finding.title, finding.hint), url
        else:
            assert finding.title in r.text and str(escape(finding.hint)) in r.text, url
    r = client.post("/api/findings/31337/flag", json={}, headers={"X-Earmark-CSRF": "1"})
    assert r.status_code == 404 and r.json()["title"] == finding.title


def test_pages_hand_their_urls_to_the_scripts(site):
    from app.web import urls

    client, fx, _ = site
    html = client.get(f"/clips/{fx.clip_ids[0]}?run={fx.run_id}").text
    tree = parse(html)
    [script] = tree.select("script", id="earmark-urls")
    assert json.loads(script.text) == urls.js_templates()
    assert json.loads(script.text)["audio"] == "/media/clips/{id}/audio.wav"


def test_run_selector_is_read_with_the_pages_own_session(site, monkeypatch):
    """render() does not open a second session for the run selector on a page that has one."""
    client, fx, st = site
    opened = []
    store = client.app.state.store
    real = store.sessions

    class Counting:
        def __call__(self, *a, **k):
            opened.append(1)
            return real(*a, **k)

    monkeypatch.setattr(store, "sessions", Counting())
    r = client.get(f"/clips?run={fx.run_id}")
    assert r.status_code == 200 and f'<option value="{fx.run_id}"' in r.text
    assert len(opened) == 1
