"""``earmark analyze``: run every detector over a run and store per-clip scores and ranked findings.

Detectors (all in ``ml.analysis``): cut-off score (signal stats + model evidence), label issues
(cleanlab on out-of-sample probabilities), error clusters (HDBSCAN), near-duplicates and outliers
(cosine kNN). The run's previous ClipScore rows, Findings and FindingClips are replaced in one
transaction, so a reader sees the old analysis or the new one, never a mix. Cross-split duplicates
are written to the data set's leakage report under ``near_duplicates_across_splits``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.pipeline.common import resolve_run
from app.pipeline.project import N_NEIGHBORS, Progress, _noop, merge_clip_scores, neighbor_lists
from app.store.models import Clip, ClipScore, Dataset, Embedding, Finding, FindingClip, Prediction, Run
from app.store.writes import bulk_insert

log = logging.getLogger(__name__)

HELD_OUT_SPLITS = ("validation", "test")
MAX_LEAKAGE_LISTED = 500
# Signal stats that join the embeddings in the clustering space (see ml.analysis.clusters).
CLUSTER_SIGNAL = ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "rms_dbfs")


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


@dataclass
class AnalyzeSummary:
    """What ``analyze_run`` stored, and how long each part took (seconds)."""

    run_id: int
    n_clips: int
    n_findings: int
    n_cutoff: int
    n_label_issues: int
    n_clusters: int
    n_duplicate_pairs: int
    n_outliers: int
    label_scope: str
    neighbors_reused: bool = False  # the kNN graph came from `earmark project` instead of being recomputed
    timings: dict[str, float] = field(default_factory=dict)


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
    n, k = len(rows), len(run.classes)
    cols = list(zip(*rows, strict=True))
    probs = np.frombuffer(b"".join(cols[14]), dtype="<f4").reshape(n, -1)
    if probs.shape[1] != k:
        raise Conflict(f"run {run.id}'s probability vectors have {probs.shape[1]} entries for {k} classes",
                       hint=f"re-run `earmark infer --run {run.id}`")
    oof = None
    if any(b is not None for b in cols[15]):
        nan_row = np.full(k, np.nan, dtype="<f4").tobytes()
        oof = np.frombuffer(b"".join(b if b is not None else nan_row for b in cols[15]), dtype="<f4").reshape(n, k)
    emb = np.frombuffer(b"".join(cols[16]), dtype="<f4").reshape(n, -1)
    f32 = np.float32
    return RunData(
        clip_ids=np.asarray(cols[0], dtype=np.int64), paths=list(cols[1]), splits=np.asarray(cols[2]),
        labels=np.asarray(cols[10]), preds=np.asarray(cols[11]), agree=np.asarray(cols[12], dtype=bool),
        confidence=np.asarray(cols[13], dtype=f32), probs=probs, oof=oof, emb=np.ascontiguousarray(emb),
        hashes=list(cols[3]),
        signal={"rms_dbfs": np.asarray(cols[4], f32), "lead_silence_ms": np.asarray(cols[5], f32),
                "trail_silence_ms": np.asarray(cols[6], f32), "end_energy_db": np.asarray(cols[7], f32)},
        duration_s=np.asarray(cols[8], dtype=f32), cutoff_signal=np.asarray(cols[9], dtype=bool),
    )


def _stored_graph(session: Session, run_id: int, clip_ids: np.ndarray, k: int):
    """The kNN graph ``earmark project`` stored, as row indices, or None when it is missing or stale."""
    from ml.analysis.neighbors import KnnGraph

    rows = session.execute(select(ClipScore.clip_id, ClipScore.neighbors, ClipScore.neighbor_sims)
                           .where(ClipScore.run_id == run_id)).all()
    if len(rows) != len(clip_ids):
        return None
    pos = {int(c): i for i, c in enumerate(clip_ids.tolist())}
    idx = np.full((len(clip_ids), k), -1, dtype=np.int64)
    sims = np.full((len(clip_ids), k), -1.0, dtype=np.float32)
    for clip_id, nb, ns in rows:
        i = pos.get(int(clip_id))
        if i is None or not nb or not ns or len(nb) < min(k, len(clip_ids) - 1):
            return None
        m = min(k, len(nb))
        try:
            idx[i, :m] = [pos[int(c)] for c in nb[:m]]
        except KeyError:
            return None
        sims[i, :m] = ns[:m]
    return KnnGraph(idx, sims)


def label_inputs(data: RunData, classes: list[str], neighbor_idx: np.ndarray | None = None,
                 train_without_oof: str = "neighbors"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """Rows, given-label indices, out-of-sample probabilities for cleanlab, which of those rows are
    judged by their neighbours' vote (bool, per row), and a summary of what was used.

    Validation and test use the ordinary probabilities; training clips their k-fold out-of-fold
    ones. Training clips without those are, with ``train_without_oof="neighbors"``, judged by the
    labels of their nearest clips in embedding space (a leave-one-out kNN vote, as cleanlab's Datalab
    does when it has features but no probabilities), or with ``"skip"`` left out.
    """
    from ml.analysis.label_issues import neighbor_vote

    if train_without_oof not in ("neighbors", "skip"):
        raise ValueError(f"train_without_oof must be 'neighbors' or 'skip', not {train_without_oof!r}")
    index = {c: i for i, c in enumerate(classes)}
    known = np.array([lab in index for lab in data.labels.tolist()], dtype=bool)
    held = np.isin(data.splits, HELD_OUT_SPLITS) & known
    probs = data.probs.copy()
    train = (data.splits == "train") & known
    if data.oof is not None:
        has_oof = train & ~np.isnan(data.oof).any(axis=1)
        probs[has_oof] = data.oof[has_oof]
    else:
        has_oof = np.zeros_like(train)
    by_vote = train & ~has_oof if (train_without_oof == "neighbors" and neighbor_idx is not None) \
        else np.zeros_like(train)
    if by_vote.any():
        all_y = np.array([index.get(lab, -1) for lab in data.labels.tolist()], dtype=np.int64)
        nb = neighbor_idx[by_vote]
        _, vote = neighbor_vote(np.where(nb >= 0, all_y[np.maximum(nb, 0)], -1), len(classes))
        probs[by_vote] = vote
    use = held | has_oof | by_vote
    rows = np.flatnonzero(use)
    y = np.array([index[lab] for lab in data.labels[rows].tolist()], dtype=np.int64)
    scope = {
        "validation_test_clips": int(held.sum()),
        "train_clips_with_oof": int(has_oof.sum()),
        "train_clips_by_neighbors": int(by_vote.sum()),
        "train_clips_skipped": int((train & ~has_oof & ~by_vote).sum()),
    }
    if scope["train_clips_by_neighbors"]:
        scope["note"] = ("training clips without out-of-fold probabilities were judged by the labels of their "
                         "nearest clips only; train with `earmark train --folds K` to add the model's view")
    elif scope["train_clips_skipped"]:
        scope["note"] = ("training clips without out-of-fold probabilities were not checked; "
                         "train with `earmark train --folds K` to include them")
    return rows, y, probs[rows], by_vote[rows], scope


def analyze_run(session: Session, run_ref: str | int | None, progress: Progress | None = None,
                seed: int = 0, train_without_oof: str = "neighbors") -> AnalyzeSummary:
    """Run every detector on ``run_ref`` and replace its stored analysis. Returns counts and timings.

    ``train_without_oof``: how label issues treat training clips that have no out-of-fold
    probabilities (see ``label_inputs``): "neighbors" (default) or "skip".
    """
    from ml.analysis.clusters import cluster_embeddings
    from ml.analysis.cutoff import CUTOFF_THRESHOLD, cutoff_scores
    from ml.analysis.describe import Evidence, build_findings
    from ml.analysis.label_issues import find_label_issues
    from ml.analysis.neighbors import (
        duplicate_of,
        duplicate_pairs,
        knn_cosine,
        notable_duplicates,
        outlier_scores,
    )

    progress = progress or _noop
    timings: dict[str, float] = {}
    total = 7
    t_all = time.perf_counter()
    run = resolve_run(session, run_ref)
    if run.status != "complete":
        raise Conflict(f"run {run.id} ({run.name}) is {run.status}, not complete",
                       hint=f"wait for it to finish, or run `earmark infer --run {run.id}`")

    def step(name: str, i: int):
        progress(name, i, total)
        return time.perf_counter()

    t = step("loading predictions and embeddings", 0)
    data = load_run_data(session, run)
    n = len(data.clip_ids)
    timings["load"] = time.perf_counter() - t

    t = step("nearest neighbours", 1)
    # The stored lists (10 per clip) are all the detectors need: outliers use 10 neighbours and a
    # duplicate is always its copy's nearest neighbour.
    k = min(N_NEIGHBORS, max(0, n - 1))
    graph = _stored_graph(session, run.id, data.clip_ids, k)
    reused = graph is not None
    if graph is None:
        graph = knn_cosine(data.emb, k=k, seed=seed)
    timings["neighbors"] = time.perf_counter() - t

    t = step("cut-off score", 2)
    cut = cutoff_scores(data.signal["end_energy_db"], data.signal["trail_silence_ms"],
                        data.signal["lead_silence_ms"], data.duration_s, data.cutoff_signal,
                        agree=data.agree, confidence=data.confidence)
    timings["cutoff"] = time.perf_counter() - t

    t = step("label issues (cleanlab)", 3)
    rows, y, probs, voted, scope = label_inputs(data, list(run.classes), graph.idx, train_without_oof)
    classes = np.asarray(run.classes)
    quality = np.full(n, np.nan, dtype=np.float32)
    issue = np.zeros(n, dtype=bool)
    suggested = np.asarray(data.preds, dtype=object).copy()
    if rows.size:
        # Label index of each judged clip's nearest clips (any split; -1 for labels outside the classes).
        index = {c: i for i, c in enumerate(run.classes)}
        all_y = np.array([index.get(lab, -1) for lab in data.labels.tolist()], dtype=np.int64)
        nb_idx = graph.idx[rows]
        nb_labels = np.where(nb_idx >= 0, all_y[np.maximum(nb_idx, 0)], -1)
        # Confident learning's per-class thresholds come from the probabilities it is given, so the
        # model's and the neighbours' (more peaked) probabilities are judged apart.
        for part in (~voted, voted):
            if part.any():
                li = find_label_issues(y[part], probs[part], seed=seed, neighbor_labels=nb_labels[part])
                quality[rows[part]], issue[rows[part]] = li.quality, li.issue
                suggested[rows[part]] = classes[li.suggested]
    timings["label_issues"] = time.perf_counter() - t

    t = step("error clusters (HDBSCAN)", 4)
    signal = np.stack([data.signal[c] for c in CLUSTER_SIGNAL], axis=1)  # (n, 4)
    clusters = cluster_embeddings(data.emb, seed=seed, signal=signal)
    timings["clusters"] = time.perf_counter() - t

    t = step("duplicates and outliers", 5)
    out_score, out_z = outlier_scores(graph)
    pairs = notable_duplicates(duplicate_pairs(graph, data.hashes), data.splits, data.labels)
    dup_of = duplicate_of(n, pairs)
    timings["duplicates_outliers"] = time.perf_counter() - t

    t = step("writing", 6)
    nb_ids, nb_sims = neighbor_lists(data.clip_ids, graph.idx, graph.sims)
    updates = {}
    for i, cid in enumerate(data.clip_ids.tolist()):
        updates[cid] = dict(
            cutoff_score=float(cut.score[i]),
            label_quality=None if np.isnan(quality[i]) else float(quality[i]),
            suggested_label=str(suggested[i]), label_issue=bool(issue[i]),
            outlier_score=float(out_score[i]), cluster=int(clusters[i]),
            duplicate_of=int(data.clip_ids[dup_of[i]]) if dup_of[i] >= 0 else None,
            neighbors=nb_ids[i], neighbor_sims=nb_sims[i],
        )
    ev = Evidence(labels=data.labels, preds=data.preds, agree=data.agree, splits=data.splits, signal=data.signal,
                  cutoff_score=cut.score, cutoff_threshold=CUTOFF_THRESHOLD, label_issue=issue,
                  label_quality=quality, suggested=np.asarray(suggested, dtype=str), clusters=clusters,
                  outlier_score=out_score, outlier_z=out_z, duplicate_pairs=pairs, label_scope=scope)
    findings = build_findings(ev)

    old = select(Finding.id).where(Finding.run_id == run.id)
    session.execute(delete(FindingClip).where(FindingClip.finding_id.in_(old)))
    session.execute(delete(Finding).where(Finding.run_id == run.id))
    merge_clip_scores(session, run.id, updates, replace=True)
    for rank, f in enumerate(findings, start=1):
        row = Finding(run_id=run.id, kind=f.kind, rank=rank, score=float(f.score), title=f.title,
                      description=f.description, reason=f.reason, suggested_label=f.suggested_label,
                      n_clips=len(f.members), stats=f.stats)
        session.add(row)
        session.flush()
        bulk_insert(session, FindingClip, [
            dict(finding_id=row.id, clip_id=int(data.clip_ids[i]), score=float(s), suggested_label=lab)
            for i, s, lab in zip(f.members.tolist(), f.clip_scores.tolist(), f.clip_labels, strict=True)
        ])
    _write_leakage(session, run, data, pairs)
    session.commit()
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    progress("done", total, total)
    return AnalyzeSummary(
        run_id=run.id, n_clips=n, n_findings=len(findings), n_cutoff=int((cut.score >= CUTOFF_THRESHOLD).sum()),
        n_label_issues=int(issue.sum()), n_clusters=int(len(set(clusters.tolist()) - {-1})),
        n_duplicate_pairs=len(pairs), n_outliers=sum(1 for f in findings if f.kind == "outlier"),
        label_scope=_scope_words(scope), neighbors_reused=reused, timings={k: round(v, 2) for k, v in timings.items()},
    )


def _scope_words(scope: dict) -> str:
    words = f"{scope['validation_test_clips']:,} validation/test clips"
    if scope["train_clips_with_oof"]:
        words += f" and {scope['train_clips_with_oof']:,} training clips (out-of-fold)"
    if scope.get("train_clips_by_neighbors"):
        words += f" and {scope['train_clips_by_neighbors']:,} training clips by their neighbours' labels (no --folds)"
    if scope["train_clips_skipped"]:
        words += f"; {scope['train_clips_skipped']:,} training clips skipped (no --folds)"
    return words


def _write_leakage(session: Session, run: Run, data: RunData, pairs) -> None:
    """Record duplicates that cross splits in the data set's leakage report (replacing the key)."""
    ds = session.get(Dataset, run.dataset_id)
    if ds is None:
        return
    across = []
    for a, b, sim, same in pairs:
        if data.splits[a] != data.splits[b]:
            across.append({"a": data.paths[a], "b": data.paths[b], "a_split": str(data.splits[a]),
                           "b_split": str(data.splits[b]), "cosine": round(float(sim), 4),
                           "same_audio": bool(same), "run_id": run.id})
    leakage = dict(ds.leakage or {})
    leakage["near_duplicates_across_splits"] = across[:MAX_LEAKAGE_LISTED]
    leakage["near_duplicates_across_splits_count"] = len(across)
    ds.leakage = leakage


