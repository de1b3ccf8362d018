"""The store: migrations build the schema on both databases and agree with the ORM models."""

from __future__ import annotations

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from app.store.db import table_names, upgrade
from app.store.models import Base, Clip, Dataset, Embedding, Flag, Run


def test_store_migrations_create_every_table(store):
    names = table_names(store.engine)
    for t in ("datasets", "clips", "rejects", "runs", "epochs", "predictions", "embeddings",
              "projections", "flags", "clip_scores", "findings", "finding_clips", "alembic_version"):
        assert t in names


def test_store_models_match_migrations(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_store_upgrade_is_idempotent(store):
    upgrade(store.engine)
    upgrade(store.engine)
    assert "clips" in table_names(store.engine)


def test_store_roundtrips_float32_blobs_and_unique_flag(store):
    vec = np.arange(16, dtype=np.float32) / 7
    with store.sessions() as s:
        ds = Dataset(name="d", root="/x", layout="folders", status="ready")
        s.add(ds)
        s.flush()
        clip = Clip(dataset_id=ds.id, path="yes/a_nohash_0.wav", label="yes", word="yes", split="train",
                    speaker="a", utterance=0, sample_rate=16000, n_samples=16000, duration_s=1.0,
                    channels=1, content_hash="h", rms_dbfs=-20, peak=0.5, clipped_frac=0,
                    lead_silence_ms=0, trail_silence_ms=0, end_energy_db=-60, cutoff_signal=False)
        run = Run(dataset_id=ds.id, name="r", model="melcnn", classes=["yes"], embedding_dim=16)
        s.add_all([clip, run])
        s.flush()
        s.add(Embedding(run_id=run.id, clip_id=clip.id, vector=vec.tobytes()))
        s.add(Flag(clip_id=clip.id, reason="cutoff"))
        s.commit()
    with store.sessions() as s:
        got = np.frombuffer(s.scalars(select(Embedding.vector)).one(), dtype=np.float32)
        assert np.array_equal(got, vec)
        assert s.scalars(select(Flag.reason)).all() == ["cutoff"]
