"""The flag file reader (app/pipeline/flag_files.py): malformed CSV refused, JSON line numbers in linear work."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.pipeline import flags as fl
from app.pipeline.flag_files import ImportRejected, parse_flags_file
from app.store.flags import upsert_flag
from app.store.models import Clip, Flag
from tests.factories import make_run


def test_flag_files_csv_unterminated_quote_is_refused_with_its_line(store, tmp_path):
    with store.sessions() as s:
        fx = make_run(s, tmp_path / "d", n_clips=6)
        paths = sorted(c.path for c in s.scalars(select(Clip).where(Clip.dataset_id == fx.dataset_id)))
        target = s.scalars(select(Clip).where(Clip.path == paths[1])).one()
        upsert_flag(s, target.id, "cutoff", note="before")
        s.commit()
        text = ("path,reason,note\r\n"
                f"{paths[0]},other,fine\r\n"  # line 2
                f'{paths[1]},other,"unterminated\r\n'  # line 3: the quote is never closed
                f"{paths[2]},other,swallowed\r\n")
        with pytest.raises(ImportRejected) as err:
            parse_flags_file(text, "csv")
        assert err.value.problems == [(3, "a quoted field is never closed (the record starts on this line)")]
        with pytest.raises(ImportRejected):
            fl.import_flags(s, text)
    with store.sessions() as s:  # nothing changed: no new flag, the old one not overwritten
        rows = s.scalars(select(Flag)).all()
        assert [(f.clip_id, f.reason, f.note) for f in rows] == [(target.id, "cutoff", "before")]


class _ScanCountingText(str):
    """A real str that tallies how many characters ``str.count`` is asked to scan."""

    scanned = 0

    def count(self, sub, start=0, end=None):  # noqa: D102 - str.count, counted
        stop = len(self) if end is None else end
        type(self).scanned += max(0, stop - start)
        return super().count(sub, start, end)


def test_flag_files_json_line_numbers_cost_linear_work():
    n = 3000
    flags = [{"path": f"word/{i:05d}_nohash_0.wav", "reason": "other", "note": "x" * 40} for i in range(n)]
    body = ",\n".join(json.dumps(f) for f in flags)
    raw = '{"format": "earmark-flags", "version": 1, "flags": [\n' + body + "\n]}\n"
    text = _ScanCountingText(raw)
    _ScanCountingText.scanned = 0
    rows, problems = parse_flags_file(text, "json")
    assert problems == [] and len(rows) == n
    assert [ln for ln, _ in rows[:3]] == [2, 3, 4] and rows[-1][0] == n + 1  # one flag per line
    # Quadratic line counting scans about n/2 × the file; linear counting scans it about once.
    assert _ScanCountingText.scanned <= 2 * len(raw), (_ScanCountingText.scanned, len(raw))


def test_flag_files_json_multiline_entries_keep_their_lines():
    text = '{"flags": [\n  {"path": "a.wav",\n   "reason": "other"},\n\n  {"path": "b.wav", "reason": "other"},\n  3\n]}'
    rows, problems = parse_flags_file(text, "json")
    assert [ln for ln, _ in rows] == [2, 5] and problems == [(6, "flag #3 is not an object")]
