"""Run files (app.run_files): every format in, the Parquet format out, every bad input refused.

Real files in a temporary folder, written by pyarrow, pandas, numpy and the CSV a person would
type; nothing is mocked. The store is not involved: this is the layer the import stands on.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.errors import EarmarkError
from app.run_files import (
    from_arrays,
    from_dataframe,
    map_classes,
    match_keys,
    read_csv,
    read_npz,
    read_parquet,
    read_run_file,
    write_parquet,
)
from ml.speech_commands import scan, task_named
from tests.conftest import SHARED_SAMPLE, skip_or_fail

CLASSES = ["yes", "no", "up"]
WORDS_35 = ["backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
            "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
            "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero"]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _outputs(n: int = 6, c: int = 3, d: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    paths = np.array([f"{CLASSES[i % 3]}/spk{i}_nohash_0.wav" for i in range(n)], dtype=object)
    return paths, _softmax(rng.normal(size=(n, c))), rng.normal(size=(n, d)).astype(np.float32)


def _parquet(tmp_path, cols: dict, classes=CLASSES, model=None, name="run.parquet"):
    meta = {} if classes is None else {b"earmark.classes": json.dumps(classes).encode()}
    if model:
        meta[b"earmark.model"] = model.encode()
    path = tmp_path / name
    pq.write_table(pa.table(cols).replace_schema_metadata(meta), path)
    return path


def _refused(fn, *args, **kw) -> EarmarkError:
    with pytest.raises(EarmarkError) as info:
        fn(*args, **kw)
    err = info.value
    assert err.title and err.hint and err.status == 400, err.as_dict()
    return err


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(a.view(np.uint32),
                                                                                      b.view(np.uint32))


# ---------------------------------------------------------------- formats in, Parquet out

def test_run_files_export_then_read_is_bit_exact(tmp_path):
    paths, probs, emb = _outputs(n=50, d=128)
    oof = np.arange(50) % 2 == 0
    oof_probs = np.where(oof[:, None], _softmax(np.random.default_rng(1).normal(size=(50, 3))), np.nan)
    run = from_arrays(paths, classes=CLASSES, probs=probs, embeddings=emb, oof=oof, oof_probs=oof_probs,
                      model="kws-v3", model_version="2026.11", task=None)
    loss = np.arange(50, dtype=np.float32)
    out = write_parquet(tmp_path / "export.parquet", run, target=[CLASSES[i % 3] for i in range(50)], loss=loss,
                        agree=run.pred == np.arange(50) % 3)
    back = read_parquet(out)
    assert _same_bits(back.probs, run.probs) and _same_bits(back.embeddings, emb)
    assert _same_bits(back.confidence, run.confidence) and np.array_equal(back.pred, run.pred)
    assert np.array_equal(np.isnan(back.oof_probs), np.isnan(run.oof_probs))
    assert _same_bits(back.oof_probs[oof], run.oof_probs[oof]) and np.array_equal(back.oof, oof)
    assert list(back.keys) == list(paths) and back.classes == tuple(CLASSES) and back.key_kind == "path"
    assert (back.model, back.model_version, back.fmt) == ("kws-v3", "2026.11", "parquet")
    assert back.source == str(out) and back.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    df = pd.read_parquet(out)  # the extras are there for pandas users, and list<float32> reads as arrays
    assert list(df.columns[:3]) == ["path", "probs", "pred"] and df["loss"].tolist() == loss.tolist()
    assert pq.read_schema(out).field("embedding").type == pa.list_(pa.float32())
    assert [p for p in tmp_path.iterdir()] == [out]  # no temporary file left behind


def test_run_files_parquet_from_pyarrow_with_metadata_or_classes_argument(tmp_path):
    paths, probs, emb = _outputs()
    cols = {"path": paths.tolist(), "probs": probs.tolist(), "embedding": emb.tolist(), "score": [1] * 6}
    run = read_parquet(_parquet(tmp_path, cols, model="wav2vec2-ft"))
    assert run.model == "wav2vec2-ft" and run.classes == tuple(CLASSES) and run.missing == ()
    assert np.allclose(run.probs, probs) and run.embeddings.shape == (6, 4) and run.embeddings.dtype == np.float32
    bare = read_parquet(_parquet(tmp_path, cols, classes=None, name="bare.parquet"), classes=CLASSES, model="m")
    assert bare.classes == tuple(CLASSES) and bare.model == "m"
    assert np.array_equal(bare.pred, probs.argmax(1))
    chunked = tmp_path / "groups.parquet"  # several row groups: the list columns arrive in chunks
    pq.write_table(pa.table(cols).replace_schema_metadata({b"earmark.classes": json.dumps(CLASSES).encode()}),
                   chunked, row_group_size=2)
    assert pq.ParquetFile(chunked).num_row_groups == 3
    assert _same_bits(read_parquet(chunked).embeddings, run.embeddings)
    fixed = {"path": paths.tolist(), "probs": probs.tolist(),  # as HF datasets writes a Sequence of known length
             "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 4),
             "oof_probs": pa.array([None] * 6, pa.list_(pa.float32()))}
    both = read_parquet(_parquet(tmp_path, fixed, name="fixed.parquet"))
    assert _same_bits(both.embeddings, emb) and both.oof_probs is None  # a column of nulls only: no oof


def test_run_files_logits_are_softmaxed(tmp_path):
    logits = np.random.default_rng(3).normal(scale=4, size=(6, 3)).astype(np.float32)
    paths = _outputs()[0]
    run = read_parquet(_parquet(tmp_path, {"path": paths.tolist(), "logits": logits.tolist()}))
    assert np.allclose(run.probs, _softmax(logits), atol=1e-6) and np.allclose(run.probs.sum(1), 1, atol=1e-6)
    assert np.array_equal(run.pred, logits.argmax(1))
    # raw outputs in a `probs` column: refused with a pointer to --logits, accepted with logits=True
    path = _parquet(tmp_path, {"path": paths.tolist(), "probs": logits.tolist()}, name="raw.parquet")
    err = _refused(read_parquet, path)
    assert "not probabilities" in err.title and "--logits" in err.hint and "row 1 sums to" in err.detail
    assert np.allclose(read_parquet(path, logits=True).probs, run.probs)


def test_run_files_pred_and_confidence_alone_make_a_reduced_run(tmp_path):
    paths = _outputs()[0]
    cols = {"path": paths.tolist(), "pred": ["yes", "no", "up", "up", "no", "yes"],
            "confidence": [0.9, 0.8, 0.7, 0.6, 0.5, 0.99]}
    run = read_parquet(_parquet(tmp_path, cols))
    assert run.probs is None and list(run.pred_names) == cols["pred"]
    assert "label issues" in run.missing and "loss" in run.missing and "cloud" in run.missing
    back = read_parquet(write_parquet(tmp_path / "again.parquet", run))
    assert back.probs is None and _same_bits(back.confidence, run.confidence) and np.array_equal(back.pred, run.pred)


def test_run_files_npz_as_cleanlab_users_have_it(tmp_path):
    paths, probs, emb = _outputs()
    np.savez(tmp_path / "run.npz", paths=paths.astype(str), probs=probs, embeddings=emb, classes=np.array(CLASSES))
    run = read_run_file(tmp_path / "run.npz")
    assert run.fmt == "npz" and _same_bits(run.probs, probs) and _same_bits(run.embeddings, emb)
    assert list(run.keys) == list(paths) and run.classes == tuple(CLASSES)
    np.savez(tmp_path / "logits.npz", paths=paths.astype(str), logits=np.log(probs), classes=np.array(CLASSES))
    assert np.allclose(read_npz(tmp_path / "logits.npz").probs, probs, atol=1e-6)
    np.savez(tmp_path / "obj.npz", paths=paths, probs=probs, classes=np.array(CLASSES))  # object array: pickled
    assert "dtype=str" in _refused(read_npz, tmp_path / "obj.npz").hint
    np.savez(tmp_path / "other.npz", x=probs)
    assert "x" in _refused(read_npz, tmp_path / "other.npz").detail


def test_run_files_csv_with_prob_columns(tmp_path):
    (tmp_path / "run.csv").write_text("path,pred,prob_yes,prob_no,prob_up\n"
                                      "yes/a_nohash_0.wav,yes,0.7,0.2,0.1\n"
                                      "no/b_nohash_0.wav,no,0.1,0.8,0.1\n"
                                      "up\\c_nohash_0.wav,up,0.25,0.25,0.5\n")
    run = read_run_file(tmp_path / "run.csv")
    assert run.fmt == "csv" and run.classes == ("yes", "no", "up") and list(run.pred_names) == ["yes", "no", "up"]
    assert run.keys[2] == "up/c_nohash_0.wav"  # Windows separators become '/'
    reordered = read_csv(tmp_path / "run.csv", classes=["up", "yes", "no"])
    assert reordered.classes == ("up", "yes", "no") and np.allclose(reordered.probs[0], [0.1, 0.7, 0.2])
    (tmp_path / "small.csv").write_text("path,pred,confidence\nyes/a.wav,yes,0.9\n")
    assert read_csv(tmp_path / "small.csv", classes=CLASSES).probs is None


def test_run_files_dataframe_numpy_and_torch(tmp_path):
    paths, probs, emb = _outputs()
    df = pd.DataFrame({"path": paths, "probs": list(probs), "embedding": list(emb)})
    run = from_dataframe(df, classes=CLASSES, model="sk-logreg")
    assert run.fmt == "dataframe" and _same_bits(run.probs, probs) and _same_bits(run.embeddings, emb)
    wide = pd.DataFrame({"path": paths, **{f"prob_{c}": probs[:, i] for i, c in enumerate(CLASSES)}})
    assert _same_bits(from_dataframe(wide).probs, probs)
    assert list(from_dataframe(wide.set_index("path")).keys) == list(paths)  # the index named path counts
    torch = pytest.importorskip("torch")
    t = from_arrays(list(paths), classes=CLASSES, logits=torch.log(torch.from_numpy(probs)),
                    embeddings=torch.from_numpy(emb).requires_grad_(True))
    assert np.allclose(t.probs, probs, atol=1e-6) and _same_bits(t.embeddings, emb)
    bf16 = from_arrays(paths, classes=CLASSES, probs=torch.from_numpy(probs).bfloat16())  # numpy has no bfloat16
    assert np.allclose(bf16.probs, probs, atol=1e-2)
    ids = from_arrays(np.arange(6), key_kind="clip_id", classes=CLASSES, probs=probs)
    assert ids.keys.dtype == np.int64 and ids.key_kind == "clip_id"
    again = read_parquet(write_parquet(tmp_path / "ids.parquet", ids))
    assert again.key_kind == "clip_id" and again.keys.tolist() == list(range(6))
    df.to_parquet(tmp_path / "pandas.parquet")  # what a pandas user writes: list columns, no earmark metadata
    assert _same_bits(read_parquet(tmp_path / "pandas.parquet", classes=CLASSES).embeddings, emb)


def test_run_files_module_imports_neither_store_nor_torch():
    code = ("import sys, app.run_files; bad = {'sqlalchemy', 'torch', 'app.store'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- bad input

def test_run_files_refuse_duplicate_rows():
    paths, probs, _ = _outputs()
    paths[3] = paths[0]
    paths[5] = "./" + paths[0]  # the same file once normalised
    err = _refused(from_arrays, paths, classes=CLASSES, probs=probs)
    assert err.title == "duplicate rows: 1 path values appear more than once" and "3 rows" in err.detail and paths[0] in err.detail


@pytest.mark.parametrize("column", ["probs", "embedding"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_run_files_refuse_nan_and_infinity(tmp_path, column, value):
    paths, probs, emb = _outputs()
    (probs if column == "probs" else emb)[[1, 4]] = value
    err = _refused(read_parquet, _parquet(tmp_path, {"path": paths.tolist(), "probs": probs.tolist(),
                                                     "embedding": emb.tolist()}))
    assert "NaN or infinity in 2 rows" in err.title and f"row 2 ({paths[1]})" in err.detail and "row 5" in err.detail


def test_run_files_refuse_mixed_embedding_dimensions(tmp_path):
    paths, probs, emb = _outputs()
    rows = [e.tolist() for e in emb]
    rows[2] = rows[2][:3]
    err = _refused(read_parquet, _parquet(tmp_path, {"path": paths.tolist(), "probs": probs.tolist(),
                                                     "embedding": rows}))
    assert "mixed lengths" in err.title and "5 rows of 4" in err.detail and f"row 3 ({paths[2]})" in err.detail
    err = _refused(read_parquet, _parquet(tmp_path, {"path": paths.tolist(), "probs": probs.tolist(),
                                                     "embedding": pa.array([[]] * 6, pa.list_(pa.float32()))},
                                   name="empty.parquet"))
    assert "`embedding` lists are empty" in err.title
    holes = [r if i != 4 else None for i, r in enumerate(emb.tolist())]
    err = _refused(read_parquet, _parquet(tmp_path, {"path": paths.tolist(), "probs": probs.tolist(),
                                                     "embedding": holes}, name="holes.parquet"))
    assert "missing in 1 rows" in err.title and "row 5" in err.detail
    df = pd.DataFrame({"path": paths, "probs": list(probs), "embedding": [np.asarray(r) for r in rows]})
    assert "mixed lengths" in _refused(from_dataframe, df, classes=CLASSES).title
    assert "mixed lengths" in _refused(from_arrays, paths, classes=CLASSES, probs=probs, embeddings=rows).title


@pytest.mark.parametrize(("cols", "fragment"), [
    ({"path": [f"a{i}.wav" for i in range(3)], "probs": [["0.5", "0.5", "0"]] * 3}, "not a list of floats"),
    ({"path": [1, 2, 3], "probs": [[0.5, 0.5, 0.0]] * 3}, "`path` is int64"),
    ({"clip_id": ["1", "2", "3"], "probs": [[0.5, 0.5, 0.0]] * 3}, "`clip_id` is string"),
    ({"path": ["a", "b", "c"], "pred": ["yes"] * 3, "confidence": ["high"] * 3}, "not numbers"),
    ({"path": ["a", "b", "c"], "probs": [0.5, 0.2, 0.1]}, "not a list of floats"),
])
def test_run_files_refuse_wrong_dtypes(tmp_path, cols, fragment):
    assert fragment in _refused(read_parquet, _parquet(tmp_path, cols)).title


def test_run_files_refuse_empty_files(tmp_path):
    (tmp_path / "zero.parquet").write_bytes(b"")
    assert "empty" in _refused(read_parquet, tmp_path / "zero.parquet").title
    empty = pa.table({"path": pa.array([], pa.string()), "probs": pa.array([], pa.list_(pa.float32()))})
    pq.write_table(empty.replace_schema_metadata({b"earmark.classes": b'["yes","no","up"]'}), tmp_path / "e.parquet")
    assert "no rows" in _refused(read_parquet, tmp_path / "e.parquet").title
    (tmp_path / "head.csv").write_text("path,prob_yes,prob_no\n")
    assert "no rows" in _refused(read_csv, tmp_path / "head.csv").title
    assert "no rows" in _refused(from_arrays, [], classes=CLASSES, probs=np.zeros((0, 3))).title


def test_run_files_refuse_parquet_without_the_columns_and_name_what_it_has(tmp_path):
    err = _refused(read_parquet, _parquet(tmp_path, {"file": ["a.wav"], "scores": [[1.0, 0.0, 0.0]]}))
    assert "does not have the run-file columns" in err.title and "file, scores" in err.detail
    assert "`probs`" in err.hint and "`path`" in err.hint
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    assert "not a readable Parquet file" in _refused(read_parquet, tmp_path / "junk.parquet").title
    assert "unknown run-file type" in _refused(read_run_file, tmp_path / "run.json").title


def test_run_files_refuse_class_lists_that_do_not_fit(tmp_path):
    paths, probs, _ = _outputs()
    cols = {"path": paths.tolist(), "probs": probs.tolist()}
    err = _refused(read_parquet, _parquet(tmp_path, cols, classes=["yes", "no"]))
    assert "3 columns for 2 classes" in err.title
    err = _refused(read_parquet, _parquet(tmp_path, cols, classes=None, name="nometa.parquet"))
    assert "class order is missing" in err.title and "--classes" in err.hint and "earmark.classes" in err.hint
    err = _refused(read_parquet, _parquet(tmp_path, cols), classes=["up", "no", "yes"])
    assert "differ from the file's" in err.title
    err = _refused(read_parquet, _parquet(tmp_path, cols, classes={"yes": 0}, name="dict.parquet"))
    assert "not a JSON list" in err.title and "json.dumps" in err.hint
    bad = {"path": paths.tolist(), "pred": ["yes", "maybe", "no", "up", "up", "up"], "confidence": [0.5] * 6}
    err = _refused(read_parquet, _parquet(tmp_path, bad, name="pred.parquet"))
    assert "1 predictions are not among the 3 classes" in err.title and "row 2" in err.detail


# ---------------------------------------------------------------- classes and keys against a data set

def test_run_files_12_class_model_on_35_words_maps_the_rest_to_unknown(tmp_path):
    v12 = task_named("v1-12").classes(WORDS_35)
    paths = np.array([f"{w}/s_nohash_0.wav" for w in WORDS_35], dtype=object)
    probs = _softmax(np.random.default_rng(0).normal(size=(35, 12)))
    run = from_arrays(paths, classes=v12, probs=probs)
    err = _refused(map_classes, run, WORDS_35)  # no map given: refused, naming both sides
    assert "bed" in err.detail and "_unknown_" in err.detail and "v1-12" in err.hint
    cmap = map_classes(run, WORDS_35 + ["_background_noise_"], task="v1-12")
    assert cmap.task == "v1-12" and cmap.unused == ("_silence_",)
    assert cmap.targets["bed"] == "_unknown_" and cmap.targets["yes"] == "yes" and len(cmap.targets) == 35
    idx = cmap.target_index(WORDS_35)
    assert [v12[i] for i in idx] == [w if w in v12 else "_unknown_" for w in WORDS_35]
    assert cmap.target_index(["yes", "not-a-label"]).tolist() == [0, -1]
    # The file can name its map (an exported 12-class run), and a model missing a class is refused.
    tagged = read_parquet(write_parquet(tmp_path / "v12.parquet", from_arrays(paths, classes=v12, probs=probs,
                                                                               task="v1-12")))
    assert map_classes(tagged, WORDS_35).task == "v1-12"
    ten = from_arrays(paths, classes=v12[:10], probs=_softmax(np.ones((35, 10))))
    err = _refused(map_classes, ten, WORDS_35, task=task_named("v1-12"))
    assert "_unknown_" in err.title and "bed" in err.detail
    assert "unknown class map" in _refused(map_classes, run, WORDS_35, task="v2-99").title


def test_run_files_class_map_without_a_task_needs_the_same_labels():
    paths, probs, _ = _outputs()
    run = from_arrays(paths, classes=CLASSES, probs=probs)
    assert map_classes(run, ["up", "no", "yes"]).targets == {"up": "up", "no": "no", "yes": "yes"}
    err = _refused(map_classes, run, ["yes", "no", "down"])
    assert "labels the model cannot predict: down" in err.detail and "no clip is filed under: up" in err.detail
    assert map_classes(run, ["yes", "no"], extra_ok={"up"}).unused == ("up",)


def test_run_files_keys_match_clips_and_coverage_is_counted():
    clip_ids = np.array([11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    clip_paths = [f"{CLASSES[i % 3]}/spk{i}_nohash_0.wav" for i in range(10)]
    paths, probs, _ = _outputs(n=7)
    order = np.array([6, 0, 3, 1, 5, 2, 4])
    run = from_arrays(paths[order], classes=CLASSES, probs=probs)
    m = match_keys(run, clip_ids, clip_paths)
    assert m.clip_ids.tolist() == (clip_ids[order]).tolist() and m.rows.tolist() == order.tolist()
    assert m.uncovered.tolist() == [7, 8, 9] and m.coverage == pytest.approx(0.7)
    assert m.uncovered_examples == tuple(clip_paths[7:]) and "7 of 10 clips (70.0%); 3 have no" in m.describe()
    by_id = from_arrays(np.array([20, 11]), key_kind="clip_id", classes=CLASSES, probs=probs[:2])
    assert match_keys(by_id, clip_ids, clip_paths).rows.tolist() == [9, 0]
    absolute = from_arrays(["/data/sc/" + p for p in clip_paths], classes=CLASSES, probs=_softmax(np.ones((10, 3))))
    assert len(match_keys(absolute, clip_ids, clip_paths, root="/data/sc").uncovered) == 0


def test_run_files_refuse_paths_not_in_the_data_set():
    clip_paths = [f"yes/spk{i}_nohash_0.wav" for i in range(4)]
    keys = clip_paths[:2] + [f"cat/other{i}.wav" for i in range(8)]
    run = from_arrays(keys, classes=CLASSES, probs=_softmax(np.zeros((10, 3))))
    err = _refused(match_keys, run, np.arange(4), clip_paths, root="/data/sc")
    assert err.title == "8 of 10 paths are not in the data set" and "cat/other0.wav" in err.detail
    assert "cat/other5.wav" not in err.detail and "yes/spk0_nohash_0.wav" in err.hint
    by_id = from_arrays(np.array([1, 99]), key_kind="clip_id", classes=CLASSES, probs=_softmax(np.zeros((2, 3))))
    assert "1 of 2 clip ids" in _refused(match_keys, by_id, np.arange(4), clip_paths).title


def test_run_files_12_class_export_against_the_real_v001_sample(tmp_path):
    """A 12-class model's file over the real 30-word sample: maps, matches, and counts the clips it missed."""
    if not SHARED_SAMPLE.is_dir():
        skip_or_fail(f"the real Speech Commands sample is not at {SHARED_SAMPLE}")
    entries = scan(SHARED_SAMPLE).entries
    paths, labels = [e.path for e in entries], [e.label for e in entries]
    v12 = task_named("v1-12").classes(labels)
    keep = np.arange(len(paths)) % 30 != 7  # the file leaves 10 clips out
    probs = _softmax(np.random.default_rng(5).normal(size=(int(keep.sum()), 12)))
    file = write_parquet(tmp_path / "kws.parquet", from_arrays(np.array(paths, dtype=object)[keep], classes=v12,
                                                                probs=probs, model="kws-12", task="v1-12"))
    run = read_parquet(file)
    cmap = map_classes(run, labels)
    m = match_keys(run, np.arange(1000, 1000 + len(paths)), paths, root=SHARED_SAMPLE)
    assert len(labels) == 300 and len(set(labels)) == 30 and cmap.unused == ("_silence_",)
    assert len(m.uncovered) == 10 and m.coverage == pytest.approx(290 / 300)
    targets = np.array(v12)[cmap.target_index(np.array(labels)[m.rows])]
    filed = np.array(labels)[m.rows]
    assert set(targets[~np.isin(filed, v12)]) == {"_unknown_"} and (targets[np.isin(filed, v12)] ==
                                                                   filed[np.isin(filed, v12)]).all()
