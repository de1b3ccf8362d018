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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, EarmarkError
from app.pipeline.common import resolve_dataset, resolve_run
from app.store.db import open_store
from app.store.models import Clip, Dataset, Epoch, Flag, Run, utcnow
from ml.config import TrainConfig

log = logging.getLogger(__name__)

# progress(stage, done, total): stage is "decoding", "training", "fold k/K" or "inferring"/"writing".
Progress = Callable[[str, int, int], None]

KEYWORDS_V1_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE, CUTOFF = "_unknown_", "_silence_", "_cutoff_"
CUTOFF_REASONS = ("cutoff", "noise_only", "multiple_words")


@dataclass
class ClipTable:
    """The clips of a data set in id order, as parallel lists."""

    ids: list[int]
    paths: list[str]
    labels: list[str]
    splits: list[str]
    speakers: list[str | None]


def load_clips(session: Session, dataset_id: int) -> ClipTable:
    """Every clip of the data set, ordered by id (the order of the waveform cache)."""
    rows = session.execute(select(Clip.id, Clip.path, Clip.label, Clip.split, Clip.speaker)
                           .where(Clip.dataset_id == dataset_id).order_by(Clip.id)).all()
    return ClipTable([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                     [r[4] for r in rows])


def base_classes(kind: str, dataset_labels: list[str]) -> list[str]:
    """Output classes before flags: the data set's labels, or the 12-class task."""
    if kind == "v1-12":
        return [*KEYWORDS_V1_12, UNKNOWN, SILENCE]
    return sorted(set(dataset_labels) - {"_background_noise_"})


def map_label(label: str, kind: str) -> str:
    """A label as filed, mapped into the task (non-keywords are _unknown_ in v1-12)."""
    if kind == "v1-12" and label not in KEYWORDS_V1_12 and label != SILENCE:
        return UNKNOWN
    return label


def run_targets(clips: ClipTable, classes: list[str], kind: str, label_map: dict) -> tuple[list[str], np.ndarray]:
    """Each clip's target name under a run (flag overrides applied) and training index (-1 = left out).

    ``label_map`` maps str(clip_id) to the training label, or None for a clip left out of training.
    A left-out clip keeps its own mapped label as target (for predictions), with index -1.
    """
    index = {c: i for i, c in enumerate(classes)}
    names, idx = [], np.full(len(clips.ids), -1, dtype=np.int64)
    for i, (cid, label) in enumerate(zip(clips.ids, clips.labels, strict=True)):
        key = str(cid)
        override = label_map[key] if key in label_map else map_label(label, kind)
        name = map_label(label, kind) if override is None else override
        names.append(name)
        if override is not None and name in index:
            idx[i] = index[name]
    return names, idx


def flag_overrides(session: Session, dataset: Dataset, kind: str, policy: str) -> tuple[dict, list[dict], bool]:
    """Per-clip label overrides from the data set's flags, the flags used, and whether _cutoff_ is needed."""
    rows = session.execute(select(Flag.clip_id, Flag.reason, Flag.corrected_label, Flag.updated_at)
                           .join(Clip, Clip.id == Flag.clip_id).where(Clip.dataset_id == dataset.id)
                           .order_by(Flag.clip_id)).all()
    known = set(dataset.labels)
    label_map: dict[str, str | None] = {}
    used: list[dict] = []
    cutoff_class = False
    for clip_id, flag_reason, corrected, updated in rows:
        reason = flag_reason
        if reason == "mislabeled" and corrected == CUTOFF:
            reason = "cutoff"  # "mislabeled as _cutoff_" is a cut-off decision: the policy applies
        if reason == "mislabeled" and corrected == UNKNOWN and kind == "v1-12":
            label_map[str(clip_id)] = UNKNOWN
        elif reason == "mislabeled":
            if not corrected or corrected not in known:
                log.warning("ignoring flag on clip %s: corrected label %r is not a label of the data set",
                            clip_id, corrected)
                continue
            label_map[str(clip_id)] = map_label(corrected, kind)
        elif reason in CUTOFF_REASONS:
            if policy == "exclude":
                label_map[str(clip_id)] = None
            else:
                label_map[str(clip_id)] = UNKNOWN if kind == "v1-12" else CUTOFF
                cutoff_class = cutoff_class or kind != "v1-12"
        else:  # "other": a note for people, not a training decision
            continue
        used.append({"clip_id": int(clip_id), "reason": flag_reason, "corrected_label": corrected,
                     "updated_at": updated.isoformat() if updated else None})
    return label_map, used, cutoff_class


def default_parent(session: Session, dataset_id: int) -> int | None:
    """The newest complete run of the data set."""
    return session.scalars(select(Run.id).where(Run.dataset_id == dataset_id, Run.status == "complete")
                           .order_by(Run.id.desc())).first()


def run_dir(settings: Settings, run_id: int) -> Path:
    """Checkpoints and TensorBoard logs of one run."""
    return settings.runs_dir / str(run_id)


def create_run(session: Session, settings: Settings, dataset_ref: str | int | None, cfg: TrainConfig,
               name: str | None = None, parent: str | int | None = None) -> Run:
    """Validate the request and insert the Run row (status 'training'); commits."""
    try:
        cfg.validate()
    except ValueError as exc:
        raise EarmarkError("invalid training settings", str(exc), "see `earmark train --help`", 422) from None
    ds = resolve_dataset(session, dataset_ref)
    classes = base_classes(cfg.classes, ds.labels)
    label_map, used, parent_id = {}, [], None
    if cfg.apply_flags:
        label_map, used, cutoff_class = flag_overrides(session, ds, cfg.classes, cfg.cutoff_policy)
        if cutoff_class:
            classes.append(CUTOFF)
        if not used:
            log.warning("--apply-flags: data set %s has no usable flags", ds.name)
    if parent is not None:
        p = resolve_run(session, parent)
        if p.dataset_id != ds.id:
            raise EarmarkError(f"run {p.id} belongs to another data set", hint="pick a run of the same data set")
        parent_id = p.id
    elif cfg.apply_flags:
        parent_id = default_parent(session, ds.id)
    run = Run(dataset_id=ds.id, name=name or f"{ds.name}-{cfg.model}", model=cfg.model, status="training",
              classes=classes, config=cfg.to_dict(), label_map=label_map, flags_used=used,
              parent_run_id=parent_id, folds=cfg.folds)
    session.add(run)
    session.commit()
    return run


def _payload(session: Session, settings: Settings, run: Run) -> dict:
    """Everything every training process needs, as plain data (broadcast under DDP)."""
    ds = session.get(Dataset, run.dataset_id)
    clips = load_clips(session, ds.id)
    cfg = TrainConfig.from_dict(run.config)
    _, idx = run_targets(clips, run.classes, cfg.classes, run.label_map or {})
    return {"run_id": run.id, "root": ds.root, "paths": clips.paths, "ids": clips.ids, "splits": clips.splits,
            "speakers": clips.speakers, "labels": idx, "classes": list(run.classes), "config": run.config,
            "noise_files": list(ds.noise_files or []), "dir": str(run_dir(settings, run.id))}


def _record_epoch(sessions, run_id: int, stats) -> None:
    with sessions() as s:
        s.execute(delete(Epoch).where(Epoch.run_id == run_id, Epoch.epoch == stats.epoch))
        s.add(Epoch(run_id=run_id, epoch=stats.epoch, train_loss=stats.train_loss,
                    val_loss=_finite(stats.val_loss), val_accuracy=stats.val_accuracy,
                    val_macro_f1=stats.val_macro_f1, seconds=stats.seconds, lr=stats.lr))
        run = s.get(Run, run_id)
        run.epochs_done = stats.epoch
        s.commit()


def _finite(x: float) -> float:
    return float(x) if np.isfinite(x) else 0.0


def _fit(settings: Settings, payload: dict, resume: bool, progress: Progress | None, sessions) -> dict:
    """Decode (cached), then train the main model and any folds. Runs on every DDP process."""
    from ml.data import DataError, load_noise, load_waveforms
    from ml.device import barrier, pick_device
    from ml.train import TrainData, speaker_folds, train

    cfg = TrainConfig.from_dict(payload["config"])
    device = pick_device(settings.device)
    root, out = Path(payload["root"]), Path(payload["dir"])
    main = sessions is not None
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

    on_epoch = (lambda st: _record_epoch(sessions, payload["run_id"], st)) if main else None
    result = train(cfg, data, out, device, resume=resume, on_epoch=on_epoch, on_step=on_step("training"),
                   tb_dir=out / "tb")
    info = {"best": str(result.best_path), "epochs_done": result.epochs_done, "n_params": result.n_params,
            "embedding_dim": result.embedding_dim}
    if cfg.folds and not cfg.dry_run:
        trainable = train_idx[labels[train_idx] >= 0]
        folds = speaker_folds([payload["speakers"][i] for i in trainable], cfg.folds, cfg.seed)
        if main:
            (out / "folds.json").write_text(json.dumps(
                {str(payload["ids"][i]): int(f) for i, f in zip(trainable, folds, strict=True)}))
        for k in range(cfg.folds):
            fold_data = TrainData(waves, labels, trainable[folds != k], val_idx, payload["classes"], noise)
            train(cfg, fold_data, out / f"fold{k}", device, resume=resume, on_step=on_step(f"fold {k + 1}/{cfg.folds}"))
    return info


def train_run(settings: Settings, dataset: str | int | None = None, cfg: TrainConfig | None = None,
              name: str | None = None, parent: str | int | None = None, resume: str | int | None = None,
              progress: Progress | None = None) -> int:
    """Train a new run (or ``resume`` an interrupted one); returns the run id. Status ends 'trained'."""
    from ml.device import broadcast_object, init_distributed, pick_device

    try:
        info = init_distributed(pick_device(settings.device))
    except ValueError as exc:
        raise EarmarkError("the requested device is not available", str(exc),
                           "unset EARMARK_DEVICE or set it to auto or cpu") from None
    sessions = None
    payload = None
    if info.is_main:
        _, sessions = open_store(settings)
        with sessions() as s:
            if resume is not None:
                run = resolve_run(s, resume)
                if run.status not in ("training", "failed"):
                    raise Conflict(f"run {run.id} finished training (status {run.status})",
                                   hint="start a new run instead of --resume")
                run.status, run.error = "training", None
                s.commit()
            else:
                run = create_run(s, settings, dataset, cfg or TrainConfig(), name, parent)
            payload = _payload(s, settings, run)
    payload = broadcast_object(payload)
    run_id = payload["run_id"]
    try:
        result = _fit(settings, payload, resume is not None, progress, sessions)
    except BaseException as exc:
        if sessions is not None:
            with sessions() as s:
                run = s.get(Run, run_id)
                run.status = "failed"
                run.error = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
                s.commit()
        if isinstance(exc, ValueError):
            raise EarmarkError("training could not start", str(exc)) from None
        raise
    if sessions is not None:
        with sessions() as s:
            run = s.get(Run, run_id)
            run.status, run.checkpoint = "trained", result["best"]
            run.epochs_done, run.n_params = result["epochs_done"], result["n_params"]
            run.embedding_dim, run.finished_at = result["embedding_dim"], utcnow()
            s.commit()
    return run_id
