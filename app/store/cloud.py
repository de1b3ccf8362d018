"""The embedding cloud's binary wire format: every projected clip of a run in 16 bytes.

Layout, little-endian, N points: clip_id uint32[N] | x uint16[N] | y uint16[N] | target, pred,
split, agree, confidence, loss, cutoff, flag: uint8[N] each (16 bytes a point: 1.7 MB at 105k).
x and y are quantised over their range (``x = x_min + q / 65535 * (x_max - x_min)``), confidence and
cut-off over [0, 1], loss over [0, loss_max]; flag is 0 for none, else 1 + index in FLAG_REASONS.
With more than 255 classes target and pred are uint16. The JSON legend (``CloudBody.meta``) lists
each column's name, dtype and byte offset, so static/cloud.js never hard-codes the layout.

Everything but the flag column depends on the run only and is built once (``encode_cloud``);
the flag column is appended per request (``with_flags``), since flags change all the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.store.frame import SPLITS, RunFrame
from app.store.models import FLAG_REASONS


@dataclass
class CloudBody:
    """The run-only part of the cloud: the legend, the packed columns, and the clip id of each point."""

    meta: dict
    body: bytes
    clip_ids: np.ndarray  # int64 (N,), the order of the points


def encode_cloud(frame: RunFrame) -> CloudBody:
    """Pack every projected clip of ``frame`` (all columns but the flag)."""
    ok = np.isfinite(frame.x) & np.isfinite(frame.y)
    idx = np.nonzero(ok)[0]
    x, y = frame.x[idx], frame.y[idx]
    lo = [float(x.min()) if len(x) else 0.0, float(y.min()) if len(y) else 0.0]
    hi = [float(x.max()) if len(x) else 1.0, float(y.max()) if len(y) else 1.0]

    def q16(v, a, b):
        return np.round((v - a) / max(b - a, 1e-9) * 65535).astype("<u2")

    loss = np.nan_to_num(frame.loss[idx], nan=0.0)  # an import without probabilities has no loss
    known = np.isfinite(frame.loss[idx])
    loss_max = float(np.percentile(frame.loss[idx][known], 99.5)) if known.any() else 1.0
    loss_max = max(loss_max, 1e-6)
    code_t = "<u2" if len(frame.vocab) > 255 else "u1"
    parts = [frame.clip_ids[idx].astype("<u4"), q16(x, lo[0], hi[0]), q16(y, lo[1], hi[1]),
             frame.target[idx].astype(code_t), frame.pred[idx].astype(code_t), frame.split[idx].astype("u1"),
             frame.agree[idx].astype("u1"), np.round(np.clip(frame.confidence[idx], 0, 1) * 255).astype("u1"),
             np.round(np.clip(loss / loss_max, 0, 1) * 255).astype("u1"),
             np.round(np.clip(frame.cutoff[idx], 0, 1) * 255).astype("u1")]
    columns, offset = [], 0
    names = ["clip_id", "x", "y", "target", "pred", "split", "agree", "confidence", "loss", "cutoff"]
    for name, arr in zip(names, parts, strict=True):
        columns.append(dict(name=name, dtype=arr.dtype.str.lstrip("<|"), offset=offset))
        offset += arr.nbytes
    columns.append(dict(name="flag", dtype="u1", offset=offset))
    meta = dict(run_id=frame.run_id, n=int(len(idx)), n_unprojected=int(len(frame.clip_ids) - len(idx)),
                vocab=frame.vocab, splits=list(SPLITS), flag_reasons=list(FLAG_REASONS),
                x_range=[lo[0], hi[0]], y_range=[lo[1], hi[1]], loss_max=loss_max,
                has_scores=frame.has_scores, columns=columns)
    return CloudBody(meta, b"".join(p.tobytes() for p in parts), frame.clip_ids[idx])


def flag_column(clip_ids: np.ndarray, flags: dict[int, str]) -> bytes:
    """The flag byte of each point (0 none, 1 + index in FLAG_REASONS, or one past them for an unknown reason)."""
    codes = np.zeros(len(clip_ids), dtype="u1")
    if flags:
        fid = np.fromiter(flags.keys(), dtype=np.int64, count=len(flags))
        code = np.array([1 + FLAG_REASONS.index(r) if r in FLAG_REASONS else len(FLAG_REASONS) + 1
                         for r in flags.values()], dtype="u1")
        order = np.argsort(fid)
        fid, code = fid[order], code[order]
        pos = np.searchsorted(fid, clip_ids)
        pos_ok = pos < len(fid)
        hit = np.zeros(len(clip_ids), bool)
        hit[pos_ok] = fid[pos[pos_ok]] == clip_ids[pos_ok]
        codes[hit] = code[pos[hit]]
    return codes.tobytes()


def with_flags(cloud: CloudBody, flags: dict[int, str]) -> tuple[dict, bytes]:
    """(legend, whole body) with the flag column of ``flags`` (clip id -> reason) appended."""
    return cloud.meta, cloud.body + flag_column(cloud.clip_ids, flags)
