"""A run's per-clip columns in memory (``RunFrame``): what the clip list, the confusion matrix and
the cloud are computed from.

The run's columns are loaded with one SQL query into numpy arrays (about 40 bytes a clip: 4 MB at
105k). Filtering and sorting 105k rows in numpy takes a few milliseconds on one core, on SQLite and
PostgreSQL alike; the rows of the page shown are then read from SQL by primary key. ``RunCache``
(``app.store.cache``) keeps one frame per run and decides when it is stale (``frame_version``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from app.store.findings import last_finding_id
from app.store.models import Clip, ClipScore, Prediction, Projection, Run

SPLITS = ("train", "validation", "test")
SORTS = ("loss", "-loss", "confidence", "-confidence", "cutoff", "-cutoff", "id")


@dataclass
class RunFrame:
    """Columns of one run, one entry per predicted clip, ordered by clip id."""

    run_id: int
    version: tuple
    vocab: list[str]  # label / prediction codes -> class names (run classes first, then other targets)
    clip_ids: np.ndarray  # int64 (N,)
    split: np.ndarray  # uint8 (N,), index into SPLITS
    target: np.ndarray  # uint16 (N,), index into vocab
    pred: np.ndarray  # uint16 (N,)
    agree: np.ndarray  # bool (N,)
    confidence: np.ndarray  # float32 (N,)
    loss: np.ndarray  # float32 (N,)
    cutoff: np.ndarray  # float32 (N,): ClipScore.cutoff_score, else 1.0/0.0 from the clip's signal
    has_scores: bool
    x: np.ndarray  # float32 (N,), NaN without a projection
    y: np.ndarray
    orders: dict[str, np.ndarray] = field(default_factory=dict)  # sort -> row order, built on first use
    confusions: dict[tuple, tuple[list[str], np.ndarray]] = field(default_factory=dict)

    def order(self, sort: str) -> np.ndarray:
        """Row indices in ``sort`` order (cached); ``loss`` means highest loss first."""
        if sort not in self.orders:
            keys = {"loss": -self.loss, "-loss": self.loss, "confidence": self.confidence,
                    "-confidence": -self.confidence, "cutoff": -self.cutoff, "-cutoff": self.cutoff,
                    "id": self.clip_ids}
            self.orders[sort] = np.argsort(keys[sort], kind="stable")
        return self.orders[sort]

    def index_of(self, clip_id: int) -> int | None:
        """Row index of ``clip_id`` or None."""
        i = int(np.searchsorted(self.clip_ids, clip_id))
        return i if i < len(self.clip_ids) and self.clip_ids[i] == clip_id else None

    def confusion(self, classes: list[str], split: str | None) -> tuple[list[str], np.ndarray]:
        """(labels, counts) with rows = target, columns = prediction, over ``split`` (None = all); cached."""
        key = (split, tuple(classes))
        if key not in self.confusions:
            mask = np.ones(len(self.clip_ids), bool) if split is None else self.split == SPLITS.index(split)
            k = len(self.vocab)
            pairs = self.target[mask].astype(np.int64) * k + self.pred[mask].astype(np.int64)
            cm = np.bincount(pairs, minlength=k * k).reshape(k, k)
            # keep the run's classes plus any target that occurs (e.g. a relabelled class)
            keep = [i for i, name in enumerate(self.vocab) if name in classes or cm[i].sum() or cm[:, i].sum()]
            self.confusions[key] = ([self.vocab[i] for i in keep], cm[np.ix_(keep, keep)])
        return self.confusions[key]


def frame_version(session: Session, run: Run) -> tuple:
    """A cheap fingerprint of what the frame is built from: index lookups only, no counts.

    It changes when the run's status changes, when predictions / scores / a projection first appear,
    and when ``earmark analyze`` writes a new set of findings (new ids) for the run.
    """
    def exists(model) -> bool:
        return session.scalar(select(model.clip_id).where(model.run_id == run.id).limit(1)) is not None

    return (run.status, exists(Prediction), exists(ClipScore), exists(Projection), last_finding_id(session, run.id))


def load_frame(session: Session, run: Run, version: tuple) -> RunFrame:
    """Read the run's per-clip columns with one query."""
    stmt = (
        select(Prediction.clip_id, Clip.split, Prediction.target, Prediction.pred, Prediction.agree,
               Prediction.confidence, Prediction.loss, ClipScore.cutoff_score, Clip.cutoff_signal,
               Projection.x, Projection.y)
        .join(Clip, Clip.id == Prediction.clip_id)
        .outerjoin(ClipScore, and_(ClipScore.run_id == Prediction.run_id, ClipScore.clip_id == Prediction.clip_id))
        .outerjoin(Projection, and_(Projection.run_id == Prediction.run_id, Projection.clip_id == Prediction.clip_id))
        .where(Prediction.run_id == run.id)
        .order_by(Prediction.clip_id)
    )
    rows = session.execute(stmt).all()
    vocab = list(run.classes or [])
    codes = {c: i for i, c in enumerate(vocab)}

    def code(name: str) -> int:
        if name not in codes:
            codes[name] = len(vocab)
            vocab.append(name)
        return codes[name]

    n = len(rows)
    split_code = {s: i for i, s in enumerate(SPLITS)}
    cols = list(zip(*rows, strict=True)) if rows else [()] * 11
    cutoff = np.array([s if s is not None else (1.0 if sig else 0.0) for s, sig in zip(cols[7], cols[8], strict=True)],
                      dtype=np.float32)
    nan = float("nan")
    return RunFrame(
        run_id=run.id, version=version, vocab=vocab,
        clip_ids=np.array(cols[0], dtype=np.int64),
        split=np.array([split_code.get(s, 0) for s in cols[1]], dtype=np.uint8),
        target=np.array([code(t) for t in cols[2]], dtype=np.uint16),
        pred=np.array([code(p) for p in cols[3]], dtype=np.uint16),
        agree=np.array(cols[4], dtype=bool),
        confidence=np.array(cols[5], dtype=np.float32),
        loss=np.array(cols[6], dtype=np.float32),
        cutoff=cutoff if n else np.zeros(0, np.float32),
        has_scores=any(s is not None for s in cols[7]),
        x=np.array([nan if v is None else v for v in cols[9]], dtype=np.float32),
        y=np.array([nan if v is None else v for v in cols[10]], dtype=np.float32),
    )
