"""The validated run-file record and its checks: arrays in (numpy, lists, torch tensors), ``RunFile`` out.

``from_arrays`` is where every reader ends, so a Parquet file, an ``.npz``, a CSV, a DataFrame and
the Python API pass the same checks: one row per key, a class order, probabilities that are
probabilities (or logits, softmaxed), finite numbers, one embedding dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from app.errors import EarmarkError
from app.limits import check_text

META_CLASSES, META_MODEL, META_VERSION, META_TASK = (b"earmark.classes", b"earmark.model",
                                                     b"earmark.model_version", b"earmark.task")
PROB_TOLERANCE = 0.01  # |sum - 1| allowed per row: CSV files round their probabilities
SHOW = 5  # examples named in an error
WITHOUT_PROBS = ("probabilities", "loss", "label issues")
WITHOUT_EMBEDDINGS = ("cloud", "clusters", "outliers", "near-duplicates", "neighbours")
COLUMNS = ("path", "clip_id", "probs", "logits", "embedding", "embeddings", "pred", "confidence", "oof",
            "oof_probs")
FORMAT_HINT = ("one row per clip: `path` (or `clip_id`), `probs` or `logits` (list of float), optional "
                "`embedding` (list of float); or `pred` + `confidence` alone")


@dataclass(frozen=True)
class RunFile:
    """A model's outputs for a set of clips, validated: N rows, C classes, D embedding dimensions."""

    keys: np.ndarray  # (N,) object str paths ('/' separated, relative) or int64 clip ids
    key_kind: str  # "path" | "clip_id"
    classes: tuple[str, ...]  # output index -> class name
    pred: np.ndarray  # (N,) int64 index into classes
    confidence: np.ndarray  # (N,) float32
    probs: np.ndarray | None = None  # (N, C) float32; None for a reduced run (pred + confidence only)
    embeddings: np.ndarray | None = None  # (N, D) float32
    oof: np.ndarray | None = None  # (N,) bool: this row's probs are out-of-sample
    oof_probs: np.ndarray | None = None  # (N, C) float32, NaN rows where a clip has none (k-fold runs)
    model: str | None = None
    model_version: str | None = None
    task: str | None = None  # a class rule the file names (e.g. "v1-12"), for map_classes
    source: str | None = None  # the file read, absolute
    sha256: str | None = None  # of that file
    fmt: str = "arrays"  # parquet | npz | csv | dataframe | arrays

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def pred_names(self) -> np.ndarray:
        """(N,) the predicted class names."""
        return np.asarray(self.classes, dtype=object)[self.pred]

    @property
    def missing(self) -> tuple[str, ...]:
        """The analysis parts this file cannot feed ("reduced" when non-empty)."""
        return (WITHOUT_PROBS if self.probs is None else ()) + (WITHOUT_EMBEDDINGS if self.embeddings is None else ())


def problem(title: str, detail: str, hint: str) -> EarmarkError:
    """A 400 EarmarkError: what is wrong, the evidence, what to fix."""
    return EarmarkError(title, detail, hint)


def examples(rows: np.ndarray, keys: np.ndarray | None) -> str:
    """'row 4 (yes/a.wav), row 9 (...)': the first few of a set of 0-based rows, 1-based as people count."""
    rows = np.flatnonzero(rows) if rows.dtype == bool else rows
    shown = [f"row {r + 1}" + (f" ({keys[r]})" if keys is not None else "") for r in rows[:SHOW].tolist()]
    return ", ".join(shown) + (f" and {len(rows) - SHOW} more" if len(rows) > SHOW else "")


def as_numpy(x: Any) -> np.ndarray:
    """An array from numpy, a list, a pandas Series or a torch tensor (duck-typed, on any device)."""
    for step in ("detach", "cpu"):
        if hasattr(x, step) and callable(getattr(x, step)) and not isinstance(x, np.ndarray):
            x = getattr(x, step)()
    if hasattr(x, "numpy") and callable(x.numpy) and not isinstance(x, np.ndarray):
        try:
            x = x.numpy()
        except TypeError:  # a dtype numpy lacks (torch.bfloat16): widen it first
            x = x.float().numpy()
    try:
        return np.asarray(x)
    except ValueError:  # ragged rows (lists of unequal length): one object per row, for the checks to name
        out = np.empty(len(x), dtype=object)
        out[:] = [np.asarray(v) for v in x]
        return out


def check_floats(x: Any, name: str, n: int, ndim: int, keys: np.ndarray | None) -> np.ndarray:
    """A numeric array of the right shape; float32 stays bit-exact, other numbers widen to float64."""
    a = as_numpy(x)
    if a.dtype == object and a.ndim == 1 and ndim == 2 and len(a):  # a column of per-row vectors
        lengths = np.fromiter((np.size(v) for v in a), dtype=np.int64, count=len(a))
        check_same_dim(lengths, name, keys)
        a = np.stack([np.asarray(v) for v in a]) if len(a) else a
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise problem(f"`{name}` holds {a.dtype} values, not numbers", f"expected floats, got dtype {a.dtype}",
                      f"write `{name}` as float32 (or float64) numbers")
    if a.ndim != ndim or a.shape[0] != n:
        want = f"({n}, ...)" if ndim == 2 else f"({n},)"
        raise problem(f"`{name}` has shape {a.shape}, expected {want}", f"{n} keys were given",
                      f"give one `{name}` {'row' if ndim == 2 else 'value'} per key")
    a = a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)
    bad = ~np.isfinite(a) if ndim == 1 else ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise problem(f"`{name}` has NaN or infinity in {int(bad.sum())} rows", examples(bad, keys),
                      "fix the model's output for those clips (or leave them out of the file)")
    return a


