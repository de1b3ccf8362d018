"""The run-file writer: a ``RunFile`` to Parquet, in exactly the format ``read_parquet`` takes.

float32 vectors go in as list<float32> built from one flat buffer and offsets, so reading the file
back gives the same bits. ``pred`` and ``confidence`` are always written (they are all a reduced run
has); ``target``, ``loss`` and ``agree`` are extras for people reading the file in pandas, which the
reader ignores. The file is written next to its destination and renamed, so a killed export leaves
no half file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from app.errors import EarmarkError
from app.run_files.record import META_CLASSES, META_MODEL, META_TASK, META_VERSION, RunFile

FORMAT_VERSION = b"1"


def list_column(matrix: np.ndarray) -> pa.Array:
    """(N, D) float32 as list<float32>, zero per-row work; rows that are all NaN become nulls."""
    m = np.ascontiguousarray(matrix, dtype=np.float32)
    n, d = m.shape
    offsets_type = np.int32 if n * d < 2**31 else np.int64
    offsets = pa.array(np.arange(n + 1, dtype=offsets_type) * d)
    absent = np.isnan(m).all(axis=1) if d else np.zeros(n, bool)
    cls = pa.ListArray if offsets_type is np.int32 else pa.LargeListArray
    # A null row keeps its slot of NaN values under the mask; readers flatten() past it.
    return cls.from_arrays(offsets, pa.array(m.reshape(-1)), mask=pa.array(absent) if absent.any() else None)


def to_table(run: RunFile, *, target: Sequence[str] | None = None, loss: Any = None, agree: Any = None) -> pa.Table:
    """The run as an Arrow table with the run-file columns and key-value metadata."""
    n = len(run)
    cols: dict[str, pa.Array] = {run.key_kind: pa.array(run.keys, pa.string() if run.key_kind == "path" else pa.int64())}
    if run.probs is not None:
        cols["probs"] = list_column(run.probs)
    cols["pred"] = pa.array(run.pred_names, pa.string())
    cols["confidence"] = pa.array(np.asarray(run.confidence, np.float32))
    if run.embeddings is not None:
        cols["embedding"] = list_column(run.embeddings)
    if run.oof is not None:
        cols["oof"] = pa.array(np.asarray(run.oof, bool))
    if run.oof_probs is not None:
        cols["oof_probs"] = list_column(run.oof_probs)
    for name, values, typ in (("target", target, pa.string()), ("loss", loss, pa.float32()), ("agree", agree, pa.bool_())):
        if values is not None:
            arr = pa.array(np.asarray(values), typ) if name != "target" else pa.array(list(values), typ)
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} values for {n} rows")
            cols[name] = arr
    meta = {META_CLASSES: json.dumps(list(run.classes)).encode(), b"earmark.format": FORMAT_VERSION}
    for key, value in ((META_MODEL, run.model), (META_VERSION, run.model_version), (META_TASK, run.task)):
        if value:
            meta[key] = value.encode()
    return pa.table(cols).replace_schema_metadata(meta)


def write_parquet(path: str | os.PathLike, run: RunFile, *, target: Sequence[str] | None = None, loss: Any = None,
                  agree: Any = None) -> Path:
    """Write ``run`` to ``path`` as a Parquet run file (atomically); returns the path written.

    ``target`` (class names), ``loss`` and ``agree`` (one per row) are optional extras for pandas.
    """
    out = Path(path).expanduser().resolve()
    if not out.parent.is_dir():
        raise EarmarkError(f"no folder {out.parent}", "the output folder does not exist", "create it first")
    table = to_table(run, target=target, loss=loss, agree=agree)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        # Float vectors do not dictionary-encode or compress much; snappy reads 2x faster than zstd here.
        pq.write_table(table, tmp, compression="snappy", use_dictionary=["path", "pred", "target"])
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
