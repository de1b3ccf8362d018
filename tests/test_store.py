"""The store: migrations build the schema on both databases and agree with the ORM models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from app.store import codec
from app.store.db import alembic_config, table_names, upgrade
from app.store.models import Base, Clip, ClipScore, Dataset, Embedding, Flag, NeighborList, Run, utcnow


def test_store_migrations_create_every_table(store):
    names = table_names(store.engine)
    for t in ("datasets", "clips", "rejects", "runs", "epochs", "predictions", "embeddings",
              "projections", "flags", "clip_scores", "neighbor_lists", "findings", "finding_clips",
              "alembic_version"):
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


def test_codec_round_trips_vectors_and_matrices():
    rng = np.random.default_rng(0)
    vec = rng.standard_normal(37).astype(np.float64)  # any float dtype goes in; float32 comes out
    blob = codec.encode(vec)
    assert isinstance(blob, bytes) and len(blob) == 37 * 4
    assert blob == vec.astype("<f4").tobytes()  # the stored format: little-endian float32
    back = codec.decode(blob)
    assert back.dtype == np.float32 and np.array_equal(back, vec.astype(np.float32))
    back[0] = 99.0  # a copy, safe to modify
    assert codec.decode(blob)[0] != 99.0
    rows = [codec.encode(r) for r in rng.standard_normal((5, 8))]
    mat = codec.decode_rows(rows)
    assert mat.shape == (5, 8) and mat.flags.c_contiguous
    assert np.array_equal(mat[3], codec.decode(rows[3]))
    holes = codec.decode_rows([None, rows[1], None], dim=8)  # absent optional vectors are NaN rows
    assert np.isnan(holes[0]).all() and np.isnan(holes[2]).all() and np.array_equal(holes[1], mat[1])
    assert codec.decode_rows([], dim=4).shape == (0, 4)
    with pytest.raises(ValueError, match="not all 8"):
        codec.decode_rows([rows[0], codec.encode(np.zeros(3))])


def _migrate(engine, revision: str, down: bool = False) -> None:
    """Run Alembic to ``revision`` on ``engine`` (the way ``app.store.db.upgrade`` does)."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_migration_0002_moves_stored_neighbours_into_their_table_and_back(store):
    """A store at 0001 holding neighbour lists in clip_scores keeps every one of them through 0002, both ways."""
    _migrate(store.engine, "0001", down=True)
    assert "neighbor_lists" not in table_names(store.engine)
    lists = {1: ([2, 3], [0.9, 0.5]), 2: ([1, 3], [0.9, 0.4]), 3: ([1, 2], [0.5, 0.4])}
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO datasets (id, name, root, layout, status, n_clips, n_rejects, sample_rate, "
                          "labels, split_source, list_stats, leakage, noise_files, created_at, updated_at) VALUES "
                          "(1, 'd', '/x', 'folders', 'ready', 3, 0, 16000, '[]', 'hash', '{}', '{}', '[]', "
                          ":t, :t)"), {"t": utcnow()})
        for cid in lists:
            conn.execute(text("INSERT INTO clips (id, dataset_id, path, label, word, split, sample_rate, n_samples, "
                              "duration_s, channels, content_hash, rms_dbfs, peak, clipped_frac, lead_silence_ms, "
                              "trail_silence_ms, end_energy_db, cutoff_signal) VALUES (:id, 1, :p, 'yes', 'yes', "
                              "'train', 16000, 16000, 1.0, 1, 'h', -20, 0.5, 0, 0, 0, -60, false)"),
                         {"id": cid, "p": f"yes/{cid}.wav"})
        conn.execute(text("INSERT INTO runs (id, dataset_id, name, model, status, classes, config, epochs_done, "
                          "metrics, flags_used, label_map, folds, created_at) VALUES (1, 1, 'r', 'melcnn', "
                          "'complete', '[\"yes\"]', '{}', 1, '{}', '[]', '{}', 0, :t)"), {"t": utcnow()})
        for cid, (ids, sims) in lists.items():
            conn.execute(text("INSERT INTO clip_scores (run_id, clip_id, cutoff_score, label_issue, cluster, "
                              "neighbors, neighbor_sims) VALUES (1, :c, :s, false, 4, :n, :ns)"),
                         {"c": cid, "s": cid / 10, "n": json.dumps(ids), "ns": json.dumps(sims)})
    _migrate(store.engine, "head")
    with store.sessions() as s:
        moved = {r.clip_id: (r.neighbor_ids, r.similarities) for r in s.scalars(select(NeighborList))}
        assert moved == lists
        assert {r.clip_id: (r.cutoff_score, r.cluster) for r in s.scalars(select(ClipScore))} == \
            {1: (0.1, 4), 2: (0.2, 4), 3: (0.3, 4)}  # the scores stay, without the two columns
    assert "neighbors" not in {c["name"] for c in inspect(store.engine).get_columns("clip_scores")}

    _migrate(store.engine, "0001", down=True)
    with store.engine.connect() as conn:
        back = {r[0]: (_json(r[1]), _json(r[2])) for r in conn.execute(text(
            "SELECT clip_id, neighbors, neighbor_sims FROM clip_scores ORDER BY clip_id"))}
    assert back == lists
    _migrate(store.engine, "head")


def _json(value):
    return json.loads(value) if isinstance(value, str) else value
