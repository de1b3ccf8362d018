"""The test factories build a consistent run (other tests rely on it)."""

from __future__ import annotations

import numpy as np

from app.store.models import Embedding, Prediction, Projection
from tests.factories import make_run


def test_factories_make_run_consistent(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "data", n_clips=30)
    with store.sessions() as s:
        preds = s.query(Prediction).filter_by(run_id=fx.run_id).all()
        assert len(preds) == 30
        assert s.query(Embedding).filter_by(run_id=fx.run_id).count() == 30
        assert s.query(Projection).filter_by(run_id=fx.run_id).count() == 30
        for p in preds:
            probs = np.frombuffer(p.probs, dtype=np.float32)
            assert abs(probs.sum() - 1) < 1e-5
            assert p.agree == (p.pred == p.target)
        assert {p.clip_id for p in preds if not p.agree} == set(fx.disagree_ids)
    assert (tmp_path / "data" / "yes").is_dir()