# ------------------------------------------------------------------------------ flagging findings


def top_finding(session: Session, run_ref: str | int | None, kind: str) -> Finding:
    """The best-ranked finding of ``kind`` in a run (``cutoff``, ``label``, ``cluster``, ...)."""
    from app.errors import NotFound

    run = resolve_run(session, run_ref)
    f = session.scalars(select(Finding).where(Finding.run_id == run.id, Finding.kind == kind)
                        .order_by(Finding.rank)).first()
    if f is None:
        kinds = sorted(set(session.scalars(select(Finding.kind).where(Finding.run_id == run.id))))
        raise NotFound(f"run {run.id} has no {kind!r} finding",
                       detail="its findings: " + (", ".join(kinds) or "none (not analyzed yet?)"),
                       hint=f"run `earmark analyze --run {run.id}`, then pick a finding id from the Issues page")
    return f


def get_finding(session: Session, finding_id: int) -> Finding:
    """A finding by id, or a NotFound that says where to look."""
    from app.errors import NotFound

    f = session.get(Finding, int(finding_id))
    if f is None:
        raise NotFound(f"no finding {finding_id}", hint="list a run's findings with GET /api/findings?run=R "
                       "or on the Issues page; they are replaced by every `earmark analyze`")
    return f


def flag_finding(session: Session, finding_id: int, clip_ids: list[int] | None = None,
                 author: str = "auto") -> int:
    """Flag a finding's clips (all, or only ``clip_ids`` among them) with its reason and suggested label.

    Each clip gets the finding's reason ('other' when the finding suggests none) and its own
    suggested label (or the finding's); a 'mislabeled' clip without any suggestion is skipped, since
    such a flag needs the correct label. Returns the number of clips flagged. Commits.
    """
    from app.errors import EarmarkError
    from app.store.writes import upsert_flag

    f = get_finding(session, finding_id)
    rows = session.execute(select(FindingClip.clip_id, FindingClip.suggested_label)
                           .where(FindingClip.finding_id == f.id).order_by(FindingClip.clip_id)).all()
    if clip_ids is not None:
        wanted = {int(c) for c in clip_ids}
        members = {r[0] for r in rows}
        unknown = sorted(wanted - members)
        if unknown:
            raise EarmarkError(f"{len(unknown)} of the selected clips are not in finding {f.id}",
                               detail="not members: " + ", ".join(map(str, unknown[:20])),
                               hint="select clips from the finding's own clip list", status=422)
        rows = [r for r in rows if r[0] in wanted]
    reason = f.reason or "other"
    note = f"auto: {f.title}"[:500]
    n = 0
    for clip_id, label in rows:
        corrected = label or f.suggested_label
        if reason == "mislabeled" and not corrected:
            continue
        upsert_flag(session, clip_id, reason, corrected_label=corrected if reason == "mislabeled" else None,
                    note=note, author=author or "auto", finding_id=f.id)
        n += 1
    session.commit()
    return n
