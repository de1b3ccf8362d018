"""MelCNN and M5: parameter budget, shapes, embed() as the penultimate layer, the m5 8 kHz front end."""

from __future__ import annotations

import pytest
import torch

from ml.config import TrainConfig
from ml.models import M5, MelCNN, build_model, count_params


def test_melcnn_default_stays_under_300k_parameters():
    model = build_model(TrainConfig(), 35)
    assert isinstance(model, MelCNN)
    assert 100_000 < count_params(model) <= 300_000
    assert model.embedding_dim == 96


@pytest.mark.parametrize("name", ["melcnn", "m5"])
def test_model_forward_is_head_of_embed(name):
    torch.manual_seed(0)
    model = build_model(TrainConfig(model=name), 12).eval()
    x = 0.1 * torch.randn(3, 16000)
    with torch.no_grad():
        emb = model.embed(x)
        logits = model(x)
    assert emb.shape == (3, model.embedding_dim)
    assert logits.shape == (3, 12)
    torch.testing.assert_close(logits, model.head(emb))


def test_m5_consumes_8khz_audio():
    model = M5(10).eval()
    seen = {}

    def hook(_module, inp, _out):
        seen["n"] = inp[0].shape[-1]

    model.conv1.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(2, 16000))
    assert seen["n"] == 8000
    assert count_params(model) < 30_000


def test_melcnn_spec_augment_only_in_training():
    torch.manual_seed(0)
    model = build_model(TrainConfig(), 5)
    x = 0.1 * torch.randn(2, 16000)
    model.eval()
    a, b = model.features(x), model.features(x)
    torch.testing.assert_close(a, b)
    model.train()
    torch.manual_seed(1)
    c = model.features(x)
    assert not torch.equal(c, a)
