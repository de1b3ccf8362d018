"""Slices, metadata filters and colour-by-column on a real store (SQLite and PostgreSQL): a tiny
manifest data set with metadata columns ingested from real WAVs, a run whose errors sit in one
metadata value, then the page and the API through TestClient."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.pipeline.ingest import ingest
from app.store.models import Clip, ClipScore, Dataset, Prediction, Projection
from app.web.main import create_app
from tests.factories import make_run
from tests.ingest_helpers import clip, write_wav_fast

WORDS = ("yes", "no", "up")
N = 90


def _manifest_set(root):
    """90 clips, 6 speakers, metadata gender (text), take (number; missing on every 10th clip), noisy
    (boolean; every 4th clip)."""
    rows = ["path,label,split,speaker,gender,take,noisy"]
    for i in range(N):
        rel = f"audio/c{i:03d}.wav"
        write_wav_fast(root / rel, clip(i, seconds=0.3 + 0.1 * (i % 4)))
        rows.append(f"{rel},{WORDS[i % 3]},{('train', 'validation', 'test')[(i // 3) % 3]},s{i % 6},"
                    f"{('female', 'male')[i % 2]},{'' if i % 10 == 9 else i % 5},{'true' if i % 4 == 0 else 'false'}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


@pytest.fixture
def site(store, tmp_path):
    """The ingested set and a run that gets every noisy clip wrong and every other clip right."""
    report = ingest(store, _manifest_set(tmp_path / "set"), name="tiny", workers=1)
    assert report.meta_columns == {"gender": "text", "take": "number", "noisy": "boolean"}
    with store.sessions() as s:
        ids = [c for (c,) in s.query(Clip.id).filter(Clip.dataset_id == report.dataset_id).order_by(Clip.id)]
        fx = make_run(s, tmp_path, labels=list(WORDS), write_audio=False, disagree_every=10**9, with_scores=False,
                      dataset=(s.get(Dataset, report.dataset_id), ids))
        for p, c in s.query(Prediction, Clip).join(Clip, Clip.id == Prediction.clip_id).filter(
                Prediction.run_id == fx.run_id):
            if c.meta["noisy"]:
                p.pred = next(w for w in sorted(WORDS) if w != p.target)
                p.agree, p.loss = False, 3.0
        # a fifth of the clips without a projection: the cloud's points are not the run's clips one for one
        s.query(Projection).filter(Projection.run_id == fx.run_id, Projection.clip_id % 5 == 0).delete()
        s.commit()
        meta = {cid: m for cid, m in s.query(Clip.id, Clip.meta).filter(Clip.dataset_id == report.dataset_id)}
    app = create_app(store.settings)
    app.state.run_cache.recheck_s = 0.0
    return TestClient(app), fx, meta


def _family(data, name):
    return next(f for f in data["families"] if f["family"] == name)


def test_slices_api_finds_the_bad_value_first_and_every_slice_lists_its_clips(site):
    client, fx, meta = site
    data = client.get(f"/api/slices?run={fx.run_id}&split=all").json()
    n_noisy = sum(1 for m in meta.values() if m["noisy"])
    assert data["n"] == N and data["errors"] == n_noisy
    assert {"meta.gender", "meta.take", "meta.noisy", "speaker", "split", "stat.duration_s"} <= \
        {f["family"] for f in data["families"]}
    assert any(s["name"] == "(missing)" and s["n"] == N // 10 for s in _family(data, "meta.take")["slices"])
    noisy = _family(data, "meta.noisy")["slices"]
    assert [s["name"] for s in noisy] == ["true", "false"]
    worst = noisy[0]
    assert worst["n"] == n_noisy and worst["accuracy"] == 0.0 and worst["excludes_run"] and worst["small"]
    assert worst["gap"] == pytest.approx(1 - n_noisy / N, abs=1e-4)
    assert data["worst"][0]["family"] == "meta.noisy" and data["worst"][0]["name"] == "true"
    # every slice of every family: its link lists exactly its clips
    for fam in data["families"]:
        assert sum(s["n"] for s in fam["slices"]) == N, fam["family"]
        for s in fam["slices"]:
            url = s["clips_url"].replace("/clips?", "/api/clips?") + "&per_page=200"
            listed = client.get(url).json()
            assert listed["total"] == s["n"], (fam["family"], s["name"], url)
            errors = sum(1 for item in listed["items"] if not item["agree"])
            assert errors == s["errors"], (fam["family"], s["name"])


def test_slices_page_shows_families_per_class_and_pairs(site):
    client, fx, _ = site
    r = client.get(f"/slices?run={fx.run_id}&split=all&family=meta.noisy")
    assert r.status_code == 200
    assert "Slices" in client.get("/").text  # in the nav
    rows = re.findall(r'<tr data-href="([^"]+)"', r.text.split('id="family"')[1].split("</table>")[0])
    assert rows[0].endswith("meta.noisy=true")
    assert 'class="badge warn"' in r.text  # the small slice is marked, not hidden
    per_class = r.text.split('id="per-class"')[1].split("</table>")[0]
    assert all(f">{w}</a>" in per_class for w in WORDS)
    assert re.search(r'href="/clips\?run=\d+&amp;label=\w+&amp;pred=\w+"', r.text.split('id="confused-pairs"')[1])
    assert "<script>" not in r.text and 'src="/static/slices.js"' in r.text  # no inline script (CSP)
    assert client.get(f"/slices?run={fx.run_id}&split=bogus").status_code == 422


def test_clip_list_filters_by_metadata_and_says_what_is_wrong(site):
    client, fx, meta = site
    base = f"/api/clips?run={fx.run_id}&per_page=200"
    female = client.get(base + "&meta.gender=female").json()
    assert female["total"] == sum(1 for m in meta.values() if m["gender"] == "female")
    assert all(meta[i["id"]]["gender"] == "female" for i in female["items"])
    ranged = client.get(base + "&meta.take.min=1&meta.take.below=3").json()
    assert {meta[i["id"]]["take"] for i in ranged["items"]} == {1, 2}
    picker = client.get(base + "&col=meta.take&val=1..3").json()
    assert picker["total"] == ranged["total"]
    assert client.get(base + "&meta.noisy=true").json()["total"] == sum(1 for m in meta.values() if m["noisy"])
    assert client.get(base + "&meta.take.missing=1").json()["total"] == N // 10
    other = client.get(base + "&speaker.not=s0&speaker.not=s1").json()  # an "other" slice's link
    assert other["total"] == N - 2 * N // 6 and all(i["speaker"] not in ("s0", "s1") for i in other["items"])
    bad = client.get(base + "&meta.colour=red")
    assert bad.status_code == 400 and "meta.gender" in bad.json()["detail"]
    assert client.get(base + "&meta.take.min=lots").status_code == 422
    page = client.get(f"/clips?run={fx.run_id}&meta.gender=male")
    assert page.status_code == 200 and "gender = male" in page.text
    assert '<input type="hidden" name="meta.gender" value="male">' in page.text


def test_clip_page_shows_typed_metadata(site):
    client, fx, meta = site
    cid = next(c for c, m in meta.items() if m["noisy"])
    detail = client.get(f"/api/clips/{cid}?run={fx.run_id}").json()
    assert [(m["name"], m["kind"]) for m in detail["meta"]] == [("gender", "text"), ("take", "number"),
                                                                ("noisy", "boolean")]
    html = client.get(f"/clips/{cid}?run={fx.run_id}").text
    assert re.search(r'meta-name[^>]*>noisy</dt><dd class="meta-value" data-kind="boolean"><a href="[^"]*meta.noisy=true',
                     html)


def test_cloud_colours_by_any_column_aligned_with_its_points(site):
    client, fx, meta = site
    legend = client.get(f"/api/cloud?run={fx.run_id}").json()
    body = client.get(f"/api/cloud.bin?run={fx.run_id}").content
    ids = np.frombuffer(body, dtype="<u4", count=legend["n"])
    col = client.get(f"/api/cloud/column?run={fx.run_id}&name=meta.gender").json()
    codes = np.frombuffer(base64.b64decode(col["data"]), dtype=col["dtype"])
    assert len(codes) == legend["n"] == N - N // 5
    assert [col["names"][c - 1] for c in codes] == [meta[int(i)]["gender"] for i in ids]
    take = client.get(f"/api/cloud/column?run={fx.run_id}&name=meta.take").json()
    q = np.frombuffer(base64.b64decode(take["data"]), dtype="<u2")
    lo, hi = take["range"]
    takes = [meta[int(i)].get("take") for i in ids]
    assert [int(c) == 0 for c in q] == [t is None for t in takes]  # 0: no value
    has = q > 0
    assert np.allclose(lo + (q[has] - 1) / 65534 * (hi - lo), [t for t in takes if t is not None], atol=1e-3)
    assert client.get(f"/api/cloud/column?run={fx.run_id}&name=meta.nope").status_code == 404
    page = client.get(f"/cloud?run={fx.run_id}&color=meta.noisy").text
    assert '<option value="meta.noisy" selected>' in page


def test_slices_follow_a_new_analysis(site, store):
    client, fx, _ = site
    first = client.get(f"/api/slices?run={fx.run_id}&split=all").json()
    assert first["disagreement"] is None  # not analyzed yet
    with store.sessions() as s:
        for (cid,) in s.query(Clip.id).filter(Clip.dataset_id == fx.dataset_id):
            s.add(ClipScore(run_id=fx.run_id, clip_id=cid, cutoff_score=0.0, label_issue=cid % 3 == 0))
        s.commit()
    again = client.get(f"/api/slices?run={fx.run_id}&split=all").json()
    assert again["disagreement"] == pytest.approx(sum(1 for c in fx.clip_ids if c % 3 == 0) / N, abs=1e-4)
