"""Factories that fill a store with a data set and a complete run, without training anything.

Used by the web, analysis and flag tests (and bench/web.py at 105k clips). The clips are real
WAV files on disk (only when ``write_audio``), the predictions are consistent (probabilities sum
to one, loss is the cross-entropy of the target), and the embeddings cluster by predicted class.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy.orm import Session

from app.store.models import (
    Clip,
    ClipScore,
    Dataset,
    Embedding,
    Finding,
    FindingClip,
    Prediction,
    Projection,
    Run,
    utcnow,
)
from app.store.writes import bulk_insert

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
SPLITS = ("train", "validation", "test")


@dataclass
class Fixture:
    """What ``make_run`` built: ids to point requests at."""

    dataset_id: int
    run_id: int
    clip_ids: list[int]
    labels: list[str]
    root: Path
    disagree_ids: list[int] = field(default_factory=list)


def make_dataset(session: Session, root: Path, n_clips: int = 60, labels: list[str] | None = None,
                 name: str = "fixture", write_audio: bool = True, seed: int = 0) -> tuple[Dataset, list[int]]:
    """A ready data set of ``n_clips`` clips cycling through ``labels`` and the three splits."""
    rng = np.random.default_rng(seed)
    labels = labels or WORDS
    ds = Dataset(name=name, root=str(root), layout="speech_commands", status="ready", n_clips=n_clips,
                 labels=sorted(labels), split_source="hash", leakage={}, list_stats={}, noise_files=[])
    session.add(ds)
    session.flush()
    rows = []
    for i in range(n_clips):
        label = labels[i % len(labels)]
        speaker = f"{(i // len(labels)) % 50:08x}"
        utt = i // (len(labels) * 50)
        rel = f"{label}/{speaker}_nohash_{utt}.wav"
        split = SPLITS[(i // len(labels)) % 3]
        n = 16000
        if write_audio:
            t = np.arange(n) / 16000
            freq = 200 + 40 * labels.index(label)
            x = (0.3 * np.sin(2 * np.pi * freq * t) * (t > 0.2) * (t < 0.8)).astype(np.float32)
            x += rng.normal(0, 0.003, n).astype(np.float32)
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / rel), x, 16000, subtype="PCM_16")
        rows.append(dict(
            dataset_id=ds.id, path=rel, label=label, word=label, split=split, speaker=speaker, utterance=utt,
            sample_rate=16000, n_samples=n, duration_s=1.0, channels=1,
            content_hash=hashlib.sha1(rel.encode()).hexdigest(), rms_dbfs=float(-20 - rng.random() * 10),
            peak=0.3, clipped_frac=0.0, lead_silence_ms=200.0, trail_silence_ms=200.0,
            end_energy_db=-60.0, cutoff_signal=bool(i % 13 == 0),
            plateau_share=0.0, dc_offset=0.0, band_step_db=-8.0,  # measured by ingest, as clean clips read
        ))
    bulk_insert(session, Clip, rows)
    session.flush()
    ids = [cid for (cid,) in session.query(Clip.id).filter(Clip.dataset_id == ds.id).order_by(Clip.id)]
    return ds, ids


def make_run(session: Session, root: Path, n_clips: int = 60, labels: list[str] | None = None,
             name: str = "fixture-run", dim: int = 32, write_audio: bool = True, seed: int = 0,
             disagree_every: int = 7, with_scores: bool = True, dataset: tuple[Dataset, list[int]] | None = None
             ) -> Fixture:
    """A data set plus one complete run: predictions, embeddings, projections and clip scores."""
    rng = np.random.default_rng(seed)
    labels = labels or WORDS
    ds, clip_ids = dataset or make_dataset(session, root, n_clips, labels, write_audio=write_audio, seed=seed)
    classes = sorted(labels)
    run = Run(dataset_id=ds.id, name=name, model="melcnn", status="complete", classes=classes,
              config={"epochs": 1, "model": "melcnn"}, embedding_dim=dim, n_params=1000, epochs_done=1,
              finished_at=utcnow())
    session.add(run)
    session.flush()
    clips = session.query(Clip.id, Clip.label, Clip.split).filter(Clip.dataset_id == ds.id).order_by(Clip.id).all()
    k = len(classes)
    centers = rng.normal(0, 1, (k, dim)).astype(np.float32) * 3
    centers2 = rng.normal(0, 1, (k, 2)).astype(np.float32) * 10
    preds, embs, projs, scores, disagree = [], [], [], [], []
    per_split: dict[str, np.ndarray] = {}
    for j, (cid, label, split) in enumerate(clips):
        t = classes.index(label)
        p_idx = (t + 1) % k if j % disagree_every == 0 else t
        logits = rng.normal(0, 0.5, k)
        logits[p_idx] += 3.0
        probs = np.exp(logits - logits.max())
        probs = (probs / probs.sum()).astype(np.float32)
        agree = p_idx == t
        if not agree:
            disagree.append(cid)
        preds.append(dict(run_id=run.id, clip_id=cid, target=label, pred=classes[p_idx],
                          confidence=float(probs[p_idx]), loss=float(-np.log(max(probs[t], 1e-12))),
                          agree=bool(agree), probs=probs.tobytes(), oof_probs=None))
        embs.append(dict(run_id=run.id, clip_id=cid,
                         vector=(centers[p_idx] + rng.normal(0, 0.3, dim)).astype(np.float32).tobytes()))
        xy = centers2[p_idx] + rng.normal(0, 0.8, 2)
        projs.append(dict(run_id=run.id, clip_id=cid, x=float(xy[0]), y=float(xy[1])))
        if with_scores:
            scores.append(dict(run_id=run.id, clip_id=cid, cutoff_score=float(rng.random()),
                               label_quality=float(probs[t]), suggested_label=classes[p_idx],
                               label_issue=bool(not agree), outlier_score=float(rng.random()), cluster=p_idx))
        cm = per_split.setdefault(split, np.zeros((k, k), dtype=int))
        cm[t, p_idx] += 1
    bulk_insert(session, Prediction, preds)
    bulk_insert(session, Embedding, embs)
    bulk_insert(session, Projection, projs)
    if scores:
        bulk_insert(session, ClipScore, scores)
    run.metrics = {split: _metrics(cm, classes) for split, cm in per_split.items()}
    session.commit()
    return Fixture(ds.id, run.id, [c[0] for c in clips], classes, root, disagree)


def add_finding(session: Session, run_id: int, clip_ids: list[int], kind: str = "cutoff",
                title: str = "3 clips look cut off", description: str = "d", reason: str | None = "cutoff",
                score: float = 2.7, clip_score: float = 0.9) -> int:
    """A finding of rank 1 holding ``clip_ids`` (each at ``clip_score``), as ``earmark analyze`` writes one;
    its id. The caller commits."""
    f = Finding(run_id=run_id, kind=kind, rank=1, score=score, title=title, description=description,
                reason=reason, n_clips=len(clip_ids), stats={})
    session.add(f)
    session.flush()
    session.add_all(FindingClip(finding_id=f.id, clip_id=cid, score=clip_score) for cid in clip_ids)
    return f.id


def _metrics(cm: np.ndarray, classes: list[str]) -> dict:
    tp = np.diag(cm).astype(float)
    prec = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "macro_f1": float(f1.mean()),
        "per_class": {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                          "support": int(cm[i].sum())} for i, c in enumerate(classes)},
        "confusion": cm.tolist(),
    }
