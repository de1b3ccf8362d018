"""The training loop and its input pipeline: overfitting, exact resume, the waveform cache, augmentation, folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.pipeline.run_spec import RunSpec
from ml.config import TrainConfig
from ml.data import Augmenter, DataError, batches, epoch_order, load_waveforms
from ml.infer import load_checkpoint, predict
from ml.train import TrainData, speaker_folds, train
from tests.conftest import tone, write_wav

QUIET = dict(time_shift_ms=0.0, noise_prob=0.0, freq_masks=0, time_masks=0, dropout=0.0, speed_perturb=0.0,
             label_smoothing=0.0)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


def _tones(n_per_class: int = 4, n_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for c in range(n_classes):
        for _ in range(n_per_class):
            x = tone(1.0, 300 + 500 * c, amp=0.3, start=0.2, stop=0.8) + rng.normal(0, 0.01, 16000)
            waves.append(np.round(x * 32767).astype(np.int16))
            labels.append(c)
    return np.stack(waves), np.array(labels, dtype=np.int64)


def test_train_overfits_a_handful_of_clips(tmp_path):
    waves, labels = _tones()
    idx = np.arange(len(labels))
    data = TrainData(waves, labels, idx, idx, ["a", "b", "c"])
    cfg = TrainConfig(epochs=15, batch_size=6, lr=5e-3, width=8, **QUIET)
    seen = []
    result = train(cfg, data, tmp_path / "run", torch.device("cpu"), on_epoch=seen.append, tb_dir=tmp_path / "tb")
    assert [s.epoch for s in seen] == list(range(1, 16))
    assert seen[-1].train_loss < 0.2 < seen[0].train_loss
    lm = load_checkpoint(result.best_path, torch.device("cpu"))
    probs, embs = predict(lm.model, waves, torch.device("cpu"))
    assert (probs.argmax(1) == labels).all()
    assert embs.shape == (12, lm.embedding_dim)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert lm.config == cfg and lm.classes == ["a", "b", "c"]
    assert any((tmp_path / "tb").iterdir())  # TensorBoard events written


class _Stop(Exception):
    pass


@pytest.mark.parametrize("model", ["melcnn", "m5"])
def test_train_resume_ends_with_the_same_weights(tmp_path, model):
    waves, labels = _tones(n_per_class=5)
    noise = np.random.default_rng(1).normal(0, 0.1, 40000).astype(np.float32)
    data = TrainData(waves, labels, np.arange(12), np.arange(12, 15), ["a", "b", "c"], noise)
    cfg = TrainConfig(model=model, epochs=3, batch_size=4, width=8, speed_perturb=0.1)  # all augmentation on
    whole = train(cfg, data, tmp_path / "whole", torch.device("cpu"))

    def stop_after_first(stats):
        if stats.epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        train(cfg, data, tmp_path / "cut", torch.device("cpu"), on_epoch=stop_after_first)
    resumed = train(cfg, data, tmp_path / "cut", torch.device("cpu"), resume=True)
    assert resumed.epochs_done == 3 and [h.epoch for h in resumed.history] == [1, 2, 3]
    a = torch.load(whole.last_path, weights_only=False)["model"]
    b = torch.load(resumed.last_path, weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_train_dry_run_takes_one_batch(tmp_path):
    waves, labels = _tones()
    idx = np.arange(len(labels))
    steps = []
    cfg = TrainConfig(epochs=5, batch_size=4, width=8, dry_run=True)
    r = train(cfg, TrainData(waves, labels, idx, idx, ["a", "b", "c"]), tmp_path, torch.device("cpu"),
              on_step=lambda *a: steps.append(a))
    assert r.epochs_done == 1 and len(steps) == 1 and r.best_path.is_file()


@pytest.mark.slow
def test_train_compiled_matches_eager_and_saves_a_plain_checkpoint(tmp_path):
    # --compile (torch.compile with inductor, which on CPU builds C++ kernels): the same losses and
    # weights as eager to float tolerance, and a checkpoint that loads into an uncompiled model.
    waves, labels = _tones()
    idx = np.arange(len(labels))
    data = TrainData(waves, labels, idx, idx, ["a", "b", "c"])
    runs = {}
    for compiled in (False, True):
        cfg = TrainConfig(epochs=2, batch_size=6, width=8, compile=compiled, **QUIET)
        runs[compiled] = train(cfg, data, tmp_path / str(compiled), torch.device("cpu"))
    eager, comp = runs[False], runs[True]
    for a, b in zip(eager.history, comp.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3, abs=1e-4)
        assert a.val_loss == pytest.approx(b.val_loss, rel=1e-3, abs=1e-4)
    assert eager.state.keys() == comp.state.keys()  # no torch.compile "_orig_mod." prefixes
    for k in eager.state:
        torch.testing.assert_close(comp.state[k], eager.state[k], rtol=1e-3, atol=1e-4)
    lm = load_checkpoint(comp.best_path, torch.device("cpu"))
    probs, _ = predict(lm.model, waves, torch.device("cpu"))
    assert probs.shape == (12, 3) and lm.config.compile


@pytest.mark.parametrize("model", ["melcnn", "m5"])
def test_bf16_autocast_path_trains_and_predicts_in_float32(tmp_path, monkeypatch, model):
    # The CUDA path (bf16 autocast in train, evaluate and predict) exercised on the CPU, where
    # autocast_for normally does nothing: the same loop must learn, and what leaves the model for
    # the store (probabilities, embeddings) must be float32 numpy, since numpy has no bf16.
    import contextlib

    import ml.infer
    import ml.train

    calls = []

    def cpu_bf16(device, enabled=True):
        calls.append(enabled)
        return torch.autocast("cpu", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()

    monkeypatch.setattr(ml.train, "autocast_for", cpu_bf16)
    monkeypatch.setattr(ml.infer, "autocast_for", cpu_bf16)
    waves, labels = _tones()
    idx = np.arange(len(labels))
    cfg = TrainConfig(model=model, epochs=15, batch_size=6, lr=5e-3 if model == "melcnn" else 1e-2, width=8,
                      **QUIET)
    result = train(cfg, TrainData(waves, labels, idx, idx, ["a", "b", "c"]), tmp_path, torch.device("cpu"))
    assert calls and all(calls)  # the autocast branch really ran
    assert result.history[-1].train_loss < 0.2 < result.history[0].train_loss
    assert all(v.dtype == torch.float32 for v in result.state.values() if v.is_floating_point())
    lm = load_checkpoint(result.best_path, torch.device("cpu"))
    probs, embs = predict(lm.model, waves, torch.device("cpu"))
    assert probs.dtype == np.float32 and embs.dtype == np.float32
    assert embs.shape == (12, lm.embedding_dim)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert (probs.argmax(1) == labels).all()


def test_waveform_cache_is_reused_and_falls_back_when_root_is_unwritable(tmp_path):
    root = tmp_path / "ds"
    paths = []
    for i in range(5):
        write_wav(root / "yes" / f"s{i}_nohash_0.wav", tone(0.5 + 0.1 * i, 440 + i))
        paths.append(f"yes/s{i}_nohash_0.wav")
    arr, where, hit = load_waveforms(root, paths, fallback_dir=tmp_path / "cache")
    assert not hit and where.parent == root / ".earmark-cache"
    assert arr.shape == (5, 16000) and arr.dtype == np.int16
    assert (arr[0, 8000:] == 0).all() and arr[0, :8000].any()  # 0.5 s clip padded with zeros
    arr2, where2, hit2 = load_waveforms(root, paths, fallback_dir=tmp_path / "cache")
    assert hit2 and where2 == where and np.array_equal(arr, arr2)

    root2 = tmp_path / "ro"
    write_wav(root2 / "no" / "a_nohash_0.wav", tone(1.0, 300))
    (root2 / ".earmark-cache").write_text("not a folder")  # the root's cache folder cannot be created
    arr3, where3, hit3 = load_waveforms(root2, ["no/a_nohash_0.wav"], fallback_dir=tmp_path / "cache")
    assert not hit3 and where3.parent == tmp_path / "cache" and arr3.shape == (1, 16000)


def test_waveform_cache_names_the_broken_clip(tmp_path):
    root = tmp_path / "ds"
    write_wav(root / "yes" / "a_nohash_0.wav", tone())
    (root / "yes" / "b_nohash_0.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(DataError, match="b_nohash_0.wav"):
        load_waveforms(root, ["yes/a_nohash_0.wav", "yes/b_nohash_0.wav"], fallback_dir=tmp_path / "c")
    assert not list((root / ".earmark-cache").glob("*.npy"))  # nothing half-written


def test_augmenter_mixes_noise_at_the_drawn_snr_and_is_reproducible():
    x = torch.from_numpy(np.tile(tone(1.0, 500), (4, 1)))
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.2, 50000).astype(np.float32))
    aug = Augmenter(16000, time_shift_ms=0, noise=noise, noise_prob=1.0, snr_db=(10.0, 10.0))
    y = aug(x.clone(), torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(x.square().mean(1) / (y - x).square().mean(1))
    torch.testing.assert_close(snr, torch.full((4,), 10.0), atol=0.05, rtol=0)
    shift = Augmenter(16000, time_shift_ms=100, speed_perturb=0.1)
    a = shift(x.clone(), torch.Generator().manual_seed(5))
    b = shift(x.clone(), torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_epoch_order_splits_one_permutation_across_ranks():
    r0, r1 = epoch_order(11, seed=3, epoch=2, rank=0, world_size=2), epoch_order(11, 3, 2, 1, 2)
    assert len(r0) == len(r1) == 5 and not set(r0.tolist()) & set(r1.tolist())
    assert torch.equal(epoch_order(11, 3, 2), epoch_order(11, 3, 2))
    assert not torch.equal(epoch_order(11, 3, 2), epoch_order(11, 3, 3))
    assert [len(b) for b in batches(torch.arange(9), 4)] == [4, 5]  # no batch of one for BatchNorm


def test_speaker_folds_keep_speakers_together_and_balance_sizes():
    speakers = [f"s{i % 13}" for i in range(130)] + [None] * 7
    folds = speaker_folds(speakers, 5, seed=0)
    assert set(folds) == set(range(5))
    for s in {x for x in speakers if x}:
        assert len({folds[i] for i, x in enumerate(speakers) if x == s}) == 1
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 10


def test_train_config_rejects_bad_values():
    with pytest.raises(ValueError, match="model"):
        TrainConfig(model="gpt").validate()
    with pytest.raises(ValueError, match="folds"):
        RunSpec(folds=1).validate()  # folds are the app's (app.pipeline.run_spec), not the model's
    with pytest.raises(ValueError, match="cutoff_policy"):
        RunSpec(cutoff_policy="maybe").validate()
    old = {**TrainConfig().to_dict(), "apply_flags": True, "cutoff_policy": "exclude", "folds": 5}
    assert TrainConfig.from_dict(old) == TrainConfig()  # a checkpoint from before the split still loads
    assert TrainConfig.from_dict({**TrainConfig().to_dict(), "future_field": 1}) == TrainConfig()


def test_checkpoint_keeps_best_by_validation_loss(tmp_path):
    waves, labels = _tones()
    idx = np.arange(len(labels))
    cfg = TrainConfig(epochs=3, batch_size=6, width=8, **QUIET)
    r = train(cfg, TrainData(waves, labels, idx, idx, ["a", "b", "c"]), Path(tmp_path), torch.device("cpu"))
    best = torch.load(r.best_path, weights_only=False)
    assert best["epoch"] == r.best_epoch
    assert best["best_val_loss"] == min(h.val_loss for h in r.history)
    assert best["config"] == cfg.to_dict()
