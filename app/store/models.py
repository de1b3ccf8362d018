"""The store's tables as typed SQLAlchemy 2 models.

The schema itself is created only by Alembic (``migrations/``); these classes must agree with
the migrations, and ``tests/test_store.py`` checks that they do. Classes are singular, tables
plural. Arrays (probability vectors, embeddings) are stored as little-endian float32 BLOBs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.flags import REASONS


def utcnow() -> datetime:
    """Timezone-aware now, the one clock every row uses."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base for every earmark table."""


class Dataset(Base):
    """One ingested folder of audio. Invisible to readers until ``status == 'ready'``."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root: Mapped[str] = mapped_column(Text)  # absolute path of the data set folder
    layout: Mapped[str] = mapped_column(String(40))  # speech_commands | test_archive | folders
    status: Mapped[str] = mapped_column(String(20), default="ingesting")  # ingesting | ready
    n_clips: Mapped[int] = mapped_column(Integer, default=0)
    n_rejects: Mapped[int] = mapped_column(Integer, default=0)
    sample_rate: Mapped[int] = mapped_column(Integer, default=16000)
    labels: Mapped[list] = mapped_column(JSON, default=list)  # sorted class names as filed
    split_source: Mapped[str] = mapped_column(String(20), default="hash")  # lists | hash
    # {"listed_missing": {"validation": n, "testing": n}, ...}
    list_stats: Mapped[dict] = mapped_column(JSON, default=dict)
    # {"files_in_several_splits": [...], "speakers_in_several_splits": [...], "identical_audio_across_splits": [...]}
    leakage: Mapped[dict] = mapped_column(JSON, default=dict)
    noise_files: Mapped[list] = mapped_column(JSON, default=list)  # relative paths of _background_noise_ WAVs
    # metadata columns in manifest order: {name: "number" | "text" | "boolean"}
    meta_columns: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    # whether the split was checked for speakers in several splits: checked | partial | not_checked
    speaker_leakage: Mapped[str] = mapped_column(String(20), default="not_checked", server_default="not_checked")
    # what was ingested: {"kind": ..., "manifests": [...], "options": {...}, "notes": [...]}
    source: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Clip(Base):
    """One audio file of a data set, with its metadata and signal stats."""

    __tablename__ = "clips"
    __table_args__ = (
        UniqueConstraint("dataset_id", "path", name="uq_clips_dataset_path"),
        Index("ix_clips_dataset_split", "dataset_id", "split"),
        Index("ix_clips_dataset_label", "dataset_id", "label"),
        Index("ix_clips_dataset_speaker", "dataset_id", "speaker"),
        Index("ix_clips_content_hash", "dataset_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # relative to the data set root, '/' separated
    label: Mapped[str] = mapped_column(String(100))  # task label as filed (folder name)
    word: Mapped[str] = mapped_column(String(100))  # the spoken word; differs from label under _unknown_
    split: Mapped[str] = mapped_column(String(20))  # train | validation | test
    speaker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    utterance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sample_rate: Mapped[int] = mapped_column(Integer)
    n_samples: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64))  # sha1 of the decoded samples
    rms_dbfs: Mapped[float] = mapped_column(Float)
    peak: Mapped[float] = mapped_column(Float)
    clipped_frac: Mapped[float] = mapped_column(Float)
    lead_silence_ms: Mapped[float] = mapped_column(Float)
    trail_silence_ms: Mapped[float] = mapped_column(Float)
    end_energy_db: Mapped[float] = mapped_column(Float)  # energy of the last 50 ms relative to the clip's peak frame
    cutoff_signal: Mapped[bool] = mapped_column(Boolean, default=False)  # speech still on in the last 50 ms
    meta: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # metadata column -> value; None when none
    # audio-quality stats (ml.analysis.quality); None for clips ingested before migration 0006
    plateau_share: Mapped[float | None] = mapped_column(Float, nullable=True)  # share of samples in pairs at the peak
    dc_offset: Mapped[float | None] = mapped_column(Float, nullable=True)  # mean sample value, full scale = 1
    band_step_db: Mapped[float | None] = mapped_column(Float, nullable=True)  # power 4.5-7.5 kHz minus 2.8-3.8 kHz


class Reject(Base):
    """A file an ingest could not take, and why."""

    __tablename__ = "rejects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(40))  # unreadable | empty | sample_rate | channels | too_long | ...
    detail: Mapped[str] = mapped_column(Text, default="")


class Run(Base):
    """One training run and the inference made with its checkpoint."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(40))  # melcnn | m5
    # training | trained | inferring | complete | failed
    status: Mapped[str] = mapped_column(String(20), default="training")
    classes: Mapped[list] = mapped_column(JSON, default=list)  # output index -> class name
    config: Mapped[dict] = mapped_column(JSON, default=dict)  # the full training config
    embedding_dim: Mapped[int | None] = mapped_column(Integer, nullable=True)
    n_params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)  # path of the best checkpoint
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    # {"<split>": {"accuracy", "macro_f1", "per_class": {cls: {precision, recall, f1, support}}, "confusion": [[...]]}}
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    flags_used: Mapped[list] = mapped_column(JSON, default=list)  # [{clip_id, reason, corrected_label, updated_at}]
    label_map: Mapped[dict] = mapped_column(JSON, default=dict)  # clip_id -> training label where it differs
    folds: Mapped[int] = mapped_column(Integer, default=0)  # k of k-fold out-of-fold probabilities, 0 = none
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # the process training or inferring it ({"host", "pid", "start"}, app.process), its last heartbeat,
    # and a counter each start/resume bumps by compare-and-set (one owner at a time)
    owner: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    claim: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Epoch(Base):
    """Per-epoch training curves, as also written to TensorBoard."""

    __tablename__ = "epochs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float] = mapped_column(Float)
    val_accuracy: Mapped[float] = mapped_column(Float)
    val_macro_f1: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float, default=0.0)