def check_same_dim(lengths: np.ndarray, name: str, keys: np.ndarray | None) -> None:
    """Refuse vectors of mixed lengths, naming the counts per length and the first odd rows."""
    dims, counts = np.unique(lengths, return_counts=True)
    if len(dims) > 1:
        common = dims[counts.argmax()]
        odd = lengths != common
        per = ", ".join(f"{c} rows of {d}" for d, c in zip(dims.tolist(), counts.tolist(), strict=True))
        raise problem(f"`{name}` rows have mixed lengths", f"{per}; not {common}: {examples(odd, keys)}",
                      f"every `{name}` row must have the same length")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)


def _check_probs(p: np.ndarray, name: str, keys: np.ndarray | None) -> np.ndarray:
    total = p.sum(axis=1, dtype=np.float64)
    bad = (np.abs(total - 1) > PROB_TOLERANCE) | (p < -PROB_TOLERANCE).any(axis=1) | (p > 1 + PROB_TOLERANCE).any(1)
    if bad.any():
        first = np.flatnonzero(bad)[:SHOW]
        sums = ", ".join(f"row {r + 1} sums to {total[r]:.4g}" for r in first.tolist())
        raise problem(f"{int(bad.sum())} `{name}` rows are not probabilities",
                      f"each row must be in [0, 1] and sum to 1 (± {PROB_TOLERANCE}): {sums}",
                      "if these are raw model outputs, import them with `--logits` (softmax is applied)")
    return p.astype(np.float32, copy=False)


def check_keys(x: Any, kind: str) -> np.ndarray:
    """Keys as int64 clip ids or '/'-separated path strings (backslashes and a leading './' normalised)."""
    a = as_numpy(x)
    if a.ndim != 1:
        raise problem(f"the `{kind}` keys have shape {a.shape}", "expected one key per row", f"give a 1-D `{kind}` array")
    if kind == "clip_id":
        if not np.issubdtype(a.dtype, np.integer):
            raise problem(f"`clip_id` holds {a.dtype} values, not integers", "clip ids are earmark's integer ids",
                          "use `path` (relative to the data set root) for file names")
        return a.astype(np.int64)
    if a.dtype.kind == "U":
        a = a.astype(object)
    try:
        text = pa.array(a, pa.string())  # refuses anything but str (and None) without a Python loop
        bad = text.null_count
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        bad = -1
    if bad:
        strings = np.fromiter((isinstance(v, str) for v in a), dtype=bool, count=len(a))
        raise problem(f"`path` holds {int((~strings).sum())} values that are not text",
                      examples(~strings, None), "every `path` is a file path relative to the data set root")
    if pc.any(pc.or_(pc.match_substring(text, "\\"), pc.starts_with(text, "./"))).as_py():
        a = np.array([v.replace("\\", "/").removeprefix("./") for v in a], dtype=object)
    return a


def _check_unique(keys: np.ndarray, kind: str) -> None:
    counts = pa.array(keys).value_counts()
    if len(counts) == len(keys):
        return
    values, n = counts.field("values").to_numpy(zero_copy_only=False), counts.field("counts").to_numpy()
    dup = values[n > 1]
    shown = ", ".join(f"{v} ×{c}" for v, c in zip(dup[:SHOW].tolist(), n[n > 1][:SHOW].tolist(), strict=True))
    raise problem(f"duplicate rows: {len(dup):,} {kind} values appear more than once", f"{int(n[n > 1].sum())} rows: {shown}",
                  "keep one row per clip")


