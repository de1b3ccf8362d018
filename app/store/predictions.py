"""Predictions and embeddings: what ``earmark infer`` writes, and how the rest reads them back.

Probability vectors and embeddings are float32 BLOBs; they go through ``app.store.codec`` both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.store import codec
from app.store.models import Clip, Embedding, Prediction, Run
from app.store.writes import bulk_insert, insert_tuples

PREDICTION_COLUMNS = ("run_id", "clip_id", "target", "pred", "confidence", "loss", "agree", "probs", "oof_probs")


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
    has_probs: bool = True  # False for a reduced import (probs is then all NaN)
    has_embeddings: bool = True  # False for an import without embeddings (emb is then (n, 0))


@dataclass
class RunOutputs:
    """A run's predictions and embeddings as columns, one row per clip: what an import writes and
    ``export-run`` reads. ``None`` marks a part the run does not have (a reduced import)."""

    clip_ids: np.ndarray  # (n,) int64
    target: np.ndarray  # (n,) object str, the clip's label in the run's classes
    pred: np.ndarray  # (n,) object str
    confidence: np.ndarray  # (n,) float32
    agree: np.ndarray  # (n,) bool
    loss: np.ndarray | None = None  # (n,) float32
    probs: np.ndarray | None = None  # (n, k) float32
    oof_probs: np.ndarray | None = None  # (n, k) float32, NaN rows where a clip has none
    embeddings: np.ndarray | None = None  # (n, d) float32
    paths: list[str] | None = None  # (n,) the clips' paths (when read back)


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


def write_outputs(session: Session, run_id: int, out: RunOutputs,
                  progress: Callable[[int, int], None] | None = None, chunk: int = 20_000) -> int:
    """Insert a new run's Prediction (and Embedding) rows from columns, ``chunk`` clips at a time,
    calling ``progress(done, total)`` after each; returns the row count.

    Vectors go through ``codec.encode_rows``. Caller commits: an import writes its Run and these rows
    in one transaction.
    """
    n = len(out.clip_ids)
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        m = sl.stop - sl.start
        none = [None] * m
        probs = codec.encode_rows(out.probs[sl]) if out.probs is not None else none
        oof = codec.encode_rows(out.oof_probs[sl]) if out.oof_probs is not None else none
        loss = np.asarray(out.loss[sl], np.float64).tolist() if out.loss is not None else none
        ids, agree = out.clip_ids[sl].tolist(), np.asarray(out.agree[sl], bool).tolist()
        conf = np.asarray(out.confidence[sl], np.float64).tolist()
        target, pred = [str(t) for t in out.target[sl]], [str(p) for p in out.pred[sl]]
        insert_tuples(session, Prediction, PREDICTION_COLUMNS,
                      list(zip([run_id] * m, ids, target, pred, conf, loss, agree, probs, oof, strict=True)))
        if out.embeddings is not None:
            vectors = codec.encode_rows(out.embeddings[sl])
            insert_tuples(session, Embedding, ("run_id", "clip_id", "vector"),
                          list(zip([run_id] * m, ids, vectors, strict=True)))
        if progress:
            progress(sl.stop, n)
    return n


def read_outputs(session: Session, run: Run) -> RunOutputs:
    """The run's predictions, embeddings and clip paths as columns, in clip id order (``export-run``)."""
    rows = session.execute(
        select(Prediction.clip_id, Clip.path, Prediction.target, Prediction.pred, Prediction.confidence,
               Prediction.agree, Prediction.loss, Prediction.probs, Prediction.oof_probs, Embedding.vector)
        .join(Clip, Clip.id == Prediction.clip_id)
        .outerjoin(Embedding, (Embedding.clip_id == Prediction.clip_id) & (Embedding.run_id == run.id))
        .where(Prediction.run_id == run.id).order_by(Prediction.clip_id)).all()
    if not rows:
        raise Conflict(f"run {run.id} ({run.name}) has no predictions", detail=f"its status is {run.status!r}",
                       hint=f"run `earmark infer --run {run.id}` first")
    cols = list(zip(*rows, strict=True))
    k = len(run.classes or [])

    def vectors(blobs, dim=None):
        return codec.decode_rows(blobs, dim) if any(b is not None for b in blobs) else None

    losses = cols[6]
    return RunOutputs(
        clip_ids=np.asarray(cols[0], dtype=np.int64), paths=list(cols[1]), target=np.asarray(cols[2], dtype=object),
        pred=np.asarray(cols[3], dtype=object), confidence=np.asarray(cols[4], dtype=np.float32),
        agree=np.asarray(cols[5], dtype=bool),
        loss=None if all(v is None for v in losses) else np.array(losses, dtype=np.float32),
        probs=vectors(cols[7], k), oof_probs=vectors(cols[8], k), embeddings=vectors(cols[9]))


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
    """Read the run's predictions, embeddings and clip stats into arrays (clip id order).

    A reduced import reads with ``has_probs`` False (NaN probabilities) and, without embeddings,
    ``has_embeddings`` False; the detectors that need them skip and say so."""
    q = (select(Clip.id, Clip.path, Clip.split, Clip.content_hash, Clip.rms_dbfs, Clip.lead_silence_ms,
                Clip.trail_silence_ms, Clip.end_energy_db, Clip.duration_s, Clip.cutoff_signal,
                Prediction.target, Prediction.pred, Prediction.agree, Prediction.confidence, Prediction.probs,
                Prediction.oof_probs, Embedding.vector)
         .join(Prediction, (Prediction.clip_id == Clip.id) & (Prediction.run_id == run.id))
         .outerjoin(Embedding, (Embedding.clip_id == Clip.id) & (Embedding.run_id == run.id))
         .order_by(Clip.id))
    rows = session.execute(q).all()
    if not rows:
        raise Conflict(f"run {run.id} ({run.name}) has no predictions to analyze",
                       detail=f"its status is {run.status!r}", hint=f"run `earmark infer --run {run.id}` first")
    k = len(run.classes)
    cols = list(zip(*rows, strict=True))
    has_probs = any(b is not None for b in cols[14])
    probs = codec.decode_rows(cols[14], dim=k)
    if probs.shape[1] != k:
        raise Conflict(f"run {run.id}'s probability vectors have {probs.shape[1]} entries for {k} classes",
                       hint=f"re-run `earmark infer --run {run.id}`")
    oof = codec.decode_rows(cols[15], dim=k) if any(b is not None for b in cols[15]) else None
    f32 = np.float32
    return RunData(
        clip_ids=np.asarray(cols[0], dtype=np.int64), paths=list(cols[1]), splits=np.asarray(cols[2]),
        labels=np.asarray(cols[10]), preds=np.asarray(cols[11]), agree=np.asarray(cols[12], dtype=bool),
        confidence=np.asarray(cols[13], dtype=f32), probs=probs, oof=oof, emb=_embedding_rows(cols[16]),
        hashes=list(cols[3]),
        signal={"rms_dbfs": np.asarray(cols[4], f32), "lead_silence_ms": np.asarray(cols[5], f32),
                "trail_silence_ms": np.asarray(cols[6], f32), "end_energy_db": np.asarray(cols[7], f32)},
        duration_s=np.asarray(cols[8], dtype=f32), cutoff_signal=np.asarray(cols[9], dtype=bool),
        has_probs=has_probs, has_embeddings=any(b is not None for b in cols[16]),
    )


def _embedding_rows(blobs) -> np.ndarray:
    """(n, d) embeddings; (n, 0) when the run has none (an import without them)."""
    if all(b is None for b in blobs):
        return np.zeros((len(blobs), 0), dtype=np.float32)
    if any(b is None for b in blobs):
        raise Conflict("some of the run's clips have a prediction but no embedding",
                       hint="import the run again with an embedding for every row, or none")
    return codec.decode_rows(blobs)
