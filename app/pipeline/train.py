"""``earmark train``: a data set's clips (and flags) in, a Run with epochs and checkpoints out.

Flow: resolve the data set, map every clip's label into the task's classes (``all`` or ``v1-12``),
apply flags when asked (``--apply-flags``: corrected labels; cut-off/noise/multi-word clips to a
``_cutoff_`` class or left out), create the Run row (status ``training``) with its full config,
decode the waveforms once (disk cache), call ``ml.train.train`` and store each epoch as it ends.
The run ends ``trained`` (then ``earmark infer`` makes it ``complete``) or ``failed`` with the error.

Under ``torchrun --nproc_per_node=N`` every process calls ``train_run``; rank 0 owns the store and
broadcasts the work to the others.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, EarmarkError
from app.flags import plan_labels
from app.limits import check_text
from app.pipeline.common import Progress
from app.pipeline.run_spec import RunSpec, record
from app.pipeline.window import fit_window
from app.process import heartbeat
from app.store.clips import ClipTable, clip_durations, load_clips
from app.store.datasets import get_dataset, resolve_dataset
from app.store.db import Store
from app.store.flags import dataset_flags
from app.store.models import Dataset, Run
from app.store.runs import (
    add_run,
    beat_run,
    claim_run,
    default_parent,
    finish_run,
    record_epoch,
    resolve_run,
    set_run_status,
)
from ml.config import TrainConfig
from ml.speech_commands import task_named

log = logging.getLogger(__name__)

# progress(stage, done, total): stage is "decoding", "training", "fold k/K" or "inferring"/"writing".

def base_classes(kind: str, dataset_labels: list[str]) -> list[str]:
    """Output classes before flags: the data set's labels, or the 12-class task (``ml.speech_commands.Task``)."""
    return task_named(kind).classes(dataset_labels)


def run_targets(clips: ClipTable, classes: list[str], kind: str, label_map: dict) -> tuple[list[str], np.ndarray]:
    """Each clip's target name under a run (flag overrides applied) and training index (-1 = left out).

    ``label_map`` maps str(clip_id) to the training label, or None for a clip left out of training.
    A left-out clip keeps its own mapped label as target (for predictions), with index -1.
    """
    task = task_named(kind)
    index = {c: i for i, c in enumerate(classes)}
    names, idx = [], np.full(len(clips.ids), -1, dtype=np.int64)
    for i, (cid, label) in enumerate(zip(clips.ids, clips.labels, strict=True)):
        key, own = str(cid), task.map(label)
        override = label_map[key] if key in label_map else own
        name = own if override is None else override
        names.append(name)
        if override is not None and name in index:
            idx[i] = index[name]
    return names, idx


def flag_overrides(session: Session, dataset: Dataset, kind: str, policy: str) -> tuple[dict, list[dict], list[str]]:
    """Per-clip label overrides from the data set's flags (``app.flags.plan_labels``, the rule
    ``earmark relabel`` uses too), the flags used, and the classes the flags add (e.g. ``_cutoff_``)."""
    plan = plan_labels(dataset_flags(session, dataset.id), base_classes(kind, dataset.labels), policy, kind)
    return {str(cid): label for cid, label in plan.overrides.items()}, plan.used, plan.extra_classes


def run_dir(settings: Settings, run_id: int) -> Path:
    """Checkpoints and TensorBoard logs of one run."""
    return settings.runs_dir / str(run_id)


def create_run(session: Session, settings: Settings, dataset_ref: str | int | None, cfg: TrainConfig,
               name: str | None = None, parent: str | int | None = None, spec: RunSpec | None = None) -> Run:
    """Validate the request and insert the Run row (status 'training'); commits.

    ``spec`` holds what the app does around training (``--apply-flags``, the cut-off policy, folds).
    """
    spec = spec or RunSpec()
    try:
        cfg.validate()
        spec.validate()
    except ValueError as exc:
        raise EarmarkError("invalid training settings", str(exc), "see `earmark train --help`", 422) from None
    if name is not None:
        check_text(name, "run name", 200)
    ds = resolve_dataset(session, dataset_ref)
    cfg, window = fit_window(cfg, ds.layout, clip_durations(session, ds.id))  # the input window fits the data
    classes = base_classes(cfg.classes, ds.labels)
    label_map, used, parent_id = {}, [], None
    if spec.apply_flags:
        label_map, used, extra = flag_overrides(session, ds, cfg.classes, spec.cutoff_policy)
        classes.extend(extra)
        if not used:
            log.warning("--apply-flags: data set %s has no usable flags", ds.name)
    if parent is not None:
        p = resolve_run(session, parent)
        if p.dataset_id != ds.id:
            raise EarmarkError(f"run {p.id} belongs to another data set", hint="pick a run of the same data set")
        parent_id = p.id
    elif spec.apply_flags:
        parent_id = default_parent(session, ds.id)
    run = add_run(session, dataset_id=ds.id, name=name or f"{ds.name}-{cfg.model}", model=cfg.model,
                  status="training", classes=classes, config={**record(cfg, spec), "window": window},
                  label_map=label_map, flags_used=used, parent_run_id=parent_id, folds=spec.folds)
    session.commit()
    return run


def _payload(session: Session, settings: Settings, run: Run) -> dict:
    """Everything every training process needs, as plain data (broadcast under DDP)."""
    ds = get_dataset(session, run.dataset_id)
    clips = load_clips(session, ds.id)
    cfg = TrainConfig.from_dict(run.config)
    _, idx = run_targets(clips, run.classes, cfg.classes, run.label_map or {})
    return {"run_id": run.id, "root": ds.root, "paths": clips.paths, "ids": clips.ids, "splits": clips.splits,
            "speakers": clips.speakers, "labels": idx, "classes": list(run.classes), "config": run.config,
            "noise_files": list(ds.noise_files or []), "dir": str(run_dir(settings, run.id))}


