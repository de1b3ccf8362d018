"""Bulk flags in the browser keep people's flags: the Issues page's "Flag all" and the cloud's
"Flag selected" confirm with the count, say how many flags people wrote, and keep them unless the
user agrees to replace them. The cloud's form has no default reason."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.config import Settings
from app.store.db import open_store
from app.store.flags import upsert_flag
from app.store.models import Clip, Finding, FindingClip, Flag
from tests.browser.conftest import serve_in_thread, wait_for_js
from tests.factories import make_run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A run of 40 clips with a cut-off finding of 12, and a person's flag with a note on its first clip."""
    root = tmp_path_factory.mktemp("bulk")
    settings = Settings(data_dir=root / "earmark-data")
    store = open_store(settings)
    with store.sessions() as s:
        fx = make_run(s, root / "audio", n_clips=40)
        ids = list(s.scalars(select(Clip.id).where(Clip.dataset_id == fx.dataset_id).order_by(Clip.id)))
        f = Finding(run_id=fx.run_id, kind="cutoff", rank=1, score=0.9, title="cut off at the end",
                    description="d", reason="cutoff", n_clips=12)
        s.add(f)
        s.flush()
        s.add_all([FindingClip(finding_id=f.id, clip_id=c, score=1.0) for c in ids[:12]])
        upsert_flag(s, ids[0], "mislabeled", "go", note="I listened", author="ana")
        s.commit()
        fid = f.id
    with serve_in_thread(settings) as base:
        yield base, fx, ids, fid, store
    store.engine.dispose()


def _flags(store) -> dict[int, tuple]:
    with store.sessions() as s:
        return {f.clip_id: (f.reason, f.note, f.author) for f in s.scalars(select(Flag))}


def test_issues_flag_all_confirms_and_keeps_a_persons_flag(site, page):
    base, fx, ids, fid, store = site
    dialogs: list[str] = []

    def answer(d):  # yes to "Flag 12 clips?", no to "Replace the 1 flag people wrote?"
        dialogs.append(d.message)
        d.accept() if len(dialogs) == 1 else d.dismiss()

    page.on("dialog", answer)
    page.goto(f"{base}/issues?run={fx.run_id}")
    page.click(f"#finding-{fid} button.flag-all")
    wait_for_js(page, "document.getElementById('toast') && !document.getElementById('toast').hidden")
    assert len(dialogs) == 2, dialogs
    assert "Flag 12 clips of this issue as cutoff?" in dialogs[0] and "1 of them already have a flag a person" \
        in dialogs[0]
    assert "Replace the 1 flag(s) people wrote?" in dialogs[1]
    flags = _flags(store)
    assert flags[ids[0]] == ("mislabeled", "I listened", "ana")  # kept
    assert all(flags[c][0] == "cutoff" and flags[c][2] == "anonymous" for c in ids[1:12])  # never 'auto'
    assert "kept 1 flag(s) people wrote" in page.inner_text("#toast")
    assert page.errors == []


def test_cloud_bulk_flag_has_no_default_reason_and_confirms(site, page):
    base, fx, ids, fid, store = site
    page.goto(f"{base}/cloud?run={fx.run_id}")
    assert page.eval_on_selector("#bulk-flag select[name=reason]", "s => s.value") == ""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    before = _flags(store)
    answer = page.evaluate("""(ids) => earmark.bulkFlag(earmark.url("flags_bulk"),
        {clip_ids: ids, reason: "noise_only", author: earmark.author()}, "selected clips")""", ids[:3])
    assert answer is None and len(dialogs) == 1 and "Flag 3 selected clips as noise only?" in dialogs[0]
    assert _flags(store) == before  # cancelled: nothing written
