"""A run file against a data set: its classes to the data set's labels, its keys to the clips.

``map_classes`` decides each label's target class: the labels themselves when the model's classes
are the data set's labels, or a task's rule (``ml.speech_commands.Task``, e.g. ``v1-12``: the other
words count as ``_unknown_``). ``match_keys`` turns paths or clip ids into clip ids and rows,
refusing keys that are not in the data set and counting the clips left without a prediction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.run_files.record import SHOW, RunFile, as_numpy, problem
from ml.speech_commands import NOISE_DIR, Task, task_named


@dataclass(frozen=True)
class ClassMap:
    """Which of the model's classes each data set label counts as."""

    classes: tuple[str, ...]  # the model's output order
    targets: dict[str, str]  # data set label -> model class
    task: str | None  # the rule used, None when the labels are the classes
    unused: tuple[str, ...]  # model classes no label maps to (e.g. _silence_), in class order

    def target_index(self, labels: Any) -> np.ndarray:
        """(N,) int64 index into ``classes`` of each clip's target; -1 for a label the map does not know."""
        uniq, inverse = np.unique(np.asarray(as_numpy(labels), dtype=object).astype(str), return_inverse=True)
        index = {c: i for i, c in enumerate(self.classes)}
        per = np.array([index.get(self.targets.get(u, ""), -1) for u in uniq.tolist()], dtype=np.int64)
        return per[inverse.reshape(-1)] if len(uniq) else np.zeros(0, np.int64)


def _listing(names: Collection[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def map_classes(run: RunFile, dataset_labels: Sequence[str], task: Task | str | None = None,
                extra_ok: Collection[str] = ()) -> ClassMap:
    """Map the data set's labels onto the run file's classes; refuse what cannot be mapped.

    With ``task`` (a ``Task`` or its name; else the file's ``earmark.task``), each label counts as
    ``task.map(label)``, which must be one of the model's classes. Without one, the model's classes
    must be the data set's labels: the error names the labels missing from the model and the
    model's extra classes (``extra_ok`` lists extra classes to allow, e.g. ``_cutoff_``).
    """
    if task is None and run.task:
        task = run.task
    if isinstance(task, str):
        try:
            task = task_named(task)
        except ValueError as exc:
            raise problem(f"unknown class map {task!r}", str(exc), "use `v1-12`, or leave the map out") from None
    labels = sorted(set(map(str, dataset_labels)) - {NOISE_DIR})
    classes = tuple(run.classes)
    if task is not None and task.keywords is not None:
        targets = {lab: task.map(lab) for lab in labels}
        lost = sorted({t for t in targets.values() if t not in classes})
        if lost:
            per = "; ".join(f"{t} ← {_listing([lab for lab, x in targets.items() if x == t])}" for t in lost)
            raise problem(f"the model has no class for {_listing(lost)} under the {task.name} map",
                          f"{per}; the model's classes: {_listing(classes)}",
                          f"give the model's full class list, in order (it needs {_listing(task.classes(labels))})")
        used = set(targets.values())
        return ClassMap(classes, targets, task.name, tuple(c for c in classes if c not in used))
    missing = set(labels) - set(classes)
    extra = set(classes) - set(labels) - set(extra_ok)
    if missing or extra:
        parts = ([f"labels the model cannot predict: {_listing(missing)}"] if missing else []) + (
            [f"classes no clip is filed under: {_listing(extra)}"] if extra else [])
        hint = ("this looks like the 12-class task: map the other words with `v1-12`"
                if {"_unknown_", "_silence_"} & set(classes) else
                "give the model's class list in its output order, or a class map for these labels")
        raise problem("the model's classes do not match the data set's labels", "; ".join(parts), hint)
    return ClassMap(classes, {lab: lab for lab in labels}, None, tuple(c for c in classes if c not in labels))


@dataclass(frozen=True)
class KeyMatch:
    """Each run-file row's clip, and the data set's clips that have no row."""

    clip_ids: np.ndarray  # (N,) int64, per run-file row
    rows: np.ndarray  # (N,) int64, each run-file row's index into the data set arrays
    n_clips: int  # clips in the data set
    uncovered: np.ndarray  # (U,) int64 indices into the data set arrays of clips without a prediction
    uncovered_examples: tuple[str, ...]  # the first few of their paths

    @property
    def coverage(self) -> float:
        """The fraction of the data set's clips with a prediction."""
        return 1.0 - len(self.uncovered) / self.n_clips if self.n_clips else 0.0

    def describe(self) -> str:
        """'105,000 of 105,829 clips (99.2%); 829 have no prediction, e.g. ...'."""
        text = f"{len(self.rows):,} of {self.n_clips:,} clips ({self.coverage:.1%})"
        if len(self.uncovered):
            text += f"; {len(self.uncovered):,} have no prediction, e.g. {', '.join(self.uncovered_examples)}"
        return text


def match_keys(run: RunFile, clip_ids: Any, clip_paths: Sequence[str], root: str | Path | None = None) -> KeyMatch:
    """Match the run file's keys (paths or clip ids) to the data set's clips.

    ``clip_ids`` and ``clip_paths`` are the data set's clips (parallel arrays). Paths are relative
    to the data set root; absolute paths under ``root`` are made relative. Keys not in the data set
    are refused (count and first few); clips without a row are counted, not refused.
    """
    ids = np.asarray(as_numpy(clip_ids), dtype=np.int64)
    paths = pa.array(list(clip_paths) if not isinstance(clip_paths, np.ndarray) else clip_paths, pa.string())
    if len(ids) != len(paths):
        raise ValueError(f"{len(ids)} clip ids for {len(paths)} paths")
    keys = run.keys
    if run.key_kind == "path":
        if root is not None and any(k.startswith("/") for k in keys[:100]):
            prefix = str(Path(root).resolve()).rstrip("/") + "/"
            keys = np.array([k.removeprefix(prefix) for k in keys], dtype=object)
        found = pc.index_in(pa.array(keys, pa.string()), value_set=paths)
    else:
        found = pc.index_in(pa.array(keys, pa.int64()), value_set=pa.array(ids))
    if found.null_count:
        unknown = np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False))
        shown = ", ".join(str(k) for k in keys[unknown[:SHOW]].tolist())
        what = "paths" if run.key_kind == "path" else "clip ids"
        example = f" such as {paths[0].as_py()!r}" if len(paths) and run.key_kind == "path" else ""
        hint = (f"paths are relative to the data set root{f' ({root})' if root else ''}{example}; "
                "check the file belongs to this data set" if run.key_kind == "path" else
                "clip ids are this store's; use `path` for a file made elsewhere")
        raise problem(f"{len(unknown):,} of {len(keys):,} {what} are not in the data set", f"first: {shown}", hint)
    rows = found.to_numpy(zero_copy_only=False).astype(np.int64)
    covered = np.zeros(len(ids), dtype=bool)
    covered[rows] = True
    uncovered = np.flatnonzero(~covered)
    examples = tuple(paths.take(pa.array(uncovered[:SHOW])).to_pylist())
    return KeyMatch(ids[rows], rows, len(ids), uncovered, examples)
