"""The flags file format: CSV and JSON rendering and parsing, formula escaping, canonical times.

Pure functions, no store access: ``app.pipeline.flags`` exports and imports through them.

CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) are
written with a leading apostrophe, and so is any cell that itself starts with an apostrophe; the
parser strips exactly one leading apostrophe. The escaping is a bijection, so the round trip stays
exact while a file opened in a spreadsheet never executes anything. Times are ISO 8601 UTC with
microseconds (``2026-11-21T12:41:47.123456Z``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

from app.errors import EarmarkError
from app.limits import MAX_JSON_DEPTH, check_text, json_depth

EXPORT_COLUMNS = ("dataset", "path", "label", "reason", "corrected_label", "note", "author", "time")
REQUIRED_COLUMNS = ("path", "reason")
JSON_FORMAT = "earmark-flags"
JSON_VERSION = 1
MAX_LISTED_PROBLEMS = 50
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time that carries a timezone (``Z`` or an offset); returns it in UTC."""
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        raise ValueError("the time has no timezone; add Z for UTC")
    return dt.astimezone(UTC)


def csv_escape(value: str) -> str:
    """Neutralise spreadsheet formulas with a leading apostrophe (reversible, see the module doc)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_unescape(value: str) -> str:
    """Undo ``csv_escape``: drop exactly one leading apostrophe."""
    return value[1:] if value.startswith("'") else value


def render_csv(records: list[dict]) -> str:
    """CSV text (RFC 4180, CRLF line ends, a header row) with formula-escaped cells."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(EXPORT_COLUMNS)
    for r in records:
        w.writerow([csv_escape("" if r[c] is None else str(r[c])) for c in EXPORT_COLUMNS])
    return buf.getvalue()


def render_json(records: list[dict]) -> str:
    """JSON text: ``{"format", "version", "flags": [...]}`` with one flag per line (diffable)."""
    lines = [json.dumps({c: r[c] for c in EXPORT_COLUMNS}, ensure_ascii=False) for r in records]
    body = ",\n".join(lines)
    head = f'{{"format": "{JSON_FORMAT}", "version": {JSON_VERSION}, "flags": ['
    return head + ("\n" + body + "\n" if lines else "") + "]}\n"


class ImportRejected(EarmarkError):
    """An import file with problems; nothing was changed. ``problems`` lists (line, message)."""

    status = 422

    def __init__(self, problems: list[tuple[int, str]], source: str = "the file"):
        self.problems = problems
        shown = "\n".join(f"line {ln}: {msg}" for ln, msg in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        if more > 0:
            shown += f"\n... and {more} more"
        super().__init__(
            f"{source} was rejected: {len(problems)} problem{'s' if len(problems) != 1 else ''}; nothing was changed",
            detail=shown, hint="fix the listed lines (the format is what `earmark export-flags` writes) and import again",
        )

    def as_dict(self) -> dict:
        """The API form, with every problem as ``{"line", "message"}``."""
        d = super().as_dict()
        d["problems"] = [{"line": ln, "message": msg} for ln, msg in self.problems]
        return d


def _parse_csv(text: str) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    # strict: a quote left open must be an error, not a field that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected([(1, "the file is empty; expected a header row")]) from None
    except csv.Error as exc:
        raise ImportRejected([(1, f"malformed CSV: {exc}")]) from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    problems = []
    unknown = [h for h in header if h not in EXPORT_COLUMNS]
    if unknown:
        problems.append((1, f"unknown column(s) {', '.join(map(repr, unknown))}; "
                            f"columns are {', '.join(EXPORT_COLUMNS)}"))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        problems.append((1, f"missing column(s) {', '.join(missing)}"))
    if len(set(header)) != len(header):
        problems.append((1, "a column appears twice"))
    if problems:
        raise ImportRejected(problems)
    rows: list[tuple[int, dict]] = []
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # strict mode: an unterminated quote reaches the end of the file; name the record's first line
            what = ("a quoted field is never closed" if "end of data" in str(exc) else f"malformed CSV: {exc}")
            raise ImportRejected([(start, f"{what} (the record starts on this line)")]) from None
        line, start = start, reader.line_num + 1
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        if len(cells) != len(header):
            problems.append((line, f"expected {len(header)} fields, found {len(cells)}"))
            continue
        rows.append((line, {h: csv_unescape(v) for h, v in zip(header, cells, strict=True)}))
    return rows, problems


def _parse_json(text: str) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    if (depth := json_depth(text)) > MAX_JSON_DEPTH:  # the parser recurses: refuse before it runs out of stack
        raise ImportRejected([(1, f"the JSON is nested {depth:,} levels deep (at most {MAX_JSON_DEPTH})")])
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRejected([(exc.lineno, f"malformed JSON: {exc.msg}")]) from None
    items = doc.get("flags") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ImportRejected([(1, 'expected {"flags": [...]} or a list of flags')])
    # Find each entry's line: walk the array with raw_decode from the "flags" key (or the top list).
    m = re.search(r'"flags"\s*:\s*\[', text) if isinstance(doc, dict) else re.match(r"\s*\[", text)
    lines: list[int] = []
    if m:
        # Count newlines only between consecutive entries, so the walk stays linear in the file size.
        dec, pos = json.JSONDecoder(), m.end()
        line, counted = 1, 0
        for _ in items:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            line += text.count("\n", counted, pos)
            counted = pos
            lines.append(line)
            try:
                _, pos = dec.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
    rows, problems = [], []
    for i, item in enumerate(items):
        line = lines[i] if i < len(lines) else 1
        if not isinstance(item, dict):
            problems.append((line, f"flag #{i + 1} is not an object"))
            continue
        unknown = [k for k in item if k not in EXPORT_COLUMNS]
        if unknown:
            problems.append((line, f"unknown field(s) {', '.join(map(repr, unknown))}"))
            continue
        bad = [k for k, v in item.items() if v is not None and not isinstance(v, str)]
        if bad:
            problems.append((line, f"field(s) {', '.join(bad)} must be strings"))
            continue
        rows.append((line, {k: ("" if v is None else v) for k, v in item.items()}))
    return rows, problems


def parse_flags_file(data: bytes | str, fmt: str | None = None
                     ) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """Split an export file into ``(line number, record)`` pairs and ``(line, problem)`` pairs.

    A file that cannot be read at all (not UTF-8, not JSON, no header) raises ImportRejected.

    ``fmt`` is ``csv``, ``json`` or ``None`` (guess from the first non-blank character).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportRejected([(data[:exc.start].count(b"\n") + 1, "the file is not UTF-8 text")]) from None
    if fmt is None:
        fmt = "json" if data.lstrip()[:1] in ("{", "[") else "csv"
    if fmt not in ("csv", "json"):
        raise EarmarkError(f"unknown import format {fmt!r}", hint="use csv or json", status=422)
    rows, problems = _parse_json(data) if fmt == "json" else _parse_csv(data)
    clean = []
    for line, rec in rows:  # no NUL, no lone surrogate in any field: no database can store them
        try:
            for key, value in rec.items():
                check_text(value, key)
        except EarmarkError as exc:
            problems.append((line, exc.title))
            continue
        clean.append((line, rec))
    return clean, problems
