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
    """The legend and codes of one column (``values`` aligned with the cloud's points)."""
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
    keys = np.array(["" if v is None else ("true" if v is True else "false" if v is False else str(v))
                     for v in values], dtype=object)
    present = np.array([v is not None for v in values], dtype=bool)
    uniq, inv, counts = np.unique(keys[present].astype(str), return_inverse=True, return_counts=True) \
        if present.any() else (np.array([], str), np.zeros(0, np.int64), np.zeros(0, np.int64))
    top = np.argsort(-counts, kind="stable")[:TOP_VALUES]
    remap = np.full(len(uniq), len(top) + 1, dtype=np.int64)
    remap[top] = np.arange(1, len(top) + 1)
    codes = np.zeros(n, dtype="u1")
    codes[present] = remap[inv]
    return dict(name=name, kind=kind, dtype="u1", n=n, names=[str(uniq[i]) for i in top],
                other=bool(len(uniq) > len(top)), n_missing=int(n - present.sum()),
                data=base64.b64encode(codes.tobytes()).decode("ascii"))
