"""``earmark analyze``: run every detector over a run and store per-clip scores and ranked findings.

Detectors (all in ``ml.analysis``): cut-off score (signal stats + model evidence), label issues
(cleanlab on out-of-sample probabilities), error clusters (HDBSCAN), near-duplicates and outliers
(cosine kNN, reusing the graph ``earmark project`` stored), and, from the stats ingest stored per clip,
the audio-quality findings (clipped, too quiet, DC offset, (near-)silent, upsampled) and noise only. The run's previous ClipScore rows,
Findings and FindingClips are replaced in one transaction, so a reader sees the old analysis or the
new one, never a mix; analyze is the only writer of both, and never writes neighbour lists. Cross-split duplicates
are written to the data set's leakage report under ``near_duplicates_across_splits``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from app.errors import Conflict
from app.pipeline.common import Progress, no_progress
from app.pipeline.ingest_report import reingest_command
from app.store.clip_stats import quality_arrays
from app.store.datasets import get_dataset, set_leakage_key
from app.store.db import Store
from app.store.findings import NewFinding, replace_findings
from app.store.neighbors import N_NEIGHBORS, all_neighbors
from app.store.predictions import RunData, load_run_data
from app.store.runs import resolve_run, update_run_config
from app.store.scores import replace_clip_scores

log = logging.getLogger(__name__)

HELD_OUT_SPLITS = ("validation", "test")
MAX_LEAKAGE_LISTED = 500
# Signal stats that join the embeddings in the clustering space (see ml.analysis.clusters).
CLUSTER_SIGNAL = ("end_energy_db", "trail_silence_ms", "lead_silence_ms", "rms_dbfs")


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
    n_quality: dict[str, int] = field(default_factory=dict)  # audio-quality and noise-only finding -> clips it holds
    neighbors_reused: bool = False  # the kNN graph came from `earmark project` instead of being recomputed
    skipped: dict[str, str] = field(default_factory=dict)  # detector -> why it did not run (an imported run)
    timings: dict[str, float] = field(default_factory=dict)


def _stored_graph(session, run_id: int, clip_ids: np.ndarray, k: int):
    """The kNN graph ``earmark project`` stored, as row indices, or None when it is missing or stale."""
    from ml.analysis.neighbors import KnnGraph

    stored = all_neighbors(session, run_id)
    if len(stored) != len(clip_ids):
        return None
    pos = {int(c): i for i, c in enumerate(clip_ids.tolist())}
    idx = np.full((len(clip_ids), k), -1, dtype=np.int64)
    sims = np.full((len(clip_ids), k), -1.0, dtype=np.float32)
    for clip_id, (nb, ns) in stored.items():
        i = pos.get(clip_id)
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


def out_of_sample(data: RunData, classes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, agrees with the label, confidence, judged) per clip as the model sees clips it did not
    train on.

    Training clips with k-fold out-of-fold probabilities (``earmark train --folds K``) take the
    argmax and maximum of those; every other clip keeps the run's own prediction. ``judged`` marks
    the clips whose agreement is out of sample (validation, test, and training clips with
    out-of-fold probabilities); when there are none (a run on training clips only, no folds) every
    clip is judged. A model fits its training clips, cut-off ones included, so its agreement on them
    says little: on the planted Arabic set (bench/real_finders.py) a cluster of cut-off clips
    disagrees well above the run's rate out of sample but not over all its clips.
    """
    preds = np.asarray(data.preds, dtype=object).copy()
    agree = np.asarray(data.agree, dtype=bool).copy()
    conf = np.asarray(data.confidence, dtype=np.float32).copy()
    judged = np.isin(data.splits, HELD_OUT_SPLITS)
    if data.oof is not None and data.has_probs and len(classes):
        has = (data.splits == "train") & ~np.isnan(data.oof).any(axis=1)
        if has.any():
            oof = data.oof[has]
            preds[has] = np.asarray(classes, dtype=object)[oof.argmax(axis=1)]
            agree[has] = preds[has] == data.labels[has]
            conf[has] = oof.max(axis=1)
            judged |= has
    if not judged.any():
        judged[:] = True
    return preds, agree, conf, judged


