"""The flag domain: every rule about flags, in one place, with no SQL.

A flag is one person's (or one detector's) decision about one clip. This module says:

- which **reasons** there are (``Reason``), and which of them are cut-off-like (the clip holds no
  usable single word: ``cutoff``, ``noise_only``, ``multiple_words``);
- the **special labels** ``_unknown_``, ``_silence_`` and ``_cutoff_`` a flag may correct to, on top
  of the data set's labels and its runs' classes (``correctable``);
- the **cut-off policies**: ``class`` (cut-off-like clips train as the cut-off class) or ``exclude``
  (they are left out);
- who may write what: ``auto`` is the author of detectors only, a person without a name is
  ``anonymous`` (``validate_flag``, the one check used by the API, the CLI and file imports);
- what a flag does to a clip's **training label** under a policy and a task (``training_label``,
  and ``plan_labels`` for a whole data set). ``earmark train --apply-flags`` and ``earmark relabel``
  both call it, so they give every clip the same label.

The store side (the upsert, the queue, ``correctable_labels``) is ``app.store.flags``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from app.errors import EarmarkError
from ml.speech_commands import SILENCE, UNKNOWN, Task, task_named


class Reason(StrEnum):
    """Why a clip is flagged."""

    CUTOFF = "cutoff"  # the word is cut off
    MISLABELED = "mislabeled"  # the clip holds another word (corrected_label says which)
    MULTIPLE_WORDS = "multiple_words"  # more than one word
    NOISE_ONLY = "noise_only"  # no word at all
    OTHER = "other"  # a note for people; never changes a label


class CutoffPolicy(StrEnum):
    """What training does with cut-off-like clips."""

    CLASS = "class"  # they train as the cut-off class (``_unknown_`` in the 12-class task)
    EXCLUDE = "exclude"  # they are left out of training


REASONS: tuple[str, ...] = tuple(r.value for r in Reason)
POLICIES: tuple[str, ...] = tuple(p.value for p in CutoffPolicy)
CUTOFF = "_cutoff_"
SPECIAL_LABELS: tuple[str, ...] = (UNKNOWN, SILENCE, CUTOFF)
CUTOFF_REASONS: frozenset[str] = frozenset({Reason.CUTOFF, Reason.NOISE_ONLY, Reason.MULTIPLE_WORDS})
AUTO = "auto"  # the author of flags written by detectors, and nobody else
ANONYMOUS = "anonymous"  # a person who typed no name
MAX_NOTE, MAX_AUTHOR, MAX_LABEL = 2000, 100, 100
SHORTCUTS = {"c": Reason.CUTOFF.value, "m": Reason.MISLABELED.value}  # keyboard keys of the pages

__all__ = [
    "ANONYMOUS", "AUTO", "CUTOFF", "CUTOFF_REASONS", "POLICIES", "REASONS", "SILENCE", "SPECIAL_LABELS", "UNKNOWN",
    "CutoffPolicy", "FlagValues", "LabelPlan", "Reason", "check_policy", "check_reason", "correctable",
    "flag_decision",
    "is_cutoff_like", "is_person", "iso_utc", "plan_labels", "training_label", "validate_flag", "vocabulary",
]


# ------------------------------------------------------------------------------------ vocabulary


def iso_utc(dt: datetime) -> str:
    """The one time format of flags (export files, ``Run.flags_used``): ISO 8601 UTC with microseconds
    and a ``Z``; SQLite hands back naive datetimes, which are UTC."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.isoformat(timespec="microseconds") + "Z"


def _member(kind: type[StrEnum], value: str, what: str):
    try:
        return kind(value)
    except ValueError:
        raise EarmarkError(f"unknown {what} {value!r}", hint=f"use one of: {', '.join(m.value for m in kind)}",
                           status=422) from None


def check_reason(reason: str) -> Reason:
    """``reason`` as a ``Reason``, or a 422 naming the reasons."""
    return _member(Reason, reason, "flag reason")


def check_policy(policy: str) -> CutoffPolicy:
    """``policy`` as a ``CutoffPolicy``, or a 422 naming the policies."""
    return _member(CutoffPolicy, policy, "cut-off policy")


def is_cutoff_like(reason: str, corrected_label: str | None = None) -> bool:
    """True for a decision that the clip holds no usable single word ("mislabeled as _cutoff_" included)."""
    return reason in CUTOFF_REASONS or (reason == Reason.MISLABELED and corrected_label == CUTOFF)


def is_person(author: str | None) -> bool:
    """True when a flag by ``author`` was written by a person (not by a detector)."""
    return (author or ANONYMOUS) != AUTO


def correctable(dataset_labels: Iterable[str], run_classes: Iterable[Iterable[str] | None] = ()) -> list[str]:
    """Labels a flag may correct to: the data set's labels, the runs' classes and the special labels."""
    labels = set(dataset_labels) | set(SPECIAL_LABELS)
    for classes in run_classes:
        labels.update(classes or [])
    return sorted(labels)


def vocabulary() -> dict:
    """The flag vocabulary as plain data, for templates (a Jinja global) and JavaScript (a JSON blob)."""
    return {"reasons": list(REASONS), "special_labels": list(SPECIAL_LABELS), "cutoff_reasons": sorted(CUTOFF_REASONS),
            "policies": list(POLICIES), "auto": AUTO, "anonymous": ANONYMOUS, "max_note": MAX_NOTE,
            "max_author": MAX_AUTHOR, "shortcuts": dict(SHORTCUTS)}


# ------------------------------------------------------------------------------------ validation


@dataclass(frozen=True)
class FlagValues:
    """A checked flag, ready to store."""

    reason: str
    corrected_label: str | None
    note: str
    author: str