def from_arrays(keys: Any, *, classes: Sequence[str] | None, key_kind: str = "path", probs: Any = None,
                logits: Any = None, pred: Any = None, confidence: Any = None, embeddings: Any = None,
                oof: Any = None, oof_probs: Any = None, model: str | None = None,
                model_version: str | None = None, task: str | None = None, source: str | None = None,
                sha256: str | None = None, fmt: str = "arrays") -> RunFile:
    """A validated RunFile from arrays (numpy, lists, torch tensors); every reader ends here.

    ``probs`` (N, C) or ``logits`` (N, C, softmaxed here), or ``pred`` (class names or indices) with
    ``confidence`` for a reduced run; ``embeddings`` (N, D); ``oof`` (N,) bool; ``oof_probs`` (N, C)
    with NaN rows where there are none.
    """
    if key_kind not in ("path", "clip_id"):
        raise ValueError(f"key_kind must be 'path' or 'clip_id', not {key_kind!r}")
    raw = as_numpy(keys)
    if raw.size == 0:
        raise problem("the run file has no rows", "there is nothing to import", "export at least one clip's prediction")
    k = check_keys(raw, key_kind)
    n = len(k)
    _check_unique(k, key_kind)
    if classes is None:
        raise problem("the class order is missing", "nothing names the class of each probability column",
                      "give `--classes yes,no,...` (the model's output order), or write the JSON list into the "
                      "Parquet key-value metadata `earmark.classes`")
    cls = tuple(str(c) for c in classes)
    for what, value in (("model", model), ("model version", model_version), ("task", task),
                        *(("class name", c) for c in cls)):  # text the store keeps: no NUL, no lone surrogate
        if value is not None:
            check_text(str(value), f"run file's {what}", 200)
    if not cls or len(set(cls)) != len(cls):
        raise problem("the class list is empty or repeats a class", f"classes: {list(cls)[:40]}",
                      "give each output class once, in the model's output order")
    pr = None
    if probs is not None or logits is not None:
        name = "probs" if probs is not None else "logits"
        pr = check_floats(probs if probs is not None else logits, name, n, 2, k)
        if pr.shape[1] != len(cls):
            raise problem(f"`{name}` has {pr.shape[1]} columns for {len(cls)} classes",
                          f"classes: {', '.join(cls[:40])}", "the class list must name every output, in order")
        pr = _softmax(pr) if probs is None else _check_probs(pr, name, k)
        pi = pr.argmax(axis=1)
        conf = pr[np.arange(n), pi]
    elif pred is None or confidence is None:
        raise problem("no probabilities and no predictions", FORMAT_HINT, "add `probs` (or `logits`), or both `pred` "
                      "and `confidence`")
    else:
        pi = _pred_index(pred, cls, n, k)
        conf = check_floats(confidence, "confidence", n, 1, k).astype(np.float32)
        out = (conf < 0) | (conf > 1)
        if out.any():
            raise problem(f"{int(out.sum())} confidences are outside [0, 1]", examples(out, k),
                          "`confidence` is the probability of the predicted class")
    emb = None if embeddings is None else check_floats(embeddings, "embedding", n, 2, k).astype(np.float32, copy=False)
    flags = None
    if oof is not None:
        flags = as_numpy(oof)
        if np.issubdtype(flags.dtype, np.integer) and np.isin(flags, (0, 1)).all():
            flags = flags.astype(bool)  # 0/1 columns, as CSV and some writers give them
        if flags.dtype != bool or flags.shape != (n,):
            raise problem("`oof` must be one true/false per row", f"got dtype {flags.dtype}, shape {flags.shape}",
                          "mark out-of-sample rows true, the others false")
    return RunFile(k, key_kind, cls, pi.astype(np.int64), np.asarray(conf, np.float32), pr, emb, flags,
                   _oof_matrix(oof_probs, n, len(cls), k), _text(model), _text(model_version), _text(task),
                   source, sha256, fmt)


def _text(v: Any) -> str | None:
    return None if v is None or str(v).strip() == "" else str(v).strip()


def _pred_index(pred: Any, cls: tuple[str, ...], n: int, keys: np.ndarray) -> np.ndarray:
    p = as_numpy(pred)
    if p.shape != (n,):
        raise problem(f"`pred` has shape {p.shape}, expected ({n},)", "one prediction per key", "give one `pred` per row")
    if np.issubdtype(p.dtype, np.integer):
        bad = (p < 0) | (p >= len(cls))
        idx = p
    elif p.dtype.kind in "UO" and all(isinstance(v, str) for v in p):
        index = {c: i for i, c in enumerate(cls)}
        idx = np.fromiter((index.get(v, -1) for v in p), dtype=np.int64, count=n)
        bad = idx < 0
    else:
        raise problem(f"`pred` holds {p.dtype} values", "expected class names (text) or class indices (integers)",
                      "write `pred` as the predicted class name")
    if bad.any():
        raise problem(f"{int(bad.sum())} predictions are not among the {len(cls)} classes",
                      examples(bad, keys) + f"; classes: {', '.join(cls[:40])}", "check the class list and `pred`")
    return idx.astype(np.int64)


def _oof_matrix(x: Any, n: int, c: int, keys: np.ndarray) -> np.ndarray | None:
    """Out-of-fold probabilities (N, C) float32; a row of NaN means the clip has none."""
    if x is None:
        return None
    raw = as_numpy(x)
    absent = np.isnan(raw).all(axis=-1) if raw.dtype.kind == "f" and raw.ndim == 2 else np.zeros(len(raw), bool)
    a = check_floats(np.where(absent[:, None], 1.0 / max(c, 1), raw) if absent.any() else raw, "oof_probs", n, 2, keys)
    if a.shape[1] != c:
        raise problem(f"`oof_probs` has {a.shape[1]} columns for {c} classes", "", "match the class list")
    _check_probs(a, "oof_probs", keys)
    return np.where(absent[:, None], np.float32(np.nan), a.astype(np.float32, copy=False))