def analyze_run(store: Store, run_ref: str | int | None, progress: Progress | None = None,
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
    from ml.analysis.noise import noise_only_finding
    from ml.analysis.quality import quality_findings

    progress = progress or no_progress
    timings: dict[str, float] = {}
    total = 7
    t_all = time.perf_counter()

    def step(name: str, i: int):
        progress(name, i, total)
        return time.perf_counter()

    with store.session() as session:
        run = resolve_run(session, run_ref)
        if run.status != "complete":
            raise Conflict(f"run {run.id} ({run.name}) is {run.status}, not complete",
                           hint=f"wait for it to finish, or run `earmark infer --run {run.id}`")
        t = step("loading predictions and embeddings", 0)
        data = load_run_data(session, run)
        n = len(data.clip_ids)
        timings["load"] = time.perf_counter() - t
        t = step("nearest neighbours", 1)
        # The stored lists (10 per clip) are all the detectors need: outliers use 10 neighbours and a
        # duplicate is always its copy's nearest neighbour.
        k = min(N_NEIGHBORS, max(0, n - 1))
        graph = _stored_graph(session, run.id, data.clip_ids, k) if data.has_embeddings else None
        run_id, dataset_id, classes_list = run.id, run.dataset_id, list(run.classes)
        audio = quality_arrays(session, dataset_id, data.clip_ids)  # audio-quality stats per clip
        reingest = reingest_command(get_dataset(session, dataset_id))
        session.commit()  # no read transaction held open through the detectors
    reused = graph is not None
    skipped = skipped_parts(data)
    unmeasured = int(np.isnan(audio["plateau_share"]).sum())
    if unmeasured:
        skipped["quality"] = (f"clipping, DC offset and upsampling were not checked on {unmeasured:,} clips ingested "
                              f"before earmark measured them: run `{reingest}` (clip ids, runs and flags stay), "
                              f"then analyze again")
    if graph is None and data.has_embeddings:
        graph = knn_cosine(data.emb, k=k, seed=seed)
    timings["neighbors"] = time.perf_counter() - t

    t = step("cut-off score", 2)
    oos_pred, oos_agree, oos_conf, judged = out_of_sample(data, classes_list)
    cut = cutoff_scores(data.signal["end_energy_db"], data.signal["trail_silence_ms"],
                        data.signal["lead_silence_ms"], data.duration_s, data.cutoff_signal,
                        agree=oos_agree, confidence=oos_conf)
    timings["cutoff"] = time.perf_counter() - t

    t = step("label issues (cleanlab)", 3)
    if data.has_probs:
        rows, y, probs, voted, scope = label_inputs(data, classes_list, graph.idx if graph else None, train_without_oof)
    else:
        rows, y, probs, voted = np.zeros(0, np.int64), np.zeros(0, np.int64), data.probs[:0], np.zeros(0, bool)
        scope = {"validation_test_clips": 0, "train_clips_with_oof": 0, "train_clips_by_neighbors": 0,
                 "train_clips_skipped": 0, "note": skipped["label_issues"]}
    classes = np.asarray(classes_list)
    quality = np.full(n, np.nan, dtype=np.float32)
    issue = np.zeros(n, dtype=bool)
    suggested = np.asarray(data.preds, dtype=object).copy()
    if rows.size:
        # Label index of each judged clip's nearest clips (any split; -1 for labels outside the classes).
        index = {c: i for i, c in enumerate(classes_list)}
        all_y = np.array([index.get(lab, -1) for lab in data.labels.tolist()], dtype=np.int64)
        nb_idx = graph.idx[rows] if graph else np.full((len(rows), 1), -1, np.int64)
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
    clusters = cluster_embeddings(data.emb, seed=seed, signal=signal, cut_off=cut.score >= CUTOFF_THRESHOLD) \
        if data.has_embeddings \
        else np.full(n, -1, dtype=np.int64)
    timings["clusters"] = time.perf_counter() - t

    t = step("duplicates and outliers", 5)
    if graph is not None:
        out_score, out_z = outlier_scores(graph)
        pairs = notable_duplicates(duplicate_pairs(graph, data.hashes), data.splits, data.labels)
    else:
        out_score, out_z, pairs = np.full(n, np.nan, np.float32), np.zeros(n, np.float32), []
    dup_of = duplicate_of(n, pairs)
    timings["duplicates_outliers"] = time.perf_counter() - t

    t = step("writing", 6)
    scores = {}
    for i, cid in enumerate(data.clip_ids.tolist()):
        scores[cid] = dict(
            cutoff_score=float(cut.score[i]),
            label_quality=None if np.isnan(quality[i]) else float(quality[i]),
            suggested_label=str(suggested[i]), label_issue=bool(issue[i]),
            outlier_score=None if np.isnan(out_score[i]) else float(out_score[i]), cluster=int(clusters[i]),
            duplicate_of=int(data.clip_ids[dup_of[i]]) if dup_of[i] >= 0 else None,
        )
    ev = Evidence(labels=data.labels, preds=oos_pred, agree=oos_agree, splits=data.splits, signal=data.signal,
                  cutoff_score=cut.score, cutoff_threshold=CUTOFF_THRESHOLD, label_issue=issue,
                  label_quality=quality, suggested=np.asarray(suggested, dtype=str), clusters=clusters,
                  outlier_score=out_score, outlier_z=out_z, duplicate_pairs=pairs, label_scope=scope,
                  judged=judged)
    quality_specs = quality_findings(audio["peak"], audio["plateau_share"], audio["dc"], audio["band_step_db"],
                                     data.labels, oos_agree, judged, audio["speaker"])
    noise = noise_only_finding(data.signal["lead_silence_ms"], data.signal["trail_silence_ms"], audio["peak"],
                               data.signal["rms_dbfs"], audio["dc"], data.labels, oos_agree, judged)
    if noise is not None:
        quality_specs.append(noise)
    # one ranking for every detector: the stats-based findings' scores are on the others' scale (clips with a problem)
    findings = sorted([*build_findings(ev), *quality_specs], key=lambda f: -f.score)
    new = [NewFinding(kind=f.kind, score=float(f.score), title=f.title, description=f.description, reason=f.reason,
                      suggested_label=f.suggested_label, stats=f.stats,
                      members=[(int(data.clip_ids[i]), float(s), lab) for i, s, lab in
                               zip(f.members.tolist(), f.clip_scores.tolist(), f.clip_labels, strict=True)])
           for f in findings]
    with store.session() as session, session.begin():  # ONE transaction: scores, findings, leakage
        replace_clip_scores(session, run_id, scores)
        replace_findings(session, run_id, new)
        if data.has_embeddings:  # without embeddings nothing was looked for: keep what another run found
            set_leakage_key(session, dataset_id, _leakage(run_id, data, pairs))
        update_run_config(session, run_id, {"analysis_skipped": skipped})
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    progress("done", total, total)
    return AnalyzeSummary(
        run_id=run_id, n_clips=n, n_findings=len(findings), n_cutoff=int((cut.score >= CUTOFF_THRESHOLD).sum()),
        n_label_issues=int(issue.sum()), n_clusters=int(len(set(clusters.tolist()) - {-1})),
        n_duplicate_pairs=len(pairs), n_outliers=sum(1 for f in findings if f.kind == "outlier"),
        n_quality={f.kind: len(f.members) for f in quality_specs}, label_scope=_scope_words(scope), neighbors_reused=reused, skipped=skipped, timings={k: round(v, 2) for k, v in timings.items()},
    )


def skipped_parts(data: RunData) -> dict[str, str]:
    """The detectors a run's outputs cannot feed (an import without probabilities or embeddings), and why."""
    out = {}
    if not data.has_probs:
        out["label_issues"] = ("label issues were not checked: the run was imported without probabilities "
                               "(predictions and confidences only)")
    if not data.has_embeddings:
        why = "the run was imported without embeddings"
        out.update(clusters=f"error clusters were not looked for: {why}",
                   duplicates=f"near-duplicates were not looked for: {why}",
                   outliers=f"outliers were not looked for: {why}")
    return out


def _scope_words(scope: dict) -> str:
    words = f"{scope['validation_test_clips']:,} validation/test clips"
    if scope["train_clips_with_oof"]:
        words += f" and {scope['train_clips_with_oof']:,} training clips (out-of-fold)"
    if scope.get("train_clips_by_neighbors"):
        words += f" and {scope['train_clips_by_neighbors']:,} training clips by their neighbours' labels (no --folds)"
    if scope["train_clips_skipped"]:
        words += f"; {scope['train_clips_skipped']:,} training clips skipped (no --folds)"
    return words


def _leakage(run_id: int, data: RunData, pairs) -> dict:
    """The leakage report's keys for duplicates that cross splits (they replace the previous ones)."""
    across = []
    for a, b, sim, same in pairs:
        if data.splits[a] != data.splits[b]:
            across.append({"a": data.paths[a], "b": data.paths[b], "a_split": str(data.splits[a]),
                           "b_split": str(data.splits[b]), "cosine": round(float(sim), 4),
                           "same_audio": bool(same), "run_id": run_id})
    return {"near_duplicates_across_splits": across[:MAX_LEAKAGE_LISTED],
            "near_duplicates_across_splits_count": len(across)}
