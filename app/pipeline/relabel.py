"""Apply the flags to a data set: the corrected label of every clip, and a corrected copy on disk.

``corrected_labels`` says, for each flagged clip, what it becomes under a cut-off policy, by the one
rule of ``app.flags.training_label`` (the same one ``earmark train --apply-flags`` uses):

- ``mislabeled`` -> its corrected label ("mislabeled as ``_cutoff_``" is a cut-off decision);
- ``cutoff``, ``noise_only``, ``multiple_words`` -> the cut-off class (``_cutoff_``), or left out
  (``None``) under ``policy="exclude"``;
- ``other`` -> unchanged (the flag is a note for people, not a label decision).

The copy on disk keeps the labels as filed (task ``all``); training the 12-class task on it maps
them as ``--apply-flags`` would.

``relabel_to_dir`` writes the corrected data set in the Speech Commands layout (a folder per label,
``validation_list.txt`` / ``testing_list.txt`` for the new paths, ``_background_noise_``), using
hard links where it can and copies where it cannot (another device, a file system without links).
It builds everything in a hidden sibling folder and renames it into place at the end, so a
killed run never leaves a half-written DIR. ``relabel_manifest.csv`` maps each new path back to
its source path, original label and flag reason.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.flags import CUTOFF, POLICIES, plan_labels
from app.store.clips import load_clips
from app.store.datasets import get_dataset, resolve_dataset
from app.store.flags import dataset_flags, flag_map
from ml.speech_commands import NOISE_DIR, Task, task_named

log = logging.getLogger(__name__)

CUTOFF_CLASS = CUTOFF
MANIFEST = "relabel_manifest.csv"
_SAFE_FOLDER = re.compile(r"[^/\\\x00]{1,100}")
_NOHASH = re.compile(r"^(?P<speaker>.+)_nohash_(?P<n>\d+)$")
__all__ = ["CUTOFF_CLASS", "MANIFEST", "POLICIES", "RelabelSummary", "corrected_labels", "relabel_to_dir"]


def corrected_labels(session: Session, dataset_id: int, policy: str = "class",
                     task: Task | str = "all") -> tuple[dict[int, str | None], list[dict]]:
    """Map flagged clip ids to their corrected label in ``task`` (``None``: leave the clip out).

    Returns ``(label_map, flags_used)``: ``label_map`` holds only clips whose label changes or that
    are left out; ``flags_used`` records every flag that decided something
    (``{clip_id, reason, corrected_label, updated_at}``), exactly as ``Run.flags_used`` stores it.
    """
    t = task if isinstance(task, Task) else task_named(task)
    ds = get_dataset(session, dataset_id)
    plan = plan_labels(dataset_flags(session, dataset_id), t.classes(ds.labels or [] if ds else []), policy, t)
    clips = load_clips(session, dataset_id)
    filed = {cid: t.map(label) for cid, label in zip(clips.ids, clips.labels, strict=True) if cid in plan.overrides}
    label_map = {cid: label for cid, label in plan.overrides.items() if label is None or label != filed.get(cid)}
    return label_map, plan.used


@dataclass
class RelabelSummary:
    """What ``relabel_to_dir`` wrote."""

    out_dir: str
    clips: int = 0
    moved: int = 0  # mislabeled clips filed under their corrected label
    to_cutoff: int = 0  # clips put into _cutoff_
    excluded: int = 0  # clips left out under policy=exclude
    linked: int = 0
    copied: int = 0
    noise_files: int = 0
    renamed: int = 0  # files given a new utterance number to avoid a name clash
    per_label: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)


def _place(src: Path, dst: Path, summary: RelabelSummary, state: dict) -> None:
    """Hard-link ``src`` to ``dst``; copy when linking is impossible (remembered after the first miss)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if state.get("link", True):
        try:
            os.link(src, dst)
            summary.linked += 1
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
            log.info("hard links unavailable (%s); copying instead", exc.strerror)
            state["link"] = False
    shutil.copy2(src, dst)
    summary.copied += 1


def _free_name(folder: str, name: str, taken: set[str]) -> str:
    """``name`` inside ``folder`` unless taken; otherwise the next free utterance number."""
    if f"{folder}/{name}" not in taken:
        return name
    stem, ext = os.path.splitext(name)
    m = _NOHASH.match(stem)
    base, n = (m["speaker"] + "_nohash_", int(m["n"])) if m else (stem + "_", 0)
    while f"{folder}/{base}{n}{ext}" in taken:
        n += 1
    return f"{base}{n}{ext}"


