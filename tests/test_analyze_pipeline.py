"""``analyze_run`` and ``flag_finding`` end to end on both databases: planted defects are found and
stored, re-analysis replaces the old analysis, duplicates across splits reach the leakage report."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select, update

from app.errors import EarmarkError, NotFound
from app.pipeline.analyze import analyze_run
from app.pipeline.flags import flag_finding
from app.store.findings import top_finding
from app.store.models import (
    Clip,
    ClipScore,
    Dataset,
    Embedding,
    Finding,
    FindingClip,
    Flag,
    NeighborList,
    Prediction,
    Run,
)
from tests.factories import make_run

N = 150


def _plant(session, fx):
    """Plant defects into a fixture run; returns the clip ids of each kind."""
    clips = session.execute(select(Clip.id, Clip.label, Clip.split).where(Clip.dataset_id == fx.dataset_id)
                            .order_by(Clip.id)).all()
    run = session.get(Run, fx.run_id)
    classes = run.classes
    # Cut off: five 'up' clips with sound still on at the end, the model unsure about them.
    cut = [c.id for c in clips if c.label == "up"][:5]
    session.execute(update(Clip).where(Clip.id.in_(cut)).values(end_energy_db=-2.0, trail_silence_ms=0.0,
                                                                 cutoff_signal=True))
    session.execute(update(Prediction).where(Prediction.run_id == run.id, Prediction.clip_id.in_(cut))
                    .values(confidence=0.4))
    # Mislabeled: a held-out clip whose audio says 'yes' (the model is sure) but is filed as 'no'.
    mis = next(c.id for c in clips if c.label == "yes" and c.split != "train")
    p = np.full(len(classes), 0.002, np.float32)
    p[classes.index("yes")] = 1 - 0.002 * (len(classes) - 1)
    session.execute(update(Prediction).where(Prediction.run_id == run.id, Prediction.clip_id == mis)
                    .values(target="no", pred="yes", agree=False, confidence=float(p.max()), probs=p.tobytes()))
    # Identical pair across splits: same audio hash, same embedding.
    a = next(c for c in clips if c.split == "train" and c.label == "left")
    b = next(c for c in clips if c.split == "test" and c.label == "left")
    vec = session.scalar(select(Embedding.vector).where(Embedding.run_id == run.id, Embedding.clip_id == a.id))
    ahash = session.scalar(select(Clip.content_hash).where(Clip.id == a.id))
    session.execute(update(Clip).where(Clip.id == b.id).values(content_hash=ahash))
    session.execute(update(Embedding).where(Embedding.run_id == run.id, Embedding.clip_id == b.id).values(vector=vec))
    # One obvious outlier: an embedding pointing away from every class centre.
    out = next(c.id for c in clips if c.label == "stop")
    dim = len(vec) // 4
    far = (np.linspace(-1, 1, dim) ** 3 * 50).astype(np.float32)
    session.execute(update(Embedding).where(Embedding.run_id == run.id, Embedding.clip_id == out)
                    .values(vector=far.tobytes()))
    session.commit()
    return {"cut": cut, "mis": mis, "dup": (a.id, b.id), "outlier": out}


@pytest.fixture
def planted(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "data", n_clips=N, write_audio=False, disagree_every=11)
        truth = _plant(s, fx)
    return fx, truth


def test_analyze_finds_planted_defects(store, planted):
    fx, truth = planted
    with store.sessions() as s:
        summary = analyze_run(store, fx.run_id)
        assert summary.n_clips == N
        scores = {r.clip_id: r for r in s.scalars(select(ClipScore).where(ClipScore.run_id == fx.run_id))}
        assert len(scores) == N
        assert all(0 <= r.cutoff_score <= 1 for r in scores.values())
        # neighbour lists are `earmark project`'s alone: analyze computed its graph and stored none
        assert not summary.neighbors_reused
        assert s.scalar(select(func.count()).select_from(NeighborList)) == 0
        # cut-off
        assert min(scores[c].cutoff_score for c in truth["cut"]) >= 0.5
        cutoff = top_finding(s, fx.run_id, "cutoff")
        members = set(s.scalars(select(FindingClip.clip_id).where(FindingClip.finding_id == cutoff.id)))
        assert set(truth["cut"]) <= members
        assert cutoff.reason == "cutoff" and cutoff.n_clips == len(members)
        # mislabeled
        assert scores[truth["mis"]].label_issue and scores[truth["mis"]].suggested_label == "yes"
        label = top_finding(s, fx.run_id, "label")
        row = s.get(FindingClip, (label.id, truth["mis"]))
        assert row is not None and row.suggested_label == "yes" and label.reason == "mislabeled"
        assert "'no' \u2192 'yes'" in label.description
        assert "training clips" in label.description  # says the train split was skipped (no --folds)
        # duplicates
        a, b = truth["dup"]
        assert scores[b].duplicate_of == a
        dup = top_finding(s, fx.run_id, "duplicate")
        assert dup.stats["across_splits"] >= 1
        leak = s.get(Dataset, fx.dataset_id).leakage["near_duplicates_across_splits"]
        assert any({x["a_split"], x["b_split"]} == {"train", "test"} and x["same_audio"] for x in leak)
        # outlier
        out_scores = {c: r.outlier_score for c, r in scores.items()}
        assert max(out_scores, key=out_scores.get) == truth["outlier"]
        outlier = top_finding(s, fx.run_id, "outlier")
        assert truth["outlier"] in set(s.scalars(select(FindingClip.clip_id)
                                                 .where(FindingClip.finding_id == outlier.id)))
        ranks = s.scalars(select(Finding.rank).where(Finding.run_id == fx.run_id).order_by(Finding.rank)).all()
        assert ranks == list(range(1, len(ranks) + 1))


def test_analyze_twice_replaces_the_previous_analysis(store, planted):
    fx, _ = planted
    with store.sessions() as s:
        analyze_run(store, fx.run_id)
        first = s.execute(select(Finding.kind, Finding.title, Finding.n_clips).where(Finding.run_id == fx.run_id)
                          .order_by(Finding.rank)).all()
        analyze_run(store, fx.run_id)
        second = s.execute(select(Finding.kind, Finding.title, Finding.n_clips).where(Finding.run_id == fx.run_id)
                           .order_by(Finding.rank)).all()
        assert first == second
        assert s.scalar(select(func.count()).select_from(Finding)) == len(first)
        assert s.scalar(select(func.count()).select_from(ClipScore).where(ClipScore.run_id == fx.run_id)) == N
        total = s.scalar(select(func.sum(Finding.n_clips)).where(Finding.run_id == fx.run_id))
        assert s.scalar(select(func.count()).select_from(FindingClip)) == total


def test_flag_finding_flags_all_or_selected_clips(store, planted):
    fx, truth = planted
    with store.sessions() as s:
        analyze_run(store, fx.run_id)
        cutoff = top_finding(s, fx.run_id, "cutoff")
        n = flag_finding(s, cutoff.id).flagged
        assert n == cutoff.n_clips
        flags = s.scalars(select(Flag)).all()
        assert {f.clip_id for f in flags} >= set(truth["cut"])
        assert all(f.reason == "cutoff" and f.author == "auto" and f.finding_id == cutoff.id for f in flags)
        label = top_finding(s, fx.run_id, "label")
        assert flag_finding(s, label.id, clip_ids=[truth["mis"]], author="ana").flagged == 1
        flag = s.scalars(select(Flag).where(Flag.clip_id == truth["mis"])).one()
        assert (flag.reason, flag.corrected_label, flag.author) == ("mislabeled", "yes", "ana")
        with pytest.raises(EarmarkError, match="not in finding"):
            flag_finding(s, label.id, clip_ids=[truth["cut"][0]])
        with pytest.raises(NotFound):
            flag_finding(s, 999_999)
        # Re-analysis drops the old findings; the flags stay, their finding link cleared.
        analyze_run(store, fx.run_id)
        s.expire_all()
        assert s.scalar(select(func.count()).select_from(Flag)) == len(flags) + (truth["mis"] not in truth["cut"])
        assert s.scalar(select(func.count()).select_from(Flag).where(Flag.finding_id.is_not(None))) == 0


def test_analyze_refuses_runs_without_predictions(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=20, write_audio=False)
        s.execute(update(Run).where(Run.id == fx.run_id).values(status="training"))
        s.commit()
        with pytest.raises(EarmarkError, match="not complete"):
            analyze_run(store, fx.run_id)
        with pytest.raises(NotFound):
            analyze_run(store, "no-such-run")



def test_cli_analyze_and_flag_finding(store, planted, monkeypatch):
    from typer.testing import CliRunner

    from app.cli import app as cli

    fx, truth = planted
    monkeypatch.setenv("EARMARK_DATABASE_URL", store.url)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(store.settings.data_dir))
    runner = CliRunner()
    r = runner.invoke(cli, ["analyze", "--run", str(fx.run_id)])
    assert r.exit_code == 0, r.output
    assert "cutoff" in r.output and "label issues" in r.output
    r = runner.invoke(cli, ["flag-finding", "--run", str(fx.run_id), "--top", "cutoff"])
    assert r.exit_code == 0, r.output
    assert "flagged" in r.output
    with store.sessions() as s:
        flagged = set(s.scalars(select(Flag.clip_id).where(Flag.author == "auto", Flag.reason == "cutoff")))
    assert set(truth["cut"]) <= flagged
    r = runner.invoke(cli, ["flag-finding"])
    assert r.exit_code == 1 and "give a finding id" in r.output
    r = runner.invoke(cli, ["flag-finding", "--run", str(fx.run_id), "--top", "nonsense"])
    assert r.exit_code == 1 and "no 'nonsense' finding" in r.output


def test_training_clips_without_folds_are_judged_by_their_neighbours(store, planted):
    fx, _ = planted
    with store.sessions() as s:
        train_yes = s.scalars(select(Clip.id).where(Clip.dataset_id == fx.dataset_id, Clip.split == "train",
                                                    Clip.label == "yes").order_by(Clip.id)).all()
        wrong = train_yes[1]  # sits among 'yes' clips in embedding space, filed as 'go'
        s.execute(update(Prediction).where(Prediction.run_id == fx.run_id, Prediction.clip_id == wrong)
                  .values(target="go"))
        s.commit()
        summary = analyze_run(store, fx.run_id)
        assert "by their neighbours' labels" in summary.label_scope
        row = s.get(ClipScore, (fx.run_id, wrong))
        assert row.label_issue and row.suggested_label == "yes"
        label = top_finding(s, fx.run_id, "label")
        assert label.stats["scope"]["train_clips_by_neighbors"] > 0
        summary = analyze_run(store, fx.run_id, train_without_oof="skip")
        assert "skipped" in summary.label_scope
        s.expire_all()
        assert not s.get(ClipScore, (fx.run_id, wrong)).label_issue
        assert s.get(ClipScore, (fx.run_id, wrong)).label_quality is None
