"""Clip metadata in the store: typed columns in manifest order, per-clip values, vectorised arrays."""

from __future__ import annotations

import numpy as np

from app.store.clips import clip_meta, meta_arrays
from app.store.datasets import meta_columns
from app.store.models import Clip, Dataset


def _clip(ds_id: int, path: str, meta: dict | None) -> Clip:
    return Clip(dataset_id=ds_id, path=path, label="a", word="a", split="train", speaker=None, utterance=None,
                sample_rate=8000, n_samples=800, duration_s=0.1, channels=1, content_hash=path, rms_dbfs=-20,
                peak=0.5, clipped_frac=0, lead_silence_ms=0, trail_silence_ms=0, end_energy_db=-60,
                cutoff_signal=False, meta=meta)


def test_meta_round_trips_in_order_with_types(store):
    cols = {"take": "number", "gender": "text", "native": "boolean"}
    with store.sessions() as s:
        ds = Dataset(name="m", root="/x", layout="manifest", status="ready", meta_columns=cols,
                     speaker_leakage="checked", source={"kind": "manifest"})
        s.add(ds)
        s.flush()
        clips = [_clip(ds.id, "a.wav", {"native": True, "gender": "female", "take": 3}),
                 _clip(ds.id, "b.wav", {"take": 1.5}), _clip(ds.id, "c.wav", None)]
        s.add_all(clips)
        s.commit()
        ids = [c.id for c in clips]
        ds_id = ds.id
    with store.sessions() as s:
        assert list(meta_columns(s, ds_id)) == ["take", "gender", "native"]
        assert list(clip_meta(s, ids[0]).items()) == [("take", 3), ("gender", "female"), ("native", True)]
        assert clip_meta(s, ids[2]) == {}
        assert s.get(Dataset, ds_id).speaker_leakage == "checked"
        arr = meta_arrays(s, ds_id, [ids[2], ids[0], ids[1], 10 ** 9])
    assert arr["take"].dtype == np.float64
    assert np.isnan(arr["take"][0]) and arr["take"][1] == 3 and arr["take"][2] == 1.5 and np.isnan(arr["take"][3])
    assert list(arr["gender"]) == [None, "female", None, None]
    assert list(arr["native"]) == [None, True, None, None]