def _check_target(out: Path, root: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EarmarkError(f"{out} is not an empty folder", hint="give --to a new or empty folder", status=409)
    if out == root or root in out.parents:
        raise EarmarkError(f"{out} is inside the source data set {root}",
                           hint="write the corrected copy somewhere outside the data set", status=409)


def relabel_to_dir(session: Session, out_dir: str | Path, dataset: str | int | None = None,
                   policy: str = "class", progress: Callable[[int, int], None] | None = None) -> RelabelSummary:
    """Write the flag-corrected copy of a data set to ``out_dir`` (see the module doc)."""
    ds = resolve_dataset(session, dataset)
    root = Path(ds.root).resolve()
    out = Path(out_dir).expanduser().resolve()
    _check_target(out, root)
    if not root.is_dir():
        raise EarmarkError(f"the source folder {root} of data set {ds.name!r} is missing",
                           hint="mount or restore it, or re-ingest the data set from where it lives now")
    label_map, _ = corrected_labels(session, ds.id, policy)
    reasons = flag_map(session, ds.id)
    table = load_clips(session, ds.id)
    clips = sorted(zip(table.ids, table.paths, table.labels, table.splits, strict=True), key=lambda c: c[1])
    missing = [p for _, p, _, _ in clips if not (root / p).is_file()]
    if missing:
        raise EarmarkError(f"{len(missing)} clip file(s) of data set {ds.name!r} are missing under {root}",
                           detail="first: " + ", ".join(missing[:5]),
                           hint="restore the files or re-ingest the data set; nothing was written")
    summary = RelabelSummary(out_dir=str(out))
    # Unmoved clips keep their names; moved ones are placed after them, renamed on a clash.
    plan: list[tuple[int, str, str, str, str, str | None]] = []  # id, source, label, new label, split, reason
    for cid, path, label, split in clips:
        if cid in label_map and label_map[cid] is None:
            summary.excluded += 1
            continue
        plan.append((cid, path, label, label_map.get(cid, label), split, reasons.get(cid)))
    bad = sorted({p[3] for p in plan if not _SAFE_FOLDER.fullmatch(p[3]) or p[3] in (".", "..")})
    if bad:
        raise EarmarkError(f"label(s) {', '.join(map(repr, bad))} cannot be folder names",
                           hint="fix the corrected labels of those flags on the Flags page; nothing was written")
    plan.sort(key=lambda p: (p[0] in label_map, p[1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    state: dict = {}
    taken: set[str] = set()
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    manifest: list[tuple[str, str, str, str]] = []
    try:
        for i, (cid, path, label, new_label, split, reason) in enumerate(plan):
            name = _free_name(new_label, os.path.basename(path), taken)
            summary.renamed += name != os.path.basename(path)
            rel = f"{new_label}/{name}"
            taken.add(rel)
            _place(root / path, tmp / rel, summary, state)
            if cid in label_map:
                summary.to_cutoff += new_label == CUTOFF_CLASS
                summary.moved += new_label != CUTOFF_CLASS
            summary.per_label[new_label] = summary.per_label.get(new_label, 0) + 1
            summary.splits[split] = summary.splits.get(split, 0) + 1
            if split in lists:
                lists[split].append(rel)
            manifest.append((rel, path, label, reason or ""))
            if progress and (i % 200 == 0 or i == len(plan) - 1):
                progress(i + 1, len(plan))
        summary.clips = len(plan)
        for noise in ds.noise_files or []:
            src = root / noise
            if src.is_file():
                _place(src, tmp / NOISE_DIR / os.path.basename(noise), summary, state)
                summary.noise_files += 1
        (tmp / "validation_list.txt").write_text("".join(p + "\n" for p in sorted(lists["validation"])))
        (tmp / "testing_list.txt").write_text("".join(p + "\n" for p in sorted(lists["test"])))
        with open(tmp / MANIFEST, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["path", "source_path", "original_label", "reason"])
            w.writerows(sorted(manifest))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.per_label = dict(sorted(summary.per_label.items()))
    return summary

