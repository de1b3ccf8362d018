"""The flag domain (``app.flags``): one rule for what a flag does to a clip's training label.

``earmark relabel`` (a corrected copy on disk) and ``earmark train --apply-flags`` (label overrides on
a run) must give every clip the same label from the same flags: every reason × cut-off policy × task
× kind of corrected label goes through both paths, and they agree. They also record the flags used
the same way, with the same time format.
"""

from __future__ import annotations

import csv
import itertools

import pytest
from sqlalchemy import select

from app.flags import CUTOFF, REASONS, SILENCE, UNKNOWN
from app.pipeline.relabel import MANIFEST, corrected_labels, relabel_to_dir
from app.pipeline.run_spec import RunSpec
from app.pipeline.train import create_run, run_targets
from app.store.clips import load_clips
from app.store.flags import upsert_flag
from app.store.models import Clip
from ml.config import TrainConfig
from ml.speech_commands import task_named
from tests.factories import make_dataset

LABELS = ["yes", "no", "bed", "cat"]  # two of the 12-class keywords, two words it files under _unknown_
CORRECTED = [None, "no", "bed", UNKNOWN, CUTOFF, SILENCE]  # a keyword, another word, the special labels
TASKS = ("all", "v1-12")
POLICIES = ("class", "exclude")


def _flag_every_combination(session, ds_id: int) -> dict[int, tuple[str, str | None]]:
    """One flag per (reason, corrected label) on a 'yes' clip and on a 'cat' clip."""
    by_label: dict[str, list[int]] = {}
    for cid, label in session.execute(select(Clip.id, Clip.label).where(Clip.dataset_id == ds_id)
                                      .order_by(Clip.id)):
        by_label.setdefault(label, []).append(cid)
    flags = {}
    combos = [(r, c) for r, c in itertools.product(REASONS, CORRECTED) if not (r == "mislabeled" and c is None)]
    for i, (reason, corrected) in enumerate(combos):
        for label in ("yes", "cat"):
            cid = by_label[label][i]
            upsert_flag(session, cid, reason, corrected, note="t", author="tester")
            flags[cid] = (reason, corrected)
    session.commit()
    return flags


def _apply_flags_path(store, ds, task: str, policy: str) -> tuple[dict[int, str | None], list[dict], list[str]]:
    """What ``earmark train --apply-flags`` trains each clip on (None: left out of training)."""
    with store.sessions() as s:
        run = create_run(s, store.settings, ds.id, TrainConfig(classes=task, epochs=1),
                         spec=RunSpec(apply_flags=True, cutoff_policy=policy), name=f"{task}-{policy}")
        clips = load_clips(s, ds.id)
        names, idx = run_targets(clips, run.classes, task, run.label_map)
        out = {cid: (names[i] if idx[i] >= 0 else None) for i, cid in enumerate(clips.ids)}
        return out, list(run.flags_used), list(run.classes)


def _relabel_path(store, ds, task: str, policy: str, out_dir) -> dict[int, str | None]:
    """What training ``task`` on the copy ``earmark relabel`` writes gives each clip (None: not in the copy)."""
    with store.sessions() as s:
        relabel_to_dir(s, out_dir, ds.id, policy)
        ids = dict(s.execute(select(Clip.path, Clip.id).where(Clip.dataset_id == ds.id)).all())
    with open(out_dir / MANIFEST, newline="", encoding="utf-8") as fh:
        copied = {ids[r["source_path"]]: r["path"].split("/")[0] for r in csv.DictReader(fh)}
    mapping = task_named(task).map
    return {cid: (mapping(copied[cid]) if cid in copied else None) for cid in ids.values()}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("task", TASKS)
def test_relabel_and_apply_flags_give_every_clip_the_same_label(store, tmp_path, task, policy):
    with store.sessions() as s:
        ds, _ = make_dataset(s, tmp_path / "ds", n_clips=160, labels=LABELS)
        flags = _flag_every_combination(s, ds.id)
    trained, used, classes = _apply_flags_path(store, ds, task, policy)
    copied = _relabel_path(store, ds, task, policy, tmp_path / "copy")
    disagree = {cid: (flags.get(cid), trained[cid], copied[cid]) for cid in trained if trained[cid] != copied[cid]}
    assert not disagree, f"{len(disagree)} clips disagree (flag, --apply-flags, relabel): {disagree}"
    with store.sessions() as s:
        direct, used_relabel = corrected_labels(s, ds.id, policy, task=task)
        filed = dict(s.execute(select(Clip.id, Clip.label).where(Clip.dataset_id == ds.id)).all())
    t = task_named(task)
    for cid, label in trained.items():  # the relabel module's own map, in the task's classes
        assert direct.get(cid, t.map(filed[cid])) == label, (cid, flags.get(cid))
    assert used == used_relabel  # the same flags recorded, with the same times
    assert all(f["updated_at"].endswith("Z") for f in used)
    assert set(label for label in trained.values() if label is not None) <= set(classes)

    # The rules themselves, spot-checked on the 'yes' clips.
    yes = {flags[c]: trained[c] for c in flags if filed[c] == "yes"}
    cut = None if policy == "exclude" else t.map(CUTOFF)
    assert yes[("mislabeled", CUTOFF)] == cut  # "mislabeled as _cutoff_" is a cut-off decision
    for reason in ("cutoff", "noise_only", "multiple_words"):
        assert yes[(reason, None)] == cut and yes[(reason, "no")] == cut
    assert yes[("other", "no")] == "yes"  # 'other' is a note for people, never a label decision
    assert yes[("mislabeled", "no")] == "no"
    assert yes[("mislabeled", UNKNOWN)] == UNKNOWN
    assert yes[("mislabeled", SILENCE)] == SILENCE
    assert yes[("mislabeled", "bed")] == ("bed" if task == "all" else UNKNOWN)
    if task == "v1-12":
        assert classes[-2:] == [UNKNOWN, SILENCE] and len(classes) == 12
    elif policy == "class":
        assert classes[-1] == CUTOFF


def test_the_12_class_task_lives_in_ml():
    v12, every = task_named("v1-12"), task_named("all")
    assert v12.classes(["bed", "yes"]) == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                                           UNKNOWN, SILENCE]
    assert [v12.map(x) for x in ("yes", "bed", SILENCE, CUTOFF, UNKNOWN)] == ["yes", UNKNOWN, SILENCE, UNKNOWN, UNKNOWN]
    assert every.classes(["b", "a", "_background_noise_"]) == ["a", "b"] and every.map("bed") == "bed"
    with pytest.raises(ValueError, match="v1-12"):
        task_named("v2-35")
