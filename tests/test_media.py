"""Audio by clip id with HTTP Range, and the spectrogram / waveform images rendered without torch."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from PIL import Image

from app.store.models import Clip, Dataset
from app.web import media
from app.web.main import create_app
from tests.conftest import tone, write_wav
from tests.factories import make_run


@pytest.fixture
def site(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=20)
    return TestClient(create_app(sqlite_store.settings)), fx, sqlite_store


def _file(st, cid) -> Path:
    with st.sessions() as s:
        clip = s.get(Clip, cid)
        return Path(s.get(Dataset, clip.dataset_id).root) / clip.path


def test_audio_whole_file_and_ranges(site):
    client, fx, st = site
    cid = fx.clip_ids[0]
    raw = _file(st, cid).read_bytes()
    r = client.get(f"/media/clips/{cid}/audio.wav")
    assert r.status_code == 200 and r.content == raw and r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "audio/wav"
    for header, (start, end) in {"bytes=0-99": (0, 99), "bytes=100-": (100, len(raw) - 1),
                                 "bytes=-44": (len(raw) - 44, len(raw) - 1),
                                 f"bytes=10-{len(raw) + 50}": (10, len(raw) - 1)}.items():
        r = client.get(f"/media/clips/{cid}/audio.wav", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(raw)}"
        assert r.content == raw[start:end + 1]


@pytest.mark.parametrize("header", ["bytes=999999-", "bytes=50-10", "bytes=abc", "items=0-1", "bytes=-0",
                                    "bytes=0-1,5-9"])
def test_audio_unsatisfiable_range_is_416(site, header):
    client, fx, st = site
    size = _file(st, fx.clip_ids[0]).stat().st_size
    r = client.get(f"/media/clips/{fx.clip_ids[0]}/audio.wav", headers={"Range": header})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"


def test_media_unknown_or_bad_ids(site):
    client, _, _ = site
    assert client.get("/media/clips/999999/audio.wav").status_code == 404
    assert client.get("/media/clips/0/audio.wav").status_code == 422
    assert client.get("/media/clips/..%2F..%2Fetc%2Fpasswd/audio.wav").status_code in (404, 422)
    assert client.get("/media/clips/1/spectrogram.png?size=huge").status_code == 422


def test_media_never_leaves_the_data_set_root(site, tmp_path):
    client, fx, st = site
    secret = tmp_path / "secret.wav"
    write_wav(secret, tone())
    with st.sessions() as s:
        s.get(Clip, fx.clip_ids[1]).path = "../secret.wav"
        s.commit()
    r = client.get(f"/media/clips/{fx.clip_ids[1]}/audio.wav")
    assert r.status_code == 404 and "leaves the data set folder" in r.json()["detail"]


def test_missing_file_is_404_with_a_hint(site):
    client, fx, st = site
    _file(st, fx.clip_ids[2]).unlink()
    r = client.get(f"/media/clips/{fx.clip_ids[2]}/spectrogram.png")
    assert r.status_code == 404 and "re-ingest" in r.json()["hint"]


def test_corrupt_wav_gives_a_clear_422(site):
    client, fx, st = site
    _file(st, fx.clip_ids[3]).write_bytes(b"RIFF....WAVEjunkjunkjunk")
    r = client.get(f"/media/clips/{fx.clip_ids[3]}/spectrogram.png")
    assert r.status_code == 422 and "decode" in r.json()["title"]


def test_spectrogram_and_waveform_are_pngs_and_cached(site):
    client, fx, st = site
    cid = fx.clip_ids[4]
    for size, dims in media.SIZES.items():
        r = client.get(f"/media/clips/{cid}/spectrogram.png?size={size}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size == dims
    wave = client.get(f"/media/clips/{cid}/waveform.png")
    assert Image.open(io.BytesIO(wave.content)).size == media.WAVE_SIZE
    cached = sorted(p.name for p in (st.settings.cache_dir / "img").rglob("*.png"))
    assert len(cached) == 3
    # later requests are answered from the cache, not re-rendered
    small = next(p for p in (st.settings.cache_dir / "img").rglob("*-mel-small.png"))
    marker = small.read_bytes() + b"cached"
    small.write_bytes(marker)
    assert client.get(f"/media/clips/{cid}/spectrogram.png?size=small").content == marker


def test_log_mel_puts_a_tone_in_the_right_band():
    sr = 16000
    low = media.log_mel(tone(freq=300.0, amp=0.5), sr)
    high = media.log_mel(tone(freq=4000.0, amp=0.5), sr)
    assert low.shape == high.shape and low.shape[0] == media.DISPLAY.n_mels
    assert int(np.argmax(low.mean(axis=1))) < int(np.argmax(high.mean(axis=1)))
    assert low.max() - low.min() <= media.TOP_DB + 1e-3


def test_log_mel_of_a_cut_word_is_loud_at_the_end():
    x = tone(freq=800.0, amp=0.5, start=0.6)  # a word that runs into the end of the clip
    db = media.log_mel(x, 16000)
    # the loudest band at the end is far above anything in the silent first 200 ms
    assert db[:, -5:].max(axis=0).min() > db[:, :20].max() + 30


def test_model_view_is_exactly_what_the_model_hears():
    """The clip page's 'model' spectrogram is the run's own front end (ml.features.LogMel), to float precision."""
    import torch

    from ml.config import TrainConfig
    from ml.features import LogMel

    cfg = TrainConfig(n_mels=40, win_ms=30.0, hop_ms=10.0)
    fe = media.model_front_end(cfg.to_dict())
    assert (fe.n_mels, fe.win, fe.hop, fe.n_fft) == (40, 480, 160, 512)
    assert "40 mel bands, 30 ms window" in fe.label and "not the model" in media.DISPLAY.label
    x = tone(freq=700.0, amp=0.4, start=0.2, stop=0.7) + 0.01 * np.random.default_rng(0).standard_normal(16000)
    ours = media.log_mel(x.astype(np.float32), 16000, fe)
    theirs = LogMel(16000, cfg.n_mels, cfg.win_samples, cfg.hop_samples, cfg.n_fft)(
        torch.from_numpy(x.astype(np.float32))[None])[0].numpy()
    assert ours.shape == theirs.shape == (40, 101)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)
    # the display spectrogram is another picture (64 bands, dB), and says so
    assert media.log_mel(x, 16000).shape[0] == 64
    assert media.model_front_end(TrainConfig(model="m5").to_dict()) is None  # a raw-waveform model has none


def test_clip_page_captions_each_spectrogram(site):
    client, fx, _ = site
    cid = fx.clip_ids[0]
    page = client.get(f"/api/clips/{cid}?run={fx.run_id}").json()
    views = {v["name"]: v for v in page["spectrograms"]}
    assert set(views) == {"display", "model"} and "not the model's input" in views["display"]["label"]
    assert views["model"]["url"] == f"/media/clips/{cid}/spectrogram.png?size=large&view=model&run={fx.run_id}"
    html = client.get(f"/clips/{cid}?run={fx.run_id}").text
    assert str(escape(views["display"]["label"])) in html and str(escape(views["model"]["label"])) in html
    png = client.get(views["model"]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content != client.get(views["display"]["url"]).content