def _record_epoch(store: Store, run_id: int, stats) -> None:
    with store.session() as s:
        record_epoch(s, run_id, stats.epoch, train_loss=stats.train_loss, val_loss=_finite(stats.val_loss),
                     val_accuracy=stats.val_accuracy, val_macro_f1=stats.val_macro_f1, seconds=stats.seconds,
                     lr=stats.lr)
        s.commit()


def _beat(store: Store, run_id: int) -> None:
    with store.session() as s:
        beat_run(s, run_id)


def _finite(x: float) -> float:
    return float(x) if np.isfinite(x) else 0.0


def _fit(settings: Settings, payload: dict, resume: bool, progress: Progress | None, store: Store | None) -> dict:
    """Decode (cached), then train the main model and any folds. Runs on every DDP process."""
    from ml.data import DataError, load_noise, load_waveforms
    from ml.device import barrier, pick_device
    from ml.train import TrainData, speaker_folds, train

    cfg = TrainConfig.from_dict(payload["config"])
    device = pick_device(settings.device)
    root, out = Path(payload["root"]), Path(payload["dir"])
    main = store is not None
    try:
        if not main:
            barrier()  # rank 0 builds the cache first
        decode_cb = (lambda d, t: progress("decoding", d, t)) if progress and main else None
        waves, _, _ = load_waveforms(root, payload["paths"], cfg.sample_rate, cfg.clip_samples,
                                     settings.cache_dir, decode_cb)
        if main:
            barrier()
    except DataError as exc:
        raise EarmarkError("a clip could not be decoded", str(exc),
                           "the data set changed on disk since ingest; run `earmark ingest` again") from None
    noise = load_noise(root, payload["noise_files"], cfg.sample_rate)
    labels = np.asarray(payload["labels"], dtype=np.int64)
    splits = np.array(payload["splits"])
    train_idx, val_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "validation")
    data = TrainData(waves, labels, train_idx, val_idx, payload["classes"], noise)

    def on_step(tag: str):
        if not (progress and main):
            return None
        return lambda epoch, step, n, loss: progress(tag, (epoch - 1) * n + step, cfg.epochs * n if not cfg.dry_run
                                                    else n)

    on_epoch = (lambda st: _record_epoch(store, payload["run_id"], st)) if main else None
    result = train(cfg, data, out, device, resume=resume, on_epoch=on_epoch, on_step=on_step("training"),
                   tb_dir=out / "tb")
    info = {"best": str(result.best_path), "epochs_done": result.epochs_done, "n_params": result.n_params,
            "embedding_dim": result.embedding_dim}
    n_folds = RunSpec.from_config(payload["config"]).folds
    if n_folds and not cfg.dry_run:
        trainable = train_idx[labels[train_idx] >= 0]
        folds = speaker_folds([payload["speakers"][i] for i in trainable], n_folds, cfg.seed)
        if main:
            (out / "folds.json").write_text(json.dumps(
                {str(payload["ids"][i]): int(f) for i, f in zip(trainable, folds, strict=True)}))
        for k in range(n_folds):
            fold_data = TrainData(waves, labels, trainable[folds != k], val_idx, payload["classes"], noise)
            train(cfg, fold_data, out / f"fold{k}", device, resume=resume, on_step=on_step(f"fold {k + 1}/{n_folds}"))
    return info


def train_run(store: Store, dataset: str | int | None = None, cfg: TrainConfig | None = None,
              name: str | None = None, parent: str | int | None = None, resume: str | int | None = None,
              progress: Progress | None = None, spec: RunSpec | None = None) -> int:
    """Train a new run (or ``resume`` an interrupted one); returns the run id. Status ends 'trained'.

    ``spec``: flags and folds (``app.pipeline.run_spec``); a resumed run keeps its own.

    Under DDP every process calls this with the same store; only the main process reads or writes it.
    """
    from ml.device import broadcast_object, init_distributed, pick_device

    settings = store.settings
    try:
        info = init_distributed(pick_device(settings.device))
    except ValueError as exc:
        raise EarmarkError("the requested device is not available", str(exc),
                           "unset EARMARK_DEVICE or set it to auto or cpu") from None
    main_store = store if info.is_main else None
    payload = None
    if main_store is not None:
        with store.session() as s:
            if resume is not None:
                run = resolve_run(s, resume)
                if run.status not in ("training", "failed"):
                    raise Conflict(f"run {run.id} finished training (status {run.status})",
                                   hint="start a new run instead of --resume")
            else:
                run = create_run(s, settings, dataset, cfg or TrainConfig(), name, parent, spec)
            claim_run(s, run, "training")  # refused while another live process trains it
            payload = _payload(s, settings, run)
    payload = broadcast_object(payload)
    run_id = payload["run_id"]
    try:
        with heartbeat(lambda: _beat(store, run_id)) if main_store is not None else nullcontext():
            result = _fit(settings, payload, resume is not None, progress, main_store)
    except BaseException as exc:
        if main_store is not None:
            with store.session() as s:
                set_run_status(s, run_id, "failed", "interrupted" if isinstance(exc, KeyboardInterrupt)
                               else f"{type(exc).__name__}: {exc}")
                s.commit()
        if isinstance(exc, ValueError):
            raise EarmarkError("training could not start", str(exc)) from None
        raise
    if main_store is not None:
        with store.session() as s:
            finish_run(s, run_id, "trained", checkpoint=result["best"], epochs_done=result["epochs_done"],
                       n_params=result["n_params"], embedding_dim=result["embedding_dim"])
            s.commit()
    return run_id
