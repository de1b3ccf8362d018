"""One more column for the embedding cloud: a metadata column, a signal stat or the speaker, encoded
to colour the cloud's points by (``/api/cloud/column``), aligned with the points of ``/api/cloud.bin``.

- A text or boolean column (and the speaker) is ``u1`` codes: 0 = no value, 1..k = ``names[code - 1]``
  (the ``TOP_VALUES`` most common values), k + 1 = any other value (``other: true``).
- A number column (and every signal stat) is ``u2``: 0 = no value, else
  ``lo + (q - 1) / 65534 * (hi - lo)`` over the column's finite range ``[lo, hi]``.

The codes travel base64-encoded in the JSON answer (``data``), little-endian, one per point.
"""

from __future__ import annotations

import base64

import numpy as np

TOP_VALUES = 30


def encode_column(name: str, kind: str, values: np.ndarray) -> dict:
    """The legend and codes of a number column (``values`` aligned with the cloud's points)."""
    n = len(values)
    if kind == "number":
        x = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(x)
        lo = float(x[ok].min()) if ok.any() else 0.0
        hi = float(x[ok].max()) if ok.any() else 1.0
        q = np.zeros(n, dtype="<u2")
        q[ok] = 1 + np.round((x[ok] - lo) / max(hi - lo, 1e-12) * 65534).astype("<u2")
        return dict(name=name, kind="number", dtype="u2", n=n, range=[lo, hi], n_missing=int(n - ok.sum()),
                    data=base64.b64encode(q.tobytes()).decode("ascii"))
    raise ValueError("encode_column takes number columns; text goes through encode_codes")


def encode_codes(name: str, kind: str, codes: np.ndarray, names: list[str]) -> dict:
    """The legend and codes of a text or boolean column given as ``factorize`` codes (-1 = no value)
    into ``names``, aligned with the cloud's points."""
    codes = np.asarray(codes, dtype=np.int64)
    n = len(codes)
    present = codes >= 0
    counts = np.bincount(codes[present], minlength=len(names))
    top = np.argsort(-counts, kind="stable")[:TOP_VALUES]
    top = top[counts[top] > 0]
    remap = np.full(max(len(names), 1), len(top) + 1, dtype=np.int64)
    remap[top] = np.arange(1, len(top) + 1)
    out = np.zeros(n, dtype="u1")
    out[present] = remap[codes[present]]
    return dict(name=name, kind=kind, dtype="u1", n=n, names=[names[i] for i in top],
                other=bool((counts > 0).sum() > len(top)), n_missing=int(n - present.sum()),
                data=base64.b64encode(out.tobytes()).decode("ascii"))
