"""``earmark import-run`` and ``earmark export-run``: another model's outputs in, any run's outputs out.

``import_run`` takes a run file (Parquet, NPZ, CSV; or a ``RunFile`` the Python API built from
arrays or a DataFrame, ``app.run_files``), checks it against the data set (every key is a clip, the
model's classes cover the labels, directly or through a task's map such as ``v1-12``), then writes
the Run (status complete), its Predictions and its Embeddings in ONE transaction. Everything is
validated before anything is written, and a killed import leaves no run at all.

A run file without probabilities (``pred`` + ``confidence`` only) is a *reduced* run: no loss, no
label issues; without embeddings there is no cloud, no clusters, outliers or duplicates. What is
missing, the coverage (clips without a prediction), the source file, its SHA-256 and the model's
name and version are kept in ``Run.config["import"]``, for the pages and ``earmark analyze``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.errors import EarmarkError
from app.flags import CUTOFF
from app.limits import check_text
from app.pipeline.common import Progress, no_progress
from app.run_files import RunFile, from_arrays, map_classes, match_keys, read_run_file, write_parquet
from app.store.clips import load_clips
from app.store.datasets import get_dataset, resolve_dataset
from app.store.db import Store
from app.store.models import utcnow
from app.store.predictions import RunOutputs, read_outputs, write_outputs
from app.store.runs import add_run, resolve_run
from ml.metrics import classification_metrics, cross_entropy

log = logging.getLogger(__name__)

IMPORTED = "imported"  # Run.model (and TrainConfig.model, so no front end is guessed) of an imported run
SPLITS = ("train", "validation", "test")
MAX_UNCOVERED_LISTED = 2000  # clip paths without a prediction kept on the run (the count is always kept)
MISSED_LOSS = float(-np.log(1e-12))  # a target outside the model's classes scores as a certain miss (as infer)


@dataclass
class ImportSummary:
    """What ``import_run`` wrote."""

    run_id: int
    name: str
    dataset: str
    model: str
    n_rows: int
    n_clips: int
    coverage: float
    uncovered: int
    coverage_text: str
    missing: list[str]
    class_map: str | None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> accuracy, macro_f1
    seconds: dict[str, float] = field(default_factory=dict)


def import_info(run) -> dict:
    """The import record of a run (source, model, coverage, missing parts), or {} for a trained run."""
    return dict((run.config or {}).get("import") or {})


def _run_file(source: str | os.PathLike | RunFile, classes, logits: bool, model: str | None) -> RunFile:
    if isinstance(source, RunFile):
        if classes is not None and tuple(map(str, classes)) != source.classes:
            raise EarmarkError("the class list given does not match the run's", f"given {list(classes)[:20]}, "
                               f"the run has {list(source.classes)[:20]}", "leave `classes` out, or give the same list")
        rf = source
    else:
        rf = read_run_file(source, classes=list(classes) if classes is not None else None, logits=logits)
    return dataclasses.replace(rf, model=model) if model else rf


def _oof_matrix(rf: RunFile, splits: np.ndarray, oof: bool) -> np.ndarray | None:
    """Out-of-sample probabilities per row: the file's ``oof_probs``, its ``oof``-marked rows, and with
    ``oof`` (``--oof``) every training clip's probabilities; NaN rows elsewhere; None when none."""
    if rf.probs is None:
        return None
    out = rf.oof_probs.copy() if rf.oof_probs is not None else np.full(rf.probs.shape, np.nan, np.float32)
    mark = np.zeros(len(rf), bool)
    if rf.oof is not None:
        mark |= rf.oof
    if oof:
        mark |= splits == "train"
    mark &= np.isnan(out).all(axis=1)
    out[mark] = rf.probs[mark]
    return out if not np.isnan(out).all() else None


