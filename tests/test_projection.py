"""``earmark project``: UMAP coordinates and nearest neighbours stored per clip, replacing old ones,
keeping the analysis columns, and reused by ``analyze``. (The first UMAP in a process compiles
numba kernels; every test here shares that cost.)"""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from app.errors import Conflict
from app.pipeline.analyze import analyze_run
from app.pipeline.project import project_run
from app.store.models import Clip, ClipScore, Embedding, NeighborList, Projection
from app.web.main import create_app
from ml.analysis.neighbors import knn_cosine
from ml.analysis.projection import umap_2d
from tests.factories import make_run

N = 120


def test_umap_2d_keeps_separate_groups_apart():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1, (3, 24)) * 5
    lab = np.repeat(np.arange(3), 60)
    x = (centers[lab] + rng.normal(0, 0.5, (lab.size, 24))).astype(np.float32)
    xy = umap_2d(x, knn=knn_cosine(x, k=14), seed=0)
    assert xy.shape == (180, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    means = np.stack([xy[lab == g].mean(0) for g in range(3)])
    spread = max(np.linalg.norm(xy[lab == g] - means[g], axis=1).mean() for g in range(3))
    gaps = [np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread
    assert umap_2d(x[:3]).shape == (3, 2)  # too few for a neighbourhood: placed on a line


def test_project_stores_coordinates_and_neighbors_and_replaces_them(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=N, write_audio=False)
        a, b = fx.clip_ids[3], fx.clip_ids[40]
        vec = s.scalar(select(Embedding.vector).where(Embedding.run_id == fx.run_id, Embedding.clip_id == a))
        s.execute(update(Embedding).where(Embedding.run_id == fx.run_id, Embedding.clip_id == b).values(vector=vec))
        s.commit()
        old = dict(s.execute(select(Projection.clip_id, Projection.x).where(Projection.run_id == fx.run_id)).all())
        scores_before = s.execute(select(ClipScore.clip_id, ClipScore.cutoff_score).order_by(ClipScore.clip_id)).all()
        steps = []
        summary = project_run(store, fx.run_id, seed=0, progress=lambda step, i, n: steps.append(step))
        assert summary.n_clips == N and summary.umap_s > 0 and summary.warmup_s > 0
        assert steps[0].startswith("loading") and steps[-1] == "done"
        new = dict(s.execute(select(Projection.clip_id, Projection.x).where(Projection.run_id == fx.run_id)).all())
        assert set(new) == set(old) and new != old
        assert s.scalar(select(func.count()).select_from(Projection)) == N
        rows = {r.clip_id: r for r in s.scalars(select(NeighborList).where(NeighborList.run_id == fx.run_id))}
        assert len(rows) == N
        assert rows[b].neighbor_ids[0] == a and rows[b].similarities[0] > 0.999
        assert all(len(r.neighbor_ids) == 10 and r.clip_id not in r.neighbor_ids for r in rows.values())
        assert all(r.similarities == sorted(r.similarities, reverse=True) for r in rows.values())
        # project writes no scores (analyze is their one writer)
        assert s.execute(select(ClipScore.clip_id, ClipScore.cutoff_score).order_by(ClipScore.clip_id)).all() \
            == scores_before

        # the clip page reads the stored lists (not a recomputation): they come back as stored
        s.commit()
        web = TestClient(create_app(store.settings))
        page = web.get(f"/api/clips/{b}?run={fx.run_id}").json()
        assert [(n["id"], n["similarity"]) for n in page["neighbors"]] == \
            list(zip(rows[b].neighbor_ids, rows[b].similarities, strict=True))
        html = web.get(f"/clips/{b}?run={fx.run_id}").text
        assert all(f'href="/clips/{n}?run={fx.run_id}"' in html for n in rows[b].neighbor_ids)

        # analyze reuses the graph and leaves it as it is; project after analyze keeps the analysis.
        lists = {r.clip_id: (r.neighbor_ids, r.similarities) for r in rows.values()}
        summary = analyze_run(store, fx.run_id)
        assert summary.neighbors_reused
        s.expire_all()
        assert {r.clip_id: (r.neighbor_ids, r.similarities) for r in s.scalars(select(NeighborList))} == lists
        cut = {r.clip_id: (r.cutoff_score, r.cluster) for r in s.scalars(select(ClipScore))}
        assert len(cut) == N
        project_run(store, fx.run_id, seed=1)
        s.expire_all()
        assert {r.clip_id: (r.cutoff_score, r.cluster) for r in s.scalars(select(ClipScore))} == cut
        assert s.scalar(select(func.count()).select_from(Projection)) == N


def test_project_refuses_a_run_without_embeddings(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=12, write_audio=False)
        s.execute(delete(Embedding).where(Embedding.run_id == fx.run_id))
        s.commit()
        with pytest.raises(Conflict, match="no embeddings"):
            project_run(store, fx.run_id)
        assert s.scalar(select(func.count()).select_from(Clip)) == 12