def _no_nul(what: str, value: str) -> None:
    if "\x00" in value:
        raise EarmarkError(f"the {what} contains a NUL character", hint="remove it and try again", status=422)


def validate_flag(reason: str, corrected_label: str | None = None, note: str | None = "",
                  author: str | None = None, labels: Sequence[str] | set[str] | None = None, *,
                  allow_auto: bool = True) -> FlagValues:
    """Check one flag as the API, the CLI and file imports all must; returns the normalised values.

    The reason must be a ``Reason``; a ``mislabeled`` flag needs a corrected label, which must be one
    of ``labels`` when given; the note is at most ``MAX_NOTE`` characters, the author ``MAX_AUTHOR``
    (blank: ``anonymous``); no field holds a NUL. ``allow_auto=False`` refuses the author ``auto``,
    which only detectors write. Raises ``EarmarkError`` (422) naming the first problem.
    """
    for what, value in (("reason", reason), ("corrected label", corrected_label), ("note", note),
                        ("author", author)):
        if value is not None and not isinstance(value, str):
            raise EarmarkError(f"the {what} must be text", status=422)
        _no_nul(what, value or "")
    try:
        r = Reason((reason or "").strip())
    except ValueError:
        raise EarmarkError(f"bad reason {reason!r}; use one of {', '.join(REASONS)}", status=422) from None
    label = (corrected_label or "").strip() or None
    if r == Reason.MISLABELED and not label:
        raise EarmarkError("a 'mislabeled' flag needs the correct label", status=422)
    if label is not None and len(label) > MAX_LABEL:
        raise EarmarkError(f"the corrected label is longer than {MAX_LABEL} characters", status=422)
    if label is not None and labels is not None and label not in labels:
        raise EarmarkError(f"unknown label {label!r}: not a label of the data set, its runs, or a special label",
                           hint="pick one of the data set's labels", status=422)
    note = note or ""
    if len(note) > MAX_NOTE:
        raise EarmarkError(f"the note is longer than {MAX_NOTE:,} characters ({len(note):,})",
                           hint="shorten it", status=422)
    who = (author or "").strip() or ANONYMOUS
    if len(who) > MAX_AUTHOR:
        raise EarmarkError(f"the author is longer than {MAX_AUTHOR} characters", status=422)
    if who == AUTO and not allow_auto:
        raise EarmarkError(f"the author {AUTO!r} is reserved for detectors",
                           hint="type your name, or leave it empty to write as 'anonymous'", status=422)
    return FlagValues(r.value, label, note, who)


# ------------------------------------------------------------------------------- training labels


def _task(task: Task | str) -> Task:
    try:
        return task if isinstance(task, Task) else task_named(task)
    except ValueError as exc:
        raise EarmarkError(str(exc), status=422) from None


def flag_decision(reason: str, corrected_label: str | None, policy: str, task: Task | str) -> tuple[bool, str | None]:
    """What one flag does: ``(decides, label)``; ``label`` ``None`` means the clip is left out.

    - cut-off-like (``cutoff``, ``noise_only``, ``multiple_words``, or "mislabeled as ``_cutoff_``"):
      the task's cut-off class (``_cutoff_``; ``_unknown_`` in the 12-class task), or left out under
      ``exclude``;
    - ``mislabeled``: the corrected label, as the task files it (a non-keyword is ``_unknown_`` in
      the 12-class task);
    - ``other`` (or a ``mislabeled`` flag without a label): decides nothing.
    """
    t, p = _task(task), check_policy(policy)
    if is_cutoff_like(reason, corrected_label):
        return True, None if p == CutoffPolicy.EXCLUDE else t.map(CUTOFF)
    if reason == Reason.MISLABELED and corrected_label:
        return True, t.map(corrected_label)
    return False, None


def training_label(filed_label: str, flag: tuple[str, str | None] | None, policy: str,
                   task: Task | str) -> str | None:
    """THE rule: the class a clip filed under ``filed_label`` trains as, given its flag
    ``(reason, corrected_label)`` (or ``None``), a cut-off policy and a task. ``None``: left out."""
    t = _task(task)
    if flag is None:
        return t.map(filed_label)
    decides, label = flag_decision(flag[0], flag[1], policy, t)
    return label if decides else t.map(filed_label)


@dataclass
class LabelPlan:
    """What a data set's flags do to training, as ``Run.label_map`` / ``Run.flags_used`` record it."""

    overrides: dict[int, str | None] = field(default_factory=dict)  # clip id -> label (None: left out)
    used: list[dict] = field(default_factory=list)  # {clip_id, reason, corrected_label, updated_at}
    extra_classes: list[str] = field(default_factory=list)  # targets the task's classes lack, to append


def plan_labels(flags: Iterable[tuple[int, str, str | None, datetime | None]], base_classes: Sequence[str],
                policy: str, task: Task | str) -> LabelPlan:
    """Apply ``training_label`` to every flag ``(clip_id, reason, corrected_label, updated_at)``.

    Flags that decide nothing are not recorded. ``extra_classes`` lists, sorted with ``_cutoff_``
    last, the labels a flag gives that are not among ``base_classes`` (a training run appends them;
    a relabeled copy has them as folders).
    """
    t, plan = _task(task), LabelPlan()
    check_policy(policy)
    for clip_id, reason, corrected, updated in flags:
        decides, label = flag_decision(reason, corrected, policy, t)
        if not decides:
            continue
        plan.overrides[int(clip_id)] = label
        plan.used.append({"clip_id": int(clip_id), "reason": reason, "corrected_label": corrected,
                          "updated_at": iso_utc(updated) if updated else None})
    extra = {label for label in plan.overrides.values() if label is not None} - set(base_classes)
    plan.extra_classes = sorted(extra - {CUTOFF}) + ([CUTOFF] if CUTOFF in extra else [])
    return plan
