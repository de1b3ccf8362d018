"""The clip list's filters (``ClipFilter``) and how they select rows of a ``RunFrame``.

Everything but the flag and finding filters is numpy over the cached frame; flags are read fresh
(they change all the time and the table is small and indexed by clip), a finding's clips by id. The
audio-quality filter takes the run cache's flags (``ml.analysis.quality`` decides; rebuilt when a
re-ingest fills or changes the stats).
Conditions on metadata, signal stats and speakers (``ColumnCondition``, the slices page's links)
are numpy over the run's ``SliceColumns`` (``RunCache.slice_columns``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.store.clip_stats import quality_arrays
from app.store.clips import search_clip_ids
from app.store.findings import finding_clip_ids
from app.store.flags import flag_map
from app.store.frame import SPLITS, RunFrame
from ml.analysis.quality import FINDINGS as QUALITY_FINDINGS
from ml.analysis.quality import flags_from_columns

if TYPE_CHECKING:
    from app.store.cache import SliceColumns


@dataclass(frozen=True)
class ColumnCondition:
    """One condition on a per-clip column: ``meta.<name>``, ``stat.<name>`` or ``speaker``.

    ``value``: equal to it (text as written; booleans "true"/"false"; a number column compares as a
    number); ``not_in``: present and none of these; ``missing``: no value; ``min`` (>=) / ``below`` (<):
    a range, which leaves out clips with no value.
    """

    column: str
    value: str | None = None
    not_in: tuple[str, ...] = ()
    missing: bool = False
    min: float | None = None
    below: float | None = None


@dataclass
class ClipFilter:
    """The clip list's filters, as validated by the route (None = no restriction)."""

    split: str | None = None
    label: str | None = None  # the target (label as mapped into the run's classes)
    pred: str | None = None
    agreement: str | None = None  # agree | disagree
    flag: str | None = None  # any | none | <reason>
    finding: int | None = None
    conf_min: float | None = None
    conf_max: float | None = None
    loss_min: float | None = None
    loss_max: float | None = None
    cutoff_min: float | None = None
    cutoff_max: float | None = None
    sort: str = "loss"
    columns: tuple[ColumnCondition, ...] = field(default_factory=tuple)
    q: str | None = None  # text in the clip's path or label (the clip's own or the run's target), any case
    quality: str | None = None  # an audio-quality finding (ml.analysis.quality.FINDINGS): clipped, silent, ...


def column_mask(c: ColumnCondition, columns: SliceColumns) -> np.ndarray:
    """Which rows pass one column condition (rows of the frame ``columns`` is aligned with)."""
    source, _, name = c.column.partition(".")
    if c.column == "speaker":
        values = columns.stats["speaker"]
    elif source == "stat" and name in columns.stats and name != "speaker":
        values = columns.stats[name]
    elif source == "meta" and name in columns.meta:
        values = columns.meta[name]
    else:
        known = [f"meta.{m}" for m in columns.meta] + [f"stat.{s}" for s in columns.stats if s != "speaker"]
        raise EarmarkError(f"no column {c.column!r} to filter by",
                           detail=f"known columns: {', '.join(known + ['speaker'])}",
                           hint="use meta.<name>, stat.<name> or speaker, as the slices page links do")
    if values.dtype.kind == "f":
        present = np.isfinite(values)
        mask = ~present if c.missing else np.ones(len(values), bool)
        if c.value is not None:
            try:
                mask &= values == float(c.value)
            except ValueError:
                mask &= False
        for v in c.not_in:
            try:
                mask &= present & (values != float(v))
            except ValueError:
                pass
        if c.min is not None:
            mask &= present & (values >= c.min)
        if c.below is not None:
            mask &= present & (values < c.below)
        return mask
    codes, names = columns.factors(c.column)
    index = {name: i for i, name in enumerate(names)}
    present = codes >= 0
    mask = ~present if c.missing else np.ones(len(codes), bool)
    if c.value is not None:
        mask &= codes == index.get(c.value, -2)
    if c.not_in:
        mask &= present & ~np.isin(codes, [index[v] for v in c.not_in if v in index])
    if c.min is not None or c.below is not None:
        raise EarmarkError(f"{c.column} is not a number column", hint="give it a value, not a range")
    return mask


