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


@pytest.mark.parametrize("name", ["melcnn", "m5"])
def test_front_end_stays_float32_under_bf16_autocast(name):
    # On CUDA the model runs under bf16 autocast (ml.infer.autocast_for). The STFT/resampling front
    # end must opt out: what reaches the first layer after it (melcnn's log-mels, m5's 8 kHz audio)
    # is float32 and equal to the input without autocast, while the layers do run in bf16 and stay
    # close to the float32 result.
    torch.manual_seed(0)
    model = build_model(TrainConfig(model=name), 7).eval()
    first = model.input_norm if name == "melcnn" else model.conv1
    seen = []
    first.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0]))
    x = 0.1 * torch.randn(3, 16000)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
    ref_front, front = seen
    assert front.dtype == torch.float32
    torch.testing.assert_close(front, ref_front)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), ref, rtol=0.1, atol=0.1)


def test_melcnn_channels_last_gives_the_same_outputs():
    # The trainer switches melcnn to channels_last on CUDA; the layout must not change the maths.
    torch.manual_seed(0)
    model = build_model(TrainConfig(), 7).eval()
    x = 0.1 * torch.randn(4, 16000)
    with torch.no_grad():
        ref_emb, ref = model.embed(x), model(x)
        model = model.to(memory_format=torch.channels_last)
        model.channels_last = True
        assert model.features(x).is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(model.embed(x), ref_emb, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-5)
