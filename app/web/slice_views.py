"""The slices page's data, shared by ``/slices`` and ``/api/slices``: every slice family of a run on
one split (``ml.analysis.slices`` over the run's cached columns), the per-class table and the most
confused pairs, each slice and pair with the URL of its clips. Computed once per run and split and
kept on the ``RunCache`` entry (so it is rebuilt when the run's frame is)."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from app.errors import EarmarkError
from app.store.cache import RunCache, SliceColumns
from app.store.clip_stats import STATS
from app.store.filters import condition_params, select_condition
from app.store.frame import SPLITS, RunFrame
from app.store.models import Run
from app.web import urls
from ml.analysis.slices import SMALL_N, SliceColumn, badness, per_class, slice_report, top_confused

ALL = "all"


def slice_columns(columns: SliceColumns, frame: RunFrame, split: str) -> list[SliceColumn]:
    """The families to slice by: metadata columns, speaker (top speakers by errors), split (on all
    splits only), then the signal stats."""
    out = []
    for name, kind in columns.meta_kinds.items():
        if name not in columns.meta:
            continue
        if kind == "number":
            out.append(SliceColumn(family=f"meta.{name}", title=name, kind=kind, values=columns.meta[name]))
        else:
            codes, names = columns.factors(f"meta.{name}")
            out.append(SliceColumn(family=f"meta.{name}", title=name, kind=kind, values=codes, names=names))
    codes, names = columns.factors("speaker")
    if names:
        out.append(SliceColumn(family="speaker", title="speaker", kind="text", values=codes, names=names,
                               rank_by_errors=True))
    if split == ALL:
        names = np.array(SPLITS, dtype=object)
        out.append(SliceColumn(family="split", title="split", kind="text", values=names[frame.split]))
    for stat in STATS:
        out.append(SliceColumn(family=f"stat.{stat.name}", title=stat.title, kind="number",
                               values=columns.stats[stat.name], unit=stat.unit))
    return out


def _slice_url(run: Run, split: str, family: str, select: dict) -> str:
    base = {} if split == ALL else {"split": split}
    if family == "split":
        return urls.clip_list(run.id, **({"split": select["value"]} if "value" in select else base))
    return urls.clip_list(run.id, **base, **condition_params(select_condition(family, select)))


def slices_data(session: Session, cache: RunCache, run: Run, split: str) -> dict:
    """Every slice family of ``run`` over ``split`` (a split name or "all"), worst slices first, with
    the per-class table and the most confused pairs (also ``/api/slices``)."""
    if split != ALL and split not in SPLITS:
        raise EarmarkError(f"unknown split {split!r}", status=422, hint=f"one of {', '.join((*SPLITS, ALL))}")
    return cache.derived(session, run, ("slices", split), lambda: _build(session, cache, run, split))


def _build(session: Session, cache: RunCache, run: Run, split: str) -> dict:
    frame = cache.frame(session, run)
    columns = cache.slice_columns(session, run)
    mask = np.ones(len(frame.clip_ids), bool) if split == ALL else frame.split == SPLITS.index(split)
    cols = [SliceColumn(c.family, c.title, c.kind, c.values[mask], c.rank_by_errors, c.unit, c.names)
            for c in slice_columns(columns, frame, split)]
    doubted = None if columns.doubted is None else columns.doubted[mask]
    report = slice_report(cols, frame.agree[mask], frame.loss[mask], doubted)
    families = []
    for fam in report.families:
        if len(fam["slices"]) < 2:
            continue  # one value for every clip (a constant stat, say): nothing to compare
        slices = [dict(s.as_dict(), clips_url=_slice_url(run, split, fam["family"], s.select)) for s in fam["slices"]]
        families.append(dict(fam, slices=slices, n_slices=len(slices),
                             n_worse=sum(1 for s in slices if s["excludes_run"] and s["gap"] > 0)))
    target, pred = frame.target[mask], frame.pred[mask]
    base = {} if split == ALL else {"split": split}
    confused = [dict(p, clips_url=urls.clip_list(run.id, **base, label=p["label"], pred=p["pred"]))
                for p in top_confused(target, pred, frame.vocab)]
    classes = [dict(c, clips_url=urls.clip_list(run.id, **base, label=c["label"]))
               for c in per_class(target, pred, frame.vocab)]
    worst = sorted((dict(s, family_title=f["title"]) for f in families for s in f["slices"]
                    if s["excludes_run"] and s["gap"] > 0 and f["family"] != "split"),
                   key=lambda s: badness(s["n"], s["ci_low"], s["ci_high"], s["gap"], report.error_rate))[:10]
    return dict(run_id=run.id, split=split, n=report.n, errors=report.errors, accuracy=round(report.accuracy, 4),
                error_rate=round(report.error_rate, 4), mean_loss=None if report.mean_loss is None else round(report.mean_loss, 4),
                disagreement=None if report.disagreement is None else round(report.disagreement, 4),
                small_n=SMALL_N, families=families, worst=worst, per_class=classes, confused=confused)


def colour_columns(meta_kinds: dict[str, str]) -> list[dict]:
    """The extra "colour by" choices of the cloud: each metadata column, the speaker, the signal stats."""
    out = [dict(value=f"meta.{name}", title=f"{name} ({kind})", group="metadata") for name, kind in meta_kinds.items()]
    out.append(dict(value="speaker", title="speaker", group="clip"))
    out += [dict(value=f"stat.{s.name}", title=f"{s.title} ({s.unit})", group="signal") for s in STATS]
    return out


def available_splits(frame: RunFrame) -> list[str]:
    """The splits the run has predictions on, in the usual order, then "all"."""
    present = set(np.unique(frame.split).tolist())
    return [s for i, s in enumerate(SPLITS) if i in present] + [ALL]