def filter_rows(session: Session, frame: RunFrame, dataset_id: int, f: ClipFilter,
                columns: SliceColumns | None = None, quality: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Row indices of ``frame`` that pass ``f``, in ``f.sort`` order. Conditions on columns
    (``f.columns``) need the run's ``columns``; the quality filter reads ``quality`` (per finding, a
    bool per row: ``RunCache.quality_flags``) or, without it, the clips' stats fresh."""
    n = len(frame.clip_ids)
    mask = np.ones(n, dtype=bool)
    if f.split:
        mask &= frame.split == SPLITS.index(f.split)
    for value, col in ((f.label, frame.target), (f.pred, frame.pred)):
        if value is not None:
            mask &= col == (frame.vocab.index(value) if value in frame.vocab else 65535)
    if f.agreement == "agree":
        mask &= frame.agree
    elif f.agreement == "disagree":
        mask &= ~frame.agree
    for lo, hi, col in ((f.conf_min, f.conf_max, frame.confidence), (f.loss_min, f.loss_max, frame.loss),
                        (f.cutoff_min, f.cutoff_max, frame.cutoff)):
        if lo is not None:
            mask &= col >= lo
        if hi is not None:
            mask &= col <= hi
    if f.flag:
        flags = flag_map(session, dataset_id)
        if f.flag in ("any", "none"):
            flagged = np.isin(frame.clip_ids, np.fromiter(flags.keys(), dtype=np.int64, count=len(flags)))
        else:
            ids = [cid for cid, r in flags.items() if r == f.flag]
            flagged = np.isin(frame.clip_ids, np.array(ids, dtype=np.int64))
        mask &= ~flagged if f.flag == "none" else flagged
    if f.finding is not None:
        mask &= np.isin(frame.clip_ids, finding_clip_ids(session, f.finding))
    if f.q:
        text = f.q.lower()
        targets = [i for i, name in enumerate(frame.vocab) if text in name.lower()]
        mask &= np.isin(frame.clip_ids, search_clip_ids(session, dataset_id, f.q)) | np.isin(frame.target, targets)
    if f.quality:
        if f.quality not in QUALITY_FINDINGS:
            raise EarmarkError(f"no audio-quality finding {f.quality[:40]!r}", status=422,
                               hint=f"use one of {', '.join(QUALITY_FINDINGS)}")
        if quality is None:
            qa = quality_arrays(session, dataset_id, frame.clip_ids)
            quality = flags_from_columns(qa["peak"], qa["plateau_share"], qa["dc"], qa["band_step_db"])
        mask &= quality[f.quality]
    if f.columns:
        if columns is None:
            raise ValueError("filter_rows: column conditions need the run's SliceColumns")
        for c in f.columns:
            mask &= column_mask(c, columns)
    order = frame.order(f.sort)
    return order[mask[order]]


# ---- column conditions in a query string: meta.<name>[.not|.missing|.min|.below], stat.<name>.., speaker.. ----

_OPS = ("not", "missing", "min", "below")
MAX_CONDITIONS = 40


