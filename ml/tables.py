"""Manifest files as columns: CSV/TSV, Parquet and JSON Lines in, cells and per-row locations out.

The file-format half of ``ml.manifests``: decoding (UTF-8 only), quoting, line numbers, native
types from Parquet and JSON, and the type inference of text cells (number, text, boolean). Every
problem is a ``ManifestError`` naming the file and the line (or Parquet row).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_EXTENSIONS = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
MAX_LISTED = 5  # rows quoted in one error message


class ManifestError(Exception):
    """A manifest, name pattern or layout that cannot be read; the app shows it as an EarmarkError."""

    def __init__(self, title: str, detail: str = "", hint: str = ""):
        super().__init__(f"{title}: {detail}" if detail else title)
        self.title, self.detail, self.hint = title, detail, hint


@dataclass
class Table:
    """A manifest file's cells: column -> values (str from CSV/TSV, native from Parquet/JSON Lines)."""

    path: Path
    columns: dict[str, list[Any]]
    typed: dict[str, str]  # column -> meta type known from the file format (Parquet, JSON)
    lines: list[int]  # per row: its line in the file (CSV, JSON Lines) or its row number (Parquet)
    unit: str = "line"  # "line" | "row"
    ignored: list[str] = field(default_factory=list)  # nested columns (lists, structs, bytes)

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, i: int) -> str:
        """Where row ``i`` is in the file: "line 4" or "row 3"."""
        return f"{self.unit} {self.lines[i]}"


def fail_rows(title: str, rows: list[str], hint: str = "") -> ManifestError:
    """One error naming the first few offending rows and how many more there are."""
    more = f" (and {len(rows) - MAX_LISTED} more)" if len(rows) > MAX_LISTED else ""
    return ManifestError(title, "; ".join(rows[:MAX_LISTED]) + more, hint)


def _decode_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ManifestError(f"{path.name} is not UTF-8 text",
                            f"line {line}: byte {data[exc.start:exc.start + 1]!r} at offset {exc.start}",
                            "save the manifest as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def _read_csv(path: Path) -> Table:
    text = _decode_text(path)
    first = text.split("\n", 1)[0]
    tab = path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tab else ",", strict=True)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise ManifestError(f"{path.name} is empty", "no header line", "the first line names the columns")
        header = [h.strip() for h in header]
        rows: list[list[str]] = []
        lines: list[int] = []
        add_row, add_line = rows.append, lines.append
        end = reader.line_num
        for row in reader:  # the hot loop: 105k rows in ~0.1 s; a row's line is where it starts
            add_row(row)
            add_line(end + 1)
            end = reader.line_num
    except csv.Error as exc:
        # strict: an open quote runs to the end of the file; name the line its record starts on
        what = "a quoted field is never closed" if "end of data" in str(exc) else str(exc)
        raise ManifestError(f"{path.name} is not valid {'TSV' if tab else 'CSV'}", f"line {end + 1}: {what}",
                            "check the quoting on that line (a field with a comma or quote must be quoted, "
                            "quotes inside doubled)") from None
    n = len(header)
    if any(len(r) != n for r in rows):
        keep = [i for i, r in enumerate(rows) if len(r) == n]
        bad = [f"line {lines[i]}: {len(r)} fields, the header has {n}" for i, r in enumerate(rows)
               if len(r) != n and (len(r) > 1 or r and r[0].strip())]
        if bad:
            raise fail_rows(f"{path.name} has rows of the wrong length", bad, "every row needs one value per column")
        rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]  # blank lines dropped
    cells = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return Table(path, _columns(path, header, cells), {}, lines)


def _columns(path: Path, header: list[str], cells: list[list[Any]]) -> dict[str, list[Any]]:
    seen: dict[str, int] = {}
    for h in header:
        if not h:
            raise ManifestError(f"{path.name} has a column with no name", f"header: {header}")
        seen[h.lower()] = seen.get(h.lower(), 0) + 1
    dup = sorted(h for h, n in seen.items() if n > 1)
    if dup:
        raise ManifestError(f"{path.name} names a column twice", ", ".join(dup), "give every column its own name")
    return dict(zip(header, cells, strict=True))


def _scalar_type(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (list, tuple, dict, bytes, bytearray)):
        return "nested"
    return "text"  # str, and dates, times, decimals as their text


def _read_jsonl(path: Path) -> Table:
    text = _decode_text(path)
    rows: list[dict] = []
    lines: list[int] = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path.name} is not valid JSON Lines", f"line {i}: {exc.msg} (column {exc.colno})",
                                "each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise ManifestError(f"{path.name} is not valid JSON Lines",
                                f"line {i}: a {type(obj).__name__}, not an object", "each line must be one JSON object")
        rows.append(obj)
        lines.append(i)
    header: list[str] = list(dict.fromkeys(k for r in rows for k in r))
    cells = {h: [r.get(h) for r in rows] for h in header}
    return _typed_table(path, cells, lines, "line")


def _typed_table(path: Path, cells: dict[str, list[Any]], lines: list[int], unit: str) -> Table:
    typed, ignored = {}, []
    for name, values in list(cells.items()):
        kinds = {_scalar_type(v) for v in values} - {None}
        if "nested" in kinds:
            ignored.append(name)
            del cells[name]
        else:
            typed[name] = kinds.pop() if len(kinds) == 1 else "text"
    _columns(path, list(cells), list(cells.values()))
    return Table(path, cells, typed, lines, unit, ignored)


def _read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ManifestError(f"{path.name} is not a readable Parquet file", str(exc).splitlines()[0][:300]) from None
    cells = {}
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_nested(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
            cells[name] = [{"nested": True}]  # marks the column ignored below
            continue
        cells[name] = col.to_pylist()
    return _typed_table(path, cells, list(range(1, table.num_rows + 1)), "row")


def read_table(path: str | Path) -> Table:
    """Read one manifest file (CSV, TSV, Parquet or JSON Lines, by extension) into columns."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"no manifest at {path}", "the file does not exist or is not a file")
    ext = path.suffix.lower()
    if ext not in MANIFEST_EXTENSIONS:
        raise ManifestError(f"{path.name} is not a manifest earmark reads",
                            f"the extension {ext or '(none)'} is none of {', '.join(MANIFEST_EXTENSIONS)}")
    if ext in (".parquet", ".pq"):
        return _read_parquet(path)
    if ext in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path)
    return _read_csv(path)


def peek_columns(path: Path) -> list[str]:
    """A manifest's column names from its header alone ([] when it cannot be read)."""
    try:
        ext = path.suffix.lower()
        if ext in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline()
        if ext in (".jsonl", ".ndjson", ".json"):
            obj = json.loads(first)
            return list(obj) if isinstance(obj, dict) else []
        tab = ext == ".tsv" or ("\t" in first and "," not in first)
        return [h.strip() for h in next(csv.reader([first], delimiter="\t" if tab else ","), [])]
    except (OSError, ValueError, csv.Error, ImportError):
        return []


def infer_meta_type(values: list[Any]) -> tuple[str, list[Any]]:
    """(type, typed values) for text cells: boolean (true/false), number, else text; '' is missing."""
    present = [v.strip() if isinstance(v, str) else v for v in values]
    present = [None if v == "" else v for v in present]
    words = {v.lower() for v in present if v is not None}
    if words and words <= {"true", "false"}:
        return "boolean", [None if v is None else v.lower() == "true" for v in present]
    if words:
        try:
            return "number", [None if v is None else int(v) for v in present]
        except ValueError:
            pass
        try:
            return "number", [None if v is None else float(v) for v in present]
        except ValueError:
            pass
    return "text", present
