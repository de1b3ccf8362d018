"""Predictions and embeddings: what ``earmark infer`` writes, and how the rest reads them back.

Probability vectors and embeddings are float32 BLOBs; they go through ``app.store.codec`` both ways.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.store import codec
from app.store.models import Clip, Embedding, Prediction, Run
from app.store.writes import bulk_insert


@dataclass
class PredictionRow:
    """A run's output for one clip, as ``earmark infer`` hands it to the store."""

    clip_id: int
    target: str
    pred: str
    confidence: float
    loss: float
    agree: bool
    probs: np.ndarray  # float32 (k,)
    embedding: np.ndarray  # float32 (d,)
    oof_probs: np.ndarray | None = None  # float32 (k,), k-fold, training split only


@dataclass
class RunData:
    """Everything the detectors read, one row per clip with a prediction and an embedding (by clip id)."""

    clip_ids: np.ndarray  # (n,) int64
    paths: list[str]
    splits: np.ndarray  # (n,) str
    labels: np.ndarray  # (n,) str, the target in the run's classes
    preds: np.ndarray  # (n,) str
    agree: np.ndarray  # (n,) bool
    confidence: np.ndarray  # (n,) float32
    probs: np.ndarray  # (n, k) float32
    oof: np.ndarray | None  # (n, k) float32, NaN rows where absent
    emb: np.ndarray  # (n, d) float32
    hashes: list[str]
    signal: dict[str, np.ndarray]  # Clip signal columns, (n,) each
    duration_s: np.ndarray
    cutoff_signal: np.ndarray


def replace_predictions(session: Session, run_id: int, rows: list[PredictionRow]) -> None:
    """Replace the run's Prediction and Embedding rows with ``rows``. Caller commits (one transaction)."""
    session.execute(delete(Prediction).where(Prediction.run_id == run_id))
    session.execute(delete(Embedding).where(Embedding.run_id == run_id))
    bulk_insert(session, Prediction, [
        dict(run_id=run_id, clip_id=r.clip_id, target=r.target, pred=r.pred, confidence=r.confidence, loss=r.loss,
             agree=r.agree, probs=codec.encode(r.probs),
             oof_probs=None if r.oof_probs is None else codec.encode(r.oof_probs)) for r in rows])
    bulk_insert(session, Embedding, [dict(run_id=run_id, clip_id=r.clip_id, vector=codec.encode(r.embedding))
                                     for r in rows])


def get_prediction(session: Session, run_id: int, clip_id: int) -> Prediction | None:
    """The run's prediction for one clip, or None."""
    return session.get(Prediction, (run_id, clip_id))


def top_classes(pred: Prediction | None, classes: list[str], k: int = 5) -> list[dict]:
    """The ``k`` most probable classes of a prediction: [{cls, prob}]."""
    if pred is None or not pred.probs:
        return []
    probs = codec.decode(pred.probs)
    order = np.argsort(-probs)[:k]
    return [dict(cls=classes[i] if i < len(classes) else str(i), prob=float(probs[i])) for i in order]


def embeddings(session: Session, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(clip ids int64 (n,), embeddings float32 (n, d)) of a run, ordered by clip id; (0,) and (0, 0) if none."""
    rows = session.execute(select(Embedding.clip_id, Embedding.vector).where(Embedding.run_id == run_id)
                           .order_by(Embedding.clip_id)).all()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    return ids, codec.decode_rows([r[1] for r in rows])


def load_run_data(session: Session, run: Run) -> RunData:
    """Read the run's predictions, embeddings and clip stats into arrays (clip id order)."""
    q = (select(Clip.id, Clip.path, Clip.split, Clip.content_hash, Clip.rms_dbfs, Clip.lead_silence_ms,
                Clip.trail_silence_ms, Clip.end_energy_db, Clip.duration_s, Clip.cutoff_signal,
                Prediction.target, Prediction.pred, Prediction.agree, Prediction.confidence, Prediction.probs,
                Prediction.oof_probs, Embedding.vector)
         .join(Prediction, (Prediction.clip_id == Clip.id) & (Prediction.run_id == run.id))
         .join(Embedding, (Embedding.clip_id == Clip.id) & (Embedding.run_id == run.id))
         .order_by(Clip.id))
    rows = session.execute(q).all()
    if not rows:
        raise Conflict(f"run {run.id} ({run.name}) has no predictions with embeddings to analyze",
                       detail=f"its status is {run.status!r}", hint=f"run `earmark infer --run {run.id}` first")
    k = len(run.classes)
    cols = list(zip(*rows, strict=True))
    probs = codec.decode_rows(cols[14])
    if probs.shape[1] != k:
        raise Conflict(f"run {run.id}'s probability vectors have {probs.shape[1]} entries for {k} classes",
                       hint=f"re-run `earmark infer --run {run.id}`")
    oof = codec.decode_rows(cols[15], dim=k) if any(b is not None for b in cols[15]) else None
    f32 = np.float32
    return RunData(
        clip_ids=np.asarray(cols[0], dtype=np.int64), paths=list(cols[1]), splits=np.asarray(cols[2]),
        labels=np.asarray(cols[10]), preds=np.asarray(cols[11]), agree=np.asarray(cols[12], dtype=bool),
        confidence=np.asarray(cols[13], dtype=f32), probs=probs, oof=oof, emb=codec.decode_rows(cols[16]),
        hashes=list(cols[3]),
        signal={"rms_dbfs": np.asarray(cols[4], f32), "lead_silence_ms": np.asarray(cols[5], f32),
                "trail_silence_ms": np.asarray(cols[6], f32), "end_energy_db": np.asarray(cols[7], f32)},
        duration_s=np.asarray(cols[8], dtype=f32), cutoff_signal=np.asarray(cols[9], dtype=bool),
    )
