"""The one codec for the float32 vectors the store keeps as BLOBs (probabilities, embeddings).

A vector is stored as little-endian float32 bytes, ``4 * dim`` of them. ``encode`` is the only
writer of that format and ``decode`` / ``decode_rows`` the only readers: nothing else under
``app/`` calls ``np.frombuffer`` on a stored vector (tests/test_store_rules.py keeps it so).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DTYPE = "<f4"


def encode(vector: np.ndarray) -> bytes:
    """One vector (any float dtype, shape (d,)) as the stored little-endian float32 bytes."""
    return np.ascontiguousarray(vector, dtype=DTYPE).tobytes()


def encode_rows(matrix: np.ndarray) -> list[bytes | None]:
    """Each row of an (n, d) matrix as stored bytes, from one buffer; all-NaN rows (absent) become None."""
    m = np.ascontiguousarray(matrix, dtype=DTYPE)
    n, d = m.shape
    buf, width = m.tobytes(), 4 * d
    absent = np.isnan(m).all(axis=1) if d else np.zeros(n, bool)
    return [None if absent[i] else buf[i * width:(i + 1) * width] for i in range(n)]


def decode(blob: bytes) -> np.ndarray:
    """One stored vector back as a float32 array (d,) (a copy, safe to modify)."""
    return np.frombuffer(blob, dtype=DTYPE).astype(np.float32)


def decode_rows(blobs: Sequence[bytes | None], dim: int | None = None) -> np.ndarray:
    """Stored vectors of equal length as one float32 matrix (n, d), C-contiguous.

    ``None`` entries (an absent optional vector) become rows of NaN; they need ``dim`` or at least
    one present vector to know the width. An empty sequence gives shape (0, dim or 0).
    """
    present = next((b for b in blobs if b is not None), None)
    if dim is None:
        dim = len(present) // 4 if present is not None else 0
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    nan_row = np.full(dim, np.nan, dtype=DTYPE).tobytes()
    joined = b"".join(nan_row if b is None else b for b in blobs)
    if len(joined) != len(blobs) * dim * 4:
        raise ValueError(f"stored vectors are not all {dim} float32 values long")
    return np.frombuffer(joined, dtype=DTYPE).reshape(len(blobs), dim).astype(np.float32)
