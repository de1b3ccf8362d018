"""The clip list's filters (``ClipFilter``) and how they select rows of a ``RunFrame``.

Everything but the flag and finding filters is numpy over the cached frame; flags are read fresh
(they change all the time and the table is small and indexed by clip), a finding's clips by id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.store.findings import finding_clip_ids
from app.store.flags import flag_map
from app.store.frame import SPLITS, RunFrame


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


def filter_rows(session: Session, frame: RunFrame, dataset_id: int, f: ClipFilter) -> np.ndarray:
    """Row indices of ``frame`` that pass ``f``, in ``f.sort`` order."""
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
    order = frame.order(f.sort)
    return order[mask[order]]
