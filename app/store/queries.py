"""What the pages read, shared by the web routes.

Per-clip questions about one run (filter by split/label/prediction/agreement/ranges, sort by loss,
confidence or cut-off score, confusion counts, the embedding cloud) are answered from a
``RunFrame``: the run's per-clip columns loaded once with one SQL query into numpy arrays and kept
in memory keyed by run id (about 40 bytes a clip: 4 MB at 105k). Filtering and sorting 105k rows
in numpy takes a few milliseconds on one core, on SQLite and PostgreSQL alike; the rows of the
page shown are then read from SQL by primary key. Flags change all the time, so they are never
cached: they are read fresh (the flags table is small and indexed by clip).

A frame is rebuilt when the run's status changes, when its clip scores or projection first appear, or
when ``earmark analyze`` writes new findings for it (see ``_version``); that check is a few index
lookups and runs at most every ``RECHECK_S`` seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.store.models import (
    FLAG_REASONS,
    Clip,
    ClipScore,
    Dataset,
    Embedding,
    Finding,
    FindingClip,
    Flag,
    Prediction,
    Projection,
    Reject,
    Run,
)

SPLITS = ("train", "validation", "test")
SORTS = ("loss", "-loss", "confidence", "-confidence", "cutoff", "-cutoff", "id")
RECHECK_S = 5.0
_lock = threading.Lock()


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
    checked_at: float = 0.0
    extras: dict = field(default_factory=dict)  # lazily built: sort orders, cloud payload, embeddings

    def order(self, sort: str) -> np.ndarray:
        """Row indices in ``sort`` order (cached); ``loss`` means highest loss first."""
        if sort not in self.extras:
            keys = {"loss": -self.loss, "-loss": self.loss, "confidence": self.confidence,
                    "-confidence": -self.confidence, "cutoff": -self.cutoff, "-cutoff": self.cutoff,
                    "id": self.clip_ids}
            self.extras[sort] = np.argsort(keys[sort], kind="stable")
        return self.extras[sort]

    def index_of(self, clip_id: int) -> int | None:
        """Row index of ``clip_id`` or None."""
        i = int(np.searchsorted(self.clip_ids, clip_id))
        return i if i < len(self.clip_ids) and self.clip_ids[i] == clip_id else None


def _version(session: Session, run: Run) -> tuple:
    """A cheap fingerprint of what the frame is built from: index lookups only, no counts.

    It changes when the run's status changes, when predictions / scores / a projection first appear,
    and when ``earmark analyze`` writes a new set of findings (new ids) for the run.
    """
    def exists(model) -> bool:
        return session.scalar(select(model.clip_id).where(model.run_id == run.id).limit(1)) is not None

    last_finding = session.scalar(select(func.max(Finding.id)).where(Finding.run_id == run.id))
    return (run.status, exists(Prediction), exists(ClipScore), exists(Projection), last_finding)


def _load_frame(session: Session, run: Run, version: tuple) -> RunFrame:
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
        checked_at=time.monotonic(),
    )


def run_frame(session: Session, run: Run, cache: dict) -> RunFrame:
    """The cached frame of ``run`` (loaded or rebuilt when stale). ``cache`` is app.state.cache."""
    frames = cache.setdefault("frames", {})
    frame = frames.get(run.id)
    now = time.monotonic()
    if frame is not None and now - frame.checked_at < RECHECK_S:
        return frame
    version = _version(session, run)
    if frame is not None and frame.version == version:
        frame.checked_at = now
        return frame
    with _lock:  # one loader at a time; a second request waits and reuses the result
        frame = frames.get(run.id)
        if frame is None or frame.version != version:
            frame = _load_frame(session, run, version)
            frames[run.id] = frame
    return frame


# ---- flags ---------------------------------------------------------------------------------------

def flag_map(session: Session, dataset_id: int) -> dict[int, str]:
    """clip id -> flag reason for every flagged clip of a data set (fresh, never cached)."""
    rows = session.execute(select(Flag.clip_id, Flag.reason).join(Clip, Clip.id == Flag.clip_id)
                           .where(Clip.dataset_id == dataset_id)).all()
    return {cid: reason for cid, reason in rows}


def flags_for(session: Session, clip_ids: list[int]) -> dict[int, Flag]:
    """The Flag rows of some clips, by clip id."""
    if not clip_ids:
        return {}
    return {f.clip_id: f for f in session.scalars(select(Flag).where(Flag.clip_id.in_(clip_ids)))}


def flag_dict(flag: Flag | None) -> dict | None:
    """A flag as the API returns it."""
    if flag is None:
        return None
    return dict(clip_id=flag.clip_id, reason=flag.reason, corrected_label=flag.corrected_label, note=flag.note,
                author=flag.author, finding_id=flag.finding_id,
                created_at=flag.created_at.isoformat() if flag.created_at else None,
                updated_at=flag.updated_at.isoformat() if flag.updated_at else None)


def finding_clip_ids(session: Session, finding_id: int) -> np.ndarray:
    """Clip ids of one finding (int64, sorted)."""
    ids = session.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == finding_id)).all()
    return np.array(sorted(ids), dtype=np.int64)


# ---- the clip list -------------------------------------------------------------------------------

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


_ROW_COLUMNS = (Clip.id, Clip.path, Clip.label, Clip.word, Clip.split, Clip.speaker, Clip.duration_s,
                Clip.cutoff_signal, Prediction.target, Prediction.pred, Prediction.confidence, Prediction.loss,
                Prediction.agree, ClipScore.cutoff_score, ClipScore.suggested_label)


def clip_rows(session: Session, run: Run, clip_ids: list[int]) -> list[dict]:
    """Display rows (clip, prediction, score, flag) for ``clip_ids``, in that order (columns only, no blobs)."""
    if not clip_ids:
        return []
    stmt = (
        select(*_ROW_COLUMNS)
        .outerjoin(Prediction, and_(Prediction.clip_id == Clip.id, Prediction.run_id == run.id))
        .outerjoin(ClipScore, and_(ClipScore.clip_id == Clip.id, ClipScore.run_id == run.id))
        .where(Clip.id.in_(clip_ids))
    )
    found = {r.id: r for r in session.execute(stmt).all()}
    flags = flags_for(session, clip_ids)
    out = []
    for cid in clip_ids:
        r = found.get(cid)
        if r is None:
            continue
        has_score = r.cutoff_score is not None
        out.append(dict(
            id=r.id, path=r.path, label=r.label, word=r.word, split=r.split, speaker=r.speaker,
            duration_s=r.duration_s, target=r.target, pred=r.pred, confidence=r.confidence, loss=r.loss,
            agree=r.agree, cutoff_score=r.cutoff_score if has_score else (1.0 if r.cutoff_signal else 0.0),
            cutoff_source="analysis" if has_score else "signal", suggested_label=r.suggested_label,
            flag=flag_dict(flags.get(cid)),
        ))
    return out


# ---- overview ------------------------------------------------------------------------------------

def datasets(session: Session) -> list[Dataset]:
    """Ready data sets, newest first."""
    return list(session.scalars(select(Dataset).where(Dataset.status == "ready").order_by(Dataset.id.desc())))


def class_distribution(session: Session, dataset: Dataset, cache: dict) -> dict[str, dict[str, int]]:
    """split -> label -> clip count (cached per data set version)."""
    key = ("dist", dataset.id, dataset.n_clips, str(dataset.updated_at))
    if key not in cache:
        rows = session.execute(select(Clip.split, Clip.label, func.count()).where(Clip.dataset_id == dataset.id)
                               .group_by(Clip.split, Clip.label)).all()
        dist: dict[str, dict[str, int]] = {}
        for split, label, n in rows:
            dist.setdefault(split, {})[label] = int(n)
        cache[key] = {s: dict(sorted(dist[s].items())) for s in SPLITS if s in dist} | {
            s: dict(sorted(v.items())) for s, v in dist.items() if s not in SPLITS}
    return cache[key]


def under_represented(counts: dict[str, int], ratio: float = 0.5) -> list[str]:
    """Labels with fewer than ``ratio`` x the median count of their split."""
    if not counts:
        return []
    median = float(np.median(list(counts.values())))
    return [label for label, n in counts.items() if n < ratio * median]


def rejects(session: Session, dataset_id: int, limit: int = 200) -> list[Reject]:
    """The first ``limit`` ingest rejects of a data set."""
    return list(session.scalars(select(Reject).where(Reject.dataset_id == dataset_id).order_by(Reject.id)
                                .limit(limit)))


def runs_of(session: Session, dataset_id: int | None = None) -> list[Run]:
    """Runs, newest first (optionally of one data set)."""
    q = select(Run).order_by(Run.id.desc())
    if dataset_id is not None:
        q = q.where(Run.dataset_id == dataset_id)
    return list(session.scalars(q))


# ---- confusion -----------------------------------------------------------------------------------

def confusion(frame: RunFrame, classes: list[str], split: str | None) -> tuple[list[str], np.ndarray]:
    """(labels, counts) with rows = target, columns = prediction, over ``split`` (None = all)."""
    key = ("confusion", split, tuple(classes))
    if key in frame.extras:
        return frame.extras[key]
    mask = np.ones(len(frame.clip_ids), bool) if split is None else frame.split == SPLITS.index(split)
    k = len(frame.vocab)
    pairs = frame.target[mask].astype(np.int64) * k + frame.pred[mask].astype(np.int64)
    cm = np.bincount(pairs, minlength=k * k).reshape(k, k)
    # keep the run's classes plus any target that occurs (e.g. a relabelled class)
    keep = [i for i, name in enumerate(frame.vocab) if name in classes or cm[i].sum() or cm[:, i].sum()]
    frame.extras[key] = ([frame.vocab[i] for i in keep], cm[np.ix_(keep, keep)])
    return frame.extras[key]


# ---- embeddings and neighbours --------------------------------------------------------------------

def embedding_matrix(session: Session, frame: RunFrame) -> tuple[np.ndarray, np.ndarray]:
    """(clip_ids int64 (N,), unit-norm float32 (N, D)) of the run, cached on the frame."""
    if "emb" not in frame.extras:
        rows = session.execute(select(Embedding.clip_id, Embedding.vector).where(Embedding.run_id == frame.run_id)
                               .order_by(Embedding.clip_id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1) if rows \
            else np.zeros((0, 1), np.float32)
        mat = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
        frame.extras["emb"] = (ids, mat.astype(np.float32))
    return frame.extras["emb"]


def nearest(session: Session, frame: RunFrame, clip_id: int, k: int = 10) -> list[tuple[int, float]]:
    """The ``k`` nearest clips by cosine similarity: (clip id, similarity), best first."""
    score = session.get(ClipScore, (frame.run_id, clip_id))
    if score is not None and score.neighbors:
        sims = score.neighbor_sims or [None] * len(score.neighbors)
        return [(int(c), float(s) if s is not None else float("nan"))
                for c, s in zip(score.neighbors[:k], sims[:k], strict=False)]
    memo = frame.extras.setdefault("nn", {})
    if (clip_id, k) in memo:
        return memo[(clip_id, k)]
    ids, mat = embedding_matrix(session, frame)
    i = int(np.searchsorted(ids, clip_id))
    if i >= len(ids) or ids[i] != clip_id:
        return []
    sims = mat @ mat[i]  # (N,)
    sims[i] = -np.inf
    top = np.argpartition(-sims, min(k, len(sims) - 1))[:k] if len(sims) > k else np.arange(len(sims))
    top = top[np.argsort(-sims[top])]
    memo[(clip_id, k)] = [(int(ids[j]), float(sims[j])) for j in top if np.isfinite(sims[j])]
    return memo[(clip_id, k)]


def cloud_payload(frame: RunFrame, flags: dict[int, str]) -> tuple[dict, bytes]:
    """(legend JSON, binary columns) of every projected clip; see ``CLOUD_LAYOUT``.

    Layout, little-endian, N points: clip_id uint32[N] | x uint16[N] | y uint16[N] | target, pred,
    split, agree, confidence, loss, cutoff, flag: uint8[N] each (16 bytes a point: 1.7 MB at 105k).
    x and y are quantised over their range (``x = x_min + q / 65535 * (x_max - x_min)``), confidence and
    cut-off over [0, 1], loss over [0, loss_max]; flag is 0 for none, else 1 + index in FLAG_REASONS.
    """
    if "cloud" not in frame.extras:
        ok = np.isfinite(frame.x) & np.isfinite(frame.y)
        idx = np.nonzero(ok)[0]
        x, y = frame.x[idx], frame.y[idx]
        lo = [float(x.min()) if len(x) else 0.0, float(y.min()) if len(y) else 0.0]
        hi = [float(x.max()) if len(x) else 1.0, float(y.max()) if len(y) else 1.0]

        def q16(v, a, b):
            return np.round((v - a) / max(b - a, 1e-9) * 65535).astype("<u2")

        loss_max = float(np.percentile(frame.loss[idx], 99.5)) if len(idx) else 1.0
        loss_max = max(loss_max, 1e-6)
        wide = len(frame.vocab) > 255
        code_t = "<u2" if wide else "u1"
        parts = [frame.clip_ids[idx].astype("<u4"), q16(x, lo[0], hi[0]), q16(y, lo[1], hi[1]),
                 frame.target[idx].astype(code_t), frame.pred[idx].astype(code_t), frame.split[idx].astype("u1"),
                 frame.agree[idx].astype("u1"), np.round(np.clip(frame.confidence[idx], 0, 1) * 255).astype("u1"),
                 np.round(np.clip(frame.loss[idx] / loss_max, 0, 1) * 255).astype("u1"),
                 np.round(np.clip(frame.cutoff[idx], 0, 1) * 255).astype("u1")]
        columns, offset = [], 0
        names = ["clip_id", "x", "y", "target", "pred", "split", "agree", "confidence", "loss", "cutoff"]
        for name, arr in zip(names, parts, strict=True):
            columns.append(dict(name=name, dtype=arr.dtype.str.lstrip("<|"), offset=offset))
            offset += arr.nbytes
        columns.append(dict(name="flag", dtype="u1", offset=offset))
        meta = dict(run_id=frame.run_id, n=int(len(idx)), n_unprojected=int(len(frame.clip_ids) - len(idx)),
                    vocab=frame.vocab, splits=list(SPLITS), flag_reasons=list(FLAG_REASONS),
                    x_range=[lo[0], hi[0]], y_range=[lo[1], hi[1]], loss_max=loss_max,
                    has_scores=frame.has_scores, columns=columns)
        frame.extras["cloud"] = (meta, b"".join(p.tobytes() for p in parts), frame.clip_ids[idx])
    meta, body, ids = frame.extras["cloud"]
    flag_codes = np.zeros(len(ids), dtype="u1")
    if flags:
        fid = np.fromiter(flags.keys(), dtype=np.int64, count=len(flags))
        code = np.array([1 + FLAG_REASONS.index(r) if r in FLAG_REASONS else len(FLAG_REASONS) + 1
                         for r in flags.values()], dtype="u1")
        order = np.argsort(fid)
        fid, code = fid[order], code[order]
        pos = np.searchsorted(fid, ids)
        pos_ok = pos < len(fid)
        hit = np.zeros(len(ids), bool)
        hit[pos_ok] = fid[pos[pos_ok]] == ids[pos_ok]
        flag_codes[hit] = code[pos[hit]]
    return meta, body + flag_codes.tobytes()
