"""Run-file readers: Parquet (primary), NumPy ``.npz``, CSV and pandas DataFrames, each into a ``RunFile``.

Parquet is read column-wise with pyarrow: a list<float> column becomes one flat value buffer and
its offsets, reshaped to (N, D) with no per-row Python. Only the run-file columns are read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.errors import EarmarkError
from app.run_files.record import (
    COLUMNS,
    FORMAT_HINT,
    META_CLASSES,
    META_MODEL,
    META_TASK,
    META_VERSION,
    RunFile,
    check_floats,
    check_same_dim,
    examples,
    from_arrays,
    problem,
)


def _file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise EarmarkError(f"no run file at {p}", "the path does not exist or is not a file",
                           "give the Parquet, .npz or CSV file with the model's outputs", status=404)
    if p.stat().st_size == 0:
        raise problem(f"{p.name} is empty", "the file has 0 bytes", "export the model's outputs again")
    return p


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _matrix(col: pa.ChunkedArray, name: str, keys: np.ndarray, nullable: bool = False) -> np.ndarray | None:
    """A list<number> column as a (N, D) array, from its flat values (no per-row Python).

    With ``nullable``, null rows become NaN rows, and a column of nulls only is None (absent).
    """
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    t = arr.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) or not (
            pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise problem(f"`{name}` is {t}, not a list of floats", f"column `{name}` has type {t}",
                      f"write `{name}` as list<float32>, one list per row")
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not valid.all() and not nullable:
        raise problem(f"`{name}` is missing in {int((~valid).sum())} rows", examples(~valid, keys),
                      f"give every row a `{name}` list")
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)[valid].astype(np.int64)
    check_same_dim(lengths, name, keys[valid])
    flat = arr.flatten()
    if flat.null_count:
        raise problem(f"`{name}` lists hold {flat.null_count} null values", "every value must be a number",
                      "replace the nulls (or leave the rows out)")
    if not valid.any():
        return None  # nullable and all null
    d = int(lengths[0])
    if d == 0:
        raise problem(f"`{name}` lists are empty", f"every `{name}` row has 0 values",
                      f"write the vectors into `{name}`, or leave the column out")
    values = flat.to_numpy(zero_copy_only=False).reshape(-1, d)
    if valid.all():
        return values
    out = np.full((len(arr), d), np.nan, dtype=values.dtype if values.dtype.kind == "f" else np.float64)
    out[valid] = values
    return out


def _column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if col.null_count:
        raise problem(f"`{name}` is empty in {col.null_count} rows", "every row needs a value",
                      f"fill `{name}` in every row")
    return col.to_numpy()


def _meta_classes(meta: dict, classes: Sequence[str] | None) -> list[str] | None:
    if META_CLASSES not in meta:
        return list(classes) if classes is not None else None
    try:
        found = json.loads(meta[META_CLASSES])
    except ValueError:
        found = None
    if not isinstance(found, list) or not all(isinstance(c, str) for c in found):
        raise problem("`earmark.classes` is not a JSON list of class names",
                      meta[META_CLASSES][:200].decode(errors="replace"),
                      'write it as json.dumps(["yes", "no", ...])')
    if classes is not None and list(classes) != found:
        raise problem("the classes given differ from the file's `earmark.classes`", f"file: {found[:40]}; given: "
                      f"{list(classes)[:40]}", "leave out `--classes`: the file already says its class order")
    return found


def from_table(table: pa.Table, *, classes: Sequence[str] | None = None, logits: bool = False,
               model: str | None = None, source: str | None = None, sha256: str | None = None,
               fmt: str = "parquet") -> RunFile:
    """A RunFile from an Arrow table in the run-file format (the Parquet, CSV and DataFrame readers' core).

    ``logits=True`` treats a ``probs`` column (or ``prob_<class>`` columns) as raw outputs to softmax.
    """
    meta = dict(table.schema.metadata or {})
    names = table.column_names
    kind = "path" if "path" in names else "clip_id" if "clip_id" in names else None
    wide = [c for c in names if c.startswith("prob_")]
    known = [c for c in names if c in COLUMNS] + wide
    if kind is None or not ({"probs", "logits"} & set(names) or wide or {"pred", "confidence"} <= set(names)):
        raise problem(f"the {fmt} file does not have the run-file columns",
                      f"it has: {', '.join(names[:30]) or 'no columns'}" + (f" (+{len(names) - 30})" if len(names) > 30
                                                                          else ""), FORMAT_HINT)
    if table.num_rows == 0:
        raise problem(f"the {fmt} file has no rows", f"columns {', '.join(known)}, 0 rows", "export at least one clip")
    key_col = table.column(kind)
    want = pa.types.is_integer if kind == "clip_id" else (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
                                                          or pa.types.is_dictionary(t))
    if not want(key_col.type):
        raise problem(f"`{kind}` is {key_col.type}", f"`{kind}` must be {'integers' if kind == 'clip_id' else 'text'}",
                      "`path` is the file path relative to the data set root; `clip_id` earmark's integer id")
    keys = _column(table, kind)  # typed above; from_arrays normalises and checks them once
    cls = _meta_classes(meta, classes)
    arrays: dict[str, Any] = {}
    if "probs" in names or "logits" in names:
        name = "probs" if "probs" in names else "logits"
        arrays["logits" if logits or name == "logits" else "probs"] = _matrix(table.column(name), name, keys)
    elif wide:
        wide_cls = [c.removeprefix("prob_") for c in wide]
        if cls is not None and sorted(cls) != sorted(wide_cls):
            raise problem("the `prob_<class>` columns do not match the classes given",
                          f"columns: {wide_cls[:40]}; classes: {list(cls)[:40]}", "name one column per class")
        cls = cls or wide_cls
        m = np.column_stack([check_floats(_column(table, f"prob_{c}"), f"prob_{c}", len(keys), 1, keys) for c in cls])
        arrays["logits" if logits else "probs"] = m
    if "pred" in names and "confidence" in names and not arrays:
        arrays["pred"], arrays["confidence"] = _column(table, "pred"), _column(table, "confidence")
    emb = next((c for c in ("embedding", "embeddings") if c in names), None)
    if emb:
        arrays["embeddings"] = _matrix(table.column(emb), emb, keys)
    if "oof" in names:
        arrays["oof"] = _column(table, "oof")
    if "oof_probs" in names:
        arrays["oof_probs"] = _matrix(table.column("oof_probs"), "oof_probs", keys, nullable=True)
    text = {k: meta[k].decode(errors="replace") for k in (META_MODEL, META_VERSION, META_TASK) if k in meta}
    return from_arrays(keys, classes=cls, key_kind=kind, model=model or text.get(META_MODEL),
                       model_version=text.get(META_VERSION), task=text.get(META_TASK), source=source,
                       sha256=sha256, fmt=fmt, **arrays)


def read_parquet(path: str | os.PathLike, *, classes: Sequence[str] | None = None, logits: bool = False,
                 model: str | None = None) -> RunFile:
    """Read and validate a Parquet run file (only the run-file columns are read)."""
    p = _file(path)
    try:
        pf = pq.ParquetFile(p)
        names = pf.schema_arrow.names
        wanted = [c for c in names if c in COLUMNS or c.startswith("prob_")]
        table = pf.read(columns=wanted) if wanted else pf.schema_arrow.empty_table()  # refused by its names
    except (pa.ArrowException, OSError) as exc:
        raise problem(f"{p.name} is not a readable Parquet file", str(exc)[:300],
                      "write it with pandas' to_parquet, pyarrow, or `earmark export-run`") from None
    table = table.replace_schema_metadata(pf.schema_arrow.metadata)
    return from_table(table, classes=classes, logits=logits, model=model, source=str(p), sha256=_sha256(p))


def read_csv(path: str | os.PathLike, *, classes: Sequence[str] | None = None, logits: bool = False,
             model: str | None = None) -> RunFile:
    """Read a small CSV run file: ``path`` (or ``clip_id``), ``prob_<class>`` columns and/or ``pred``, ``confidence``."""
    p = _file(path)
    try:
        table = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(
            column_types={"path": pa.string(), "pred": pa.string()}))
    except (pa.ArrowException, OSError) as exc:
        raise problem(f"{p.name} is not a readable CSV file", str(exc)[:300],
                      "write a header row (path,pred,prob_yes,...) and one row per clip") from None
    return from_table(table, classes=classes, logits=logits, model=model, source=str(p), sha256=_sha256(p), fmt="csv")


def read_npz(path: str | os.PathLike, *, classes: Sequence[str] | None = None, logits: bool = False,
             model: str | None = None) -> RunFile:
    """Read a NumPy ``.npz``: ``paths`` (or ``clip_ids``), ``probs`` or ``logits``, ``embeddings``, ``classes``."""
    p = _file(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        hint = ("save text arrays as str, not object: np.array(paths, dtype=str)" if "pickle" in str(exc)
                else "write it with np.savez(path, paths=..., probs=..., embeddings=..., classes=...)")
        raise problem(f"{p.name} is not a readable .npz file", str(exc)[:300], hint) from None
    except (OSError, EOFError) as exc:
        raise problem(f"{p.name} is not a readable .npz file", str(exc)[:300], "write it with np.savez") from None
    kind = "path" if "paths" in arrays else "clip_id" if "clip_ids" in arrays else None
    if kind is None or not ({"probs", "logits"} & arrays.keys() or {"pred", "confidence"} <= arrays.keys()):
        raise problem("the .npz file does not have the run-file arrays", f"it has: {', '.join(sorted(arrays))}",
                      "save `paths` (or `clip_ids`), `probs` (or `logits`), optional `embeddings`, and `classes`")
    file_cls = [str(c) for c in arrays["classes"].tolist()] if "classes" in arrays else None
    if classes is not None and file_cls is not None and list(classes) != file_cls:
        raise problem("the classes given differ from the file's `classes`", f"file: {file_cls[:40]}", "leave out `--classes`")
    mat = {"logits": arrays.get("logits", arrays.get("probs") if logits else None),
           "probs": None if logits else arrays.get("probs")}
    pred = {"pred": arrays.get("pred"), "confidence": arrays.get("confidence")} if mat["logits"] is None and \
        mat["probs"] is None else {}
    mname = model or (str(arrays["model"]) if "model" in arrays else None)
    return from_arrays(arrays["paths" if kind == "path" else "clip_ids"], classes=classes or file_cls, key_kind=kind,
                       embeddings=arrays.get("embeddings"), oof=arrays.get("oof"), model=mname, source=str(p),
                       sha256=_sha256(p), fmt="npz", **mat, **pred)


def from_dataframe(df: Any, *, classes: Sequence[str] | None = None, logits: bool = False,
                   model: str | None = None) -> RunFile:
    """A RunFile from a pandas DataFrame with the Parquet file's columns (list columns or ``prob_<class>``)."""
    try:
        table = pa.Table.from_pandas(df, preserve_index=None)  # a named index (e.g. path) becomes a column
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise problem("the DataFrame's columns cannot be read", str(exc)[:300], FORMAT_HINT) from None
    return from_table(table.replace_schema_metadata(None), classes=classes, logits=logits, model=model, fmt="dataframe")


READERS: dict[str, Callable[..., RunFile]] = {".parquet": read_parquet, ".pq": read_parquet, ".npz": read_npz,
                                              ".csv": read_csv}


def read_run_file(path: str | os.PathLike, **kw: Any) -> RunFile:
    """Read any run file by its extension (.parquet/.pq, .npz, .csv); see the readers for ``kw``."""
    reader = READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise problem(f"{Path(path).name}: unknown run-file type", f"known: {', '.join(READERS)}",
                      "export the outputs as Parquet (preferred), .npz or CSV")
    return reader(path, **kw)