class Prediction(Base):
    """A run's output for one clip."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_run_loss", "run_id", "loss"),
        Index("ix_predictions_run_target_pred", "run_id", "target", "pred"),
    )

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    target: Mapped[str] = mapped_column(String(100))  # the clip's label as mapped into the run's classes
    pred: Mapped[str] = mapped_column(String(100))
    confidence: Mapped[float] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)  # cross-entropy against target; None without probs
    agree: Mapped[bool] = mapped_column(Boolean)
    probs: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32[len(run.classes)]; None: reduced import
    oof_probs: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # k-fold, training split only


class Embedding(Base):
    """Penultimate-layer embedding of one clip under one run."""

    __tablename__ = "embeddings"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32[run.embedding_dim]


class Projection(Base):
    """2-D UMAP coordinates of one clip's embedding under one run."""

    __tablename__ = "projections"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)


class ClipScore(Base):
    """Per-clip detector outputs of ``earmark analyze`` for one run (its only writer)."""

    __tablename__ = "clip_scores"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    cutoff_score: Mapped[float] = mapped_column(Float, default=0.0)  # [0, 1]
    label_quality: Mapped[float | None] = mapped_column(Float, nullable=True)  # cleanlab, [0, 1]
    suggested_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    label_issue: Mapped[bool] = mapped_column(Boolean, default=False)
    outlier_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    cluster: Mapped[int | None] = mapped_column(Integer, nullable=True)  # -1 noise
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)  # clip id


class NeighborList(Base):
    """One clip's nearest clips under one run (cosine over the embeddings), written by ``earmark project``."""

    __tablename__ = "neighbor_lists"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    neighbor_ids: Mapped[list] = mapped_column(JSON)  # up to 10 clip ids, nearest first
    similarities: Mapped[list] = mapped_column(JSON)  # their cosine similarities (4 decimals)


class Finding(Base):
    """A ranked problem found by a detector: a set of clips and a plain-words description."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # cutoff | label | cluster | duplicate | outlier
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(20), nullable=True)  # the flag reason it suggests
    suggested_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    n_clips: Mapped[int] = mapped_column(Integer)
    stats: Mapped[dict] = mapped_column(JSON, default=dict)


class FindingClip(Base):
    """Membership of a clip in a finding."""

    __tablename__ = "finding_clips"

    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    suggested_label: Mapped[str | None] = mapped_column(String(100), nullable=True)


FLAG_REASONS = REASONS  # the flag domain owns the vocabulary (app.flags)


class Flag(Base):
    """A person's (or a detector's) decision about one clip. One per clip: the last write wins."""

    __tablename__ = "flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), unique=True)
    reason: Mapped[str] = mapped_column(String(20))  # one of FLAG_REASONS
    corrected_label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(100), default="anonymous")  # "auto" for a detector
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