def import_run(store: Store, source: str | os.PathLike | RunFile, dataset: str | int | None, name: str,
               classes=None, logits: bool = False, task: str | None = None, oof: bool = False,
               model: str | None = None, progress: Progress | None = None) -> ImportSummary:
    """Create a complete run from a run file (a path, or a ``RunFile``) on ``dataset``; returns what it wrote.

    ``classes``: the model's output order when the file does not say it. ``logits``: the file holds
    logits (softmaxed on reading). ``task``: a class map (``v1-12``) for a model whose classes are
    not the data set's labels. ``oof``: the training clips' probabilities are out-of-sample (label
    issues use them as they use ``train --folds``). ``model``: the model's name (else the file's).
    """
    progress = progress or no_progress
    t0 = time.perf_counter()
    if not name or not str(name).strip():
        raise EarmarkError("the run needs a name", hint="give `--name NAME`")
    check_text(str(name), "run name", 200)
    progress("reading", 0, 1)
    rf = _run_file(source, classes, logits, model)
    t_read = time.perf_counter()
    progress("checking", 0, 1)
    with store.session() as s:
        ds = resolve_dataset(s, dataset)
        ds_id, ds_name, ds_root, ds_labels = ds.id, ds.name, ds.root, list(ds.labels or [])
        clips = load_clips(s, ds.id)
    cmap = map_classes(rf, ds_labels, task, extra_ok=(CUTOFF,))
    keys = match_keys(rf, clips.ids, clips.paths, root=ds_root)
    labels = np.asarray(clips.labels, dtype=object)[keys.rows]
    splits = np.asarray(clips.splits, dtype=object)[keys.rows]
    tgt = cmap.target_index(labels)  # -1: a label the map does not know (cannot happen after map_classes)
    target = np.array([cmap.targets.get(lab, lab) for lab in labels.tolist()], dtype=object)
    agree = tgt == rf.pred
    loss = None
    if rf.probs is not None:
        loss = cross_entropy(rf.probs, np.where(tgt >= 0, tgt, 0))
        loss[tgt < 0] = MISSED_LOSS
    cls = list(rf.classes)
    metrics = {}
    for split in SPLITS:
        m = (splits == split) & (tgt >= 0)
        if m.any():
            metrics[split] = classification_metrics(tgt[m], rf.pred[m], cls)
    uncovered_paths = [clips.paths[i] for i in keys.uncovered[:MAX_UNCOVERED_LISTED].tolist()]
    info = {
        "source": rf.source, "sha256": rf.sha256, "format": rf.fmt, "model": rf.model,
        "model_version": rf.model_version, "class_map": {"task": cmap.task, "unused": list(cmap.unused)},
        "missing": list(rf.missing), "has_probs": rf.probs is not None, "has_embeddings": rf.embeddings is not None,
        "oof": bool(oof), "rows": len(rf),
        "coverage": {"clips": keys.n_clips, "covered": len(keys.rows), "fraction": round(keys.coverage, 6),
                     "uncovered": len(keys.uncovered), "uncovered_paths": uncovered_paths},
        "imported_at": utcnow().isoformat(),
    }
    out = RunOutputs(clip_ids=keys.clip_ids, target=target, pred=rf.pred_names, confidence=rf.confidence,
                     agree=agree, loss=loss, probs=rf.probs, oof_probs=_oof_matrix(rf, splits, oof),
                     embeddings=rf.embeddings)
    t_check = time.perf_counter()
    progress("writing", 0, len(rf))
    with store.session() as s, s.begin():  # ONE transaction: the run and all its rows, or nothing
        run = add_run(s, dataset_id=ds_id, name=str(name).strip(), model=(rf.model or IMPORTED)[:40],
                      status="complete", classes=cls, metrics=metrics, finished_at=utcnow(),
                      config={"model": IMPORTED, "classes": cmap.task or "all", "import": info},
                      embedding_dim=None if rf.embeddings is None else int(rf.embeddings.shape[1]),
                      folds=0, epochs_done=0)
        run_id = run.id
        write_outputs(s, run_id, out, lambda d, t: progress("writing", d, t))
    t_write = time.perf_counter()
    log.info("imported %d rows into run %d in %.2f s", len(rf), run_id, t_write - t0)
    return ImportSummary(
        run_id=run_id, name=str(name).strip(), dataset=ds_name, model=rf.model or IMPORTED, n_rows=len(rf),
        n_clips=keys.n_clips, coverage=keys.coverage, uncovered=len(keys.uncovered), coverage_text=keys.describe(),
        missing=list(rf.missing), class_map=cmap.task,
        metrics={s: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]} for s, m in metrics.items()},
        seconds={"read": round(t_read - t0, 3), "check": round(t_check - t_read, 3),
                 "write": round(t_write - t_check, 3), "total": round(t_write - t0, 3)})


def run_file_of(store: Store, run_ref: str | int | None) -> tuple[RunFile, RunOutputs]:
    """Any run's outputs as a ``RunFile`` keyed by path (and the stored columns, for target/loss/agree)."""
    with store.session() as s:
        run = resolve_run(s, run_ref)
        if run.status != "complete":
            raise EarmarkError(f"run {run.id} ({run.name}) is {run.status}, not complete",
                               hint=f"wait for it, or run `earmark infer --run {run.id}`", status=409)
        outputs = read_outputs(s, run)
        info, cfg, classes, run_model, run_id = (import_info(run), dict(run.config or {}), list(run.classes),
                                                 run.model, run.id)
        ds = get_dataset(s, run.dataset_id)
        ds_name = ds.name if ds else None
    task = (info.get("class_map") or {}).get("task") if info else (cfg.get("classes") if cfg.get("classes") != "all"
                                                                       else None)
    kw = dict(probs=outputs.probs) if outputs.probs is not None else dict(pred=outputs.pred,
                                                                          confidence=outputs.confidence)
    rf = from_arrays(np.asarray(outputs.paths, dtype=object), classes=classes, embeddings=outputs.embeddings,
                     oof_probs=outputs.oof_probs, model=info.get("model") or run_model,
                     model_version=info.get("model_version") if info else f"earmark run {run_id} on {ds_name}",
                     task=task, **kw)
    return rf, outputs


def export_run(store: Store, run_ref: str | int | None, out: str | os.PathLike) -> tuple[Path, int]:
    """Write a run's predictions, embeddings, targets, losses and agreement to a Parquet run file
    (``app.run_files.write_parquet``, the format ``import_run`` reads). Returns (path, rows)."""
    rf, outputs = run_file_of(store, run_ref)
    path = write_parquet(out, rf, target=outputs.target.tolist(), loss=outputs.loss, agree=outputs.agree)
    return path, len(rf)