def parse_conditions(items: list[tuple[str, str]]) -> tuple[ColumnCondition, ...]:
    """Column conditions from query items: ``meta.gender=female``, ``meta.gender.not=a`` (repeatable),
    ``meta.take.min=2&meta.take.below=5``, ``stat.rms_dbfs.below=-40``, ``speaker=ab12``,
    ``speaker.missing=1``; and the clip list's picker, ``col=meta.take&val=3`` or ``val=2..5`` (a range
    ``[2, 5)``). Other keys are ignored; a bad number is an ``EarmarkError`` (422)."""
    groups: dict[str, dict] = {}
    picked = dict((k, v.strip()) for k, v in items if k in ("col", "val"))
    if picked.get("col") and picked.get("val"):  # the clip list's "column / value" picker
        col, val = picked["col"], picked["val"]
        if ".." in val:
            lo, _, hi = val.partition("..")
            items = [*items, *([(f"{col}.min", lo.strip())] if lo.strip() else []),
                     *([(f"{col}.below", hi.strip())] if hi.strip() else [])]
        else:
            items = [*items, (col, val)]
    for key, raw in items:
        if not (key == "speaker" or key.startswith(("speaker.", "meta.", "stat."))):
            continue
        column, op = key, "value"
        for candidate in _OPS:
            if key.endswith("." + candidate) and key.count(".") >= (1 if key.startswith("speaker") else 2):
                column, op = key[: -len(candidate) - 1], candidate
                break
        if op in ("value", "not") and not raw.strip():
            continue  # an empty form field (the clip list's speaker box) sets no condition
        if column.startswith(("meta.", "stat.")) and len(column) <= 5:
            raise EarmarkError(f"{key!r} names no column", status=422, hint="write meta.<name> or stat.<name>")
        g = groups.setdefault(column, {"not_in": []})
        if op == "not":
            g["not_in"].append(raw[:200])
        elif op == "missing":
            g["missing"] = raw.lower() in ("1", "true", "yes", "on")
        elif op in ("min", "below"):
            try:
                g[op] = float(raw)
            except ValueError:
                raise EarmarkError(f"{key} must be a number, not {raw[:40]!r}", status=422,
                                   hint=f"e.g. {key}=0.5") from None
        else:
            g["value"] = raw[:200]
    if len(groups) > MAX_CONDITIONS:
        raise EarmarkError(f"too many column conditions ({len(groups)})", status=422,
                           hint=f"at most {MAX_CONDITIONS}")
    return tuple(ColumnCondition(column=c, value=g.get("value"), not_in=tuple(g["not_in"]),
                                 missing=g.get("missing", False), min=g.get("min"), below=g.get("below"))
                 for c, g in groups.items())


def condition_params(c: ColumnCondition) -> dict:
    """The query parameters of one condition (``parse_conditions``' inverse; a list is a repeated key)."""
    out: dict = {}
    if c.value is not None:
        out[c.column] = c.value
    if c.not_in:
        out[f"{c.column}.not"] = list(c.not_in)
    if c.missing:
        out[f"{c.column}.missing"] = "1"
    if c.min is not None:
        out[f"{c.column}.min"] = repr(float(c.min))
    if c.below is not None:
        out[f"{c.column}.below"] = repr(float(c.below))
    return out


def select_condition(column: str, select: dict) -> ColumnCondition:
    """The condition of a slice's ``select`` (``ml.analysis.slices.Slice.select``) on ``column``."""
    return ColumnCondition(column=column, value=None if select.get("value") is None else str(select["value"]),
                           not_in=tuple(str(v) for v in select.get("not", ())), missing=bool(select.get("missing")),
                           min=select.get("min"), below=select.get("below"))


def describe_condition(c: ColumnCondition) -> str:
    """A condition in words, for the clip list's filter line: ``gender = f``, ``take in [2, 5)``."""
    name = c.column.partition(".")[2] if c.column.startswith(("meta.", "stat.")) else c.column
    parts = []
    if c.value is not None:
        parts.append(f"{name} = {c.value}")
    if c.not_in:
        parts.append(f"{name} not {c.not_in[0]}" if len(c.not_in) == 1 else f"{name} not one of {len(c.not_in)}")
    if c.missing:
        parts.append(f"{name} missing")
    if c.min is not None or c.below is not None:
        lo = "" if c.min is None else f"{c.min:g}"
        hi = "" if c.below is None else f"{c.below:g}"
        parts.append(f"{name} ≥ {lo}" if not hi else f"{name} < {hi}" if not lo else f"{name} in [{lo}, {hi})")
    return " and ".join(parts) or name
