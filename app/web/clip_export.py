"""The clip list as CSV: every row of a filter (not only the page shown), streamed in chunks.

Text cells are formula-escaped with ``app.pipeline.flag_files.csv_escape`` (the flag export's rule),
so a path or a note that starts with ``=`` opens in a spreadsheet as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from app.pipeline.flag_files import csv_escape
from app.store.clips import clip_rows
from app.store.db import Store
from app.store.models import Run

CHUNK = 1000
COLUMNS = ("clip_id", "path", "label", "target", "prediction", "agrees", "confidence", "loss", "cutoff_score",
           "split", "speaker", "duration_s", "suggested_label", "flag", "corrected_label", "flag_note",
           "flag_author")


def _cells(r: dict) -> list[str]:
    flag = r.get("flag") or {}
    text = [r["path"], r["label"], r["target"], r["pred"]]
    nums = [r["confidence"], r["loss"], r["cutoff_score"]]
    return ([str(r["id"])] + [csv_escape(t or "") for t in text] + ["" if r["agree"] is None else str(bool(r["agree"])).lower()]
            + ["" if v is None else f"{v:.6g}" for v in nums]
            + [csv_escape(r["split"] or ""), csv_escape(r["speaker"] or ""),
               "" if r["duration_s"] is None else f"{r['duration_s']:.4g}", csv_escape(r["suggested_label"] or "")]
            + [csv_escape(str(flag.get(k) or "")) for k in ("reason", "corrected_label", "note", "author")])


def stream_clip_csv(store: Store, run_id: int, clip_ids: list[int]) -> Iterator[str]:
    """CSV text (a header, then one row per clip of ``clip_ids`` in that order), ``CHUNK`` rows at a time;
    each chunk is read in its own short session, so a long download holds no transaction open."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    yield buf.getvalue()
    for start in range(0, len(clip_ids), CHUNK):
        buf.seek(0)
        buf.truncate()
        with store.session() as session:
            run = session.get(Run, run_id)
            for r in clip_rows(session, run, clip_ids[start:start + CHUNK]):
                w.writerow(_cells(r))
        yield buf.getvalue()
