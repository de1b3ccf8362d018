"""``earmark infer``: a trained run's best checkpoint over every clip, into predictions and embeddings.

Visibility: the run is set to 'inferring' (committed) before the model runs; then the old rows
are deleted, the new Prediction and Embedding rows are bulk-inserted, the per-split metrics are
set and the status becomes 'complete', all in ONE transaction. A killed inference therefore
leaves either the previous complete set of rows or none, and never a run marked complete.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from app.errors import Conflict, EarmarkError
from app.pipeline.common import Progress
from app.pipeline.train import run_targets
from app.process import heartbeat
from app.store.clips import load_clips
from app.store.datasets import get_dataset
from app.store.db import Store
from app.store.predictions import PredictionRow, replace_predictions
from app.store.runs import beat_run, claim_run, finish_run, resolve_run, set_run_status
from ml.config import TrainConfig

log = logging.getLogger(__name__)


def _oof_probs(run_path: Path, clip_ids: list[int], waves, device, n_classes: int, batch: int,
               progress: Progress | None) -> dict[int, np.ndarray]:
    """Out-of-fold probabilities per training clip id, from the run's k fold models."""
    from ml.infer import load_checkpoint, predict

    assignment = json.loads((run_path / "folds.json").read_text())
    row_of = {cid: i for i, cid in enumerate(clip_ids)}
    folds: dict[int, list[int]] = {}
    for cid, f in assignment.items():
        if int(cid) in row_of:
            folds.setdefault(int(f), []).append(int(cid))
    out: dict[int, np.ndarray] = {}
    for k, ids in sorted(folds.items()):
        ckpt = run_path / f"fold{k}" / "best.pt"
        if not ckpt.is_file():
            raise EarmarkError(f"fold {k} has no checkpoint", f"missing {ckpt}", "train the run again with --folds")
        lm = load_checkpoint(ckpt, device)
        rows = np.array([row_of[c] for c in ids])
        cb = (lambda d, t, k=k: progress(f"fold {k + 1}/{len(folds)}", d, t)) if progress else None
        probs, _ = predict(lm.model, waves[np.sort(rows)], device, batch, lm.config.amp, False, cb)
        for cid, p in zip([clip_ids[r] for r in np.sort(rows)], probs, strict=True):
            out[cid] = p
    return out


def infer_run(store: Store, run_ref: str | int | None = None, progress: Progress | None = None,
              batch_size: int | None = None) -> int:
    """Predict every clip of the run's data set with its best checkpoint; returns the run id.

    The run belongs to this process while it infers (``claim_run``, with a heartbeat); another
    process's live training or inference of it is refused.
    """
    with store.session() as s:
        run = resolve_run(s, run_ref)
        if run.status == "training" or not run.checkpoint:
            raise Conflict(f"run {run.id} has no trained checkpoint (status {run.status})",
                           hint=f"finish it with `earmark train --resume {run.id}` first")
        if not Path(run.checkpoint).is_file():
            raise EarmarkError(f"the checkpoint of run {run.id} is missing", f"not found: {run.checkpoint}",
                               "train the run again")
        run_id, checkpoint, classes = run.id, Path(run.checkpoint), list(run.classes)
        cfg = TrainConfig.from_dict(run.config)
        label_map, folds = dict(run.label_map or {}), int(run.folds or 0)
        ds = get_dataset(s, run.dataset_id)
        root = Path(ds.root)
        clips = load_clips(s, ds.id)
        claim_run(s, run, "inferring")  # refused while another live process trains or infers it

    try:
        with heartbeat(lambda: _beat(store, run_id)):
            _infer(store, run_id, root, clips, cfg, checkpoint, classes, label_map, folds, progress, batch_size)
    except BaseException as exc:
        with store.session() as s:
            set_run_status(s, run_id, "failed", "inference interrupted" if isinstance(exc, KeyboardInterrupt)
                           else f"inference failed: {type(exc).__name__}: {exc}")
            s.commit()
        raise
    return run_id


def _beat(store: Store, run_id: int) -> None:
    with store.session() as s:
        beat_run(s, run_id)


def _infer(store: Store, run_id: int, root: Path, clips, cfg: TrainConfig, checkpoint: Path, classes: list[str],
           label_map: dict, folds: int, progress: Progress | None, batch_size: int | None) -> None:
    """Decode, predict, embed and write every clip of the run; marks the run 'complete' in one transaction."""
    from ml.data import DataError, load_waveforms
    from ml.device import pick_device
    from ml.infer import classification_metrics, cross_entropy, load_checkpoint, predict

    settings = store.settings
    device = pick_device(settings.device)
    try:
        waves, _, _ = load_waveforms(root, clips.paths, cfg.sample_rate, cfg.clip_samples, settings.cache_dir,
                                     (lambda d, t: progress("decoding", d, t)) if progress else None)
    except DataError as exc:
        raise EarmarkError("a clip could not be decoded", str(exc),
                           "the data set changed on disk since ingest; run `earmark ingest` again") from None
    lm = load_checkpoint(checkpoint, device)
    batch = batch_size or cfg.eval_batch_size
    t0 = time.perf_counter()
    probs, embs = predict(lm.model, waves, device, batch, cfg.amp, True,
                          (lambda d, t: progress("inferring", d, t)) if progress else None)
    log.info("inference over %d clips took %.2f s", len(clips.ids), time.perf_counter() - t0)
    oof = _oof_probs(checkpoint.parent, clips.ids, waves, device, len(classes), batch, progress) if folds else {}

    names, _ = run_targets(clips, classes, cfg.classes, label_map)
    index = {c: i for i, c in enumerate(classes)}
    # A target outside the run's classes (a label added to the data set later) scores as a miss.
    tgt = np.array([index.get(n, -1) for n in names], dtype=np.int64)
    pred = probs.argmax(1)
    conf = probs[np.arange(len(pred)), pred]
    loss = cross_entropy(probs, np.where(tgt >= 0, tgt, 0))
    loss[tgt < 0] = float(-np.log(1e-12))
    pred_rows = [PredictionRow(clip_id=cid, target=names[i], pred=classes[pred[i]], confidence=float(conf[i]),
                               loss=float(loss[i]), agree=bool(tgt[i] == pred[i]), probs=probs[i],
                               embedding=embs[i], oof_probs=oof.get(cid))
                 for i, cid in enumerate(clips.ids)]
    splits = np.array(clips.splits)
    metrics = {}
    for split in ("train", "validation", "test"):
        m = (splits == split) & (tgt >= 0)
        if m.any():
            metrics[split] = classification_metrics(tgt[m], pred[m], classes)

    if progress:
        progress("writing", 0, len(pred_rows))
    with store.session() as s, s.begin():  # ONE transaction: all rows and 'complete', or nothing
        replace_predictions(s, run_id, pred_rows)
        finish_run(s, run_id, "complete", metrics=metrics, n_params=lm.n_params, embedding_dim=lm.embedding_dim)
    if progress:
        progress("writing", len(pred_rows), len(pred_rows))
