"""The input limits every door shares: the web, the CLI and the file imports.

- ``MAX_ID``: the largest row id earmark accepts anywhere (2^31 - 1, PostgreSQL's ``integer``; SQLite
  takes 2^63 - 1, so the smaller range is the one both databases can answer).
- ``parse_id(text)``: a row id from text, with a strict ASCII-digit check (``'²'.isdigit()`` is true
  and ``int('²')`` fails), or ``None`` when the text is not one.
- ``check_text(value, what)``: free text a person typed or a file holds must hold no NUL (PostgreSQL
  refuses it) and no lone surrogate (no database can encode it), and stay under a length cap.
- ``json_depth(data)`` / ``check_json(data)``: the nesting depth of a JSON document, measured without
  parsing it (Python's parser recurses: 100k nested arrays are a ``RecursionError``), and the check
  that refuses one nested deeper than ``MAX_JSON_DEPTH``.

Each raises ``app.errors.EarmarkError`` (422 or 400) naming the problem; nothing here touches a store.
"""

from __future__ import annotations

import operator
import re
from itertools import accumulate, count

from app.errors import EarmarkError

MAX_ID = 2**31 - 1
MAX_JSON_DEPTH = 64
_ASCII_ID = re.compile(r"[0-9]{1,10}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def is_id_text(text: str) -> bool:
    """Whether ``text`` is written as a row id: ASCII digits only (a name otherwise)."""
    return text.isascii() and text.isdigit()


def parse_id(text: str | int, what: str = "id") -> int | None:
    """``text`` as a row id in ``1..MAX_ID``; ``None`` when it is not all ASCII digits.

    All-digit text beyond the range raises ``EarmarkError`` (404: no such row can exist)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and is_id_text(text.strip()):
        digits = text.strip()
        value = int(digits) if _ASCII_ID.fullmatch(digits) else MAX_ID + 1
    else:
        return None
    if not 1 <= value <= MAX_ID:
        raise EarmarkError(f"no {what} {str(text)[:40]}", detail=f"ids run from 1 to {MAX_ID:,}", status=404)
    return value


def check_text(value: str, what: str, max_length: int | None = None) -> str:
    """``value`` unchanged, or an ``EarmarkError`` (422) for a NUL, a lone surrogate or too many characters."""
    if "\x00" in value:
        raise EarmarkError(f"the {what} contains a NUL character", hint="remove it and try again", status=422)
    if _SURROGATE.search(value):
        raise EarmarkError(f"the {what} is not valid Unicode (a lone surrogate)", hint="remove it and try again",
                           status=422)
    if max_length is not None and len(value) > max_length:
        raise EarmarkError(f"the {what} is longer than {max_length:,} characters ({len(value):,})",
                           hint="shorten it", status=422)
    return value


def json_depth(data: bytes | str) -> int:
    """The deepest nesting of arrays and objects in a JSON document (brackets inside strings ignored).

    Without parsing, in linear time: keep only brackets and quotes (``bytes.translate``), drop the
    strings, then the running level's maximum (C-level iterators; ~40 ns a bracket)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")  # escaped backslashes, then escaped quotes
    kept = b"".join(raw.translate(None, _NOT_STRUCTURE).split(b'"')[::2])  # outside the strings only
    steps = kept.translate(_STEP)  # an opener is 2, a closer 0: the level after byte i is sum - (i + 1)
    return max(map(operator.sub, accumulate(steps), count(1)), default=0)


def check_json(data: bytes | str, what: str = "the JSON body") -> None:
    """Refuse (400) a JSON document nested deeper than ``MAX_JSON_DEPTH`` before anything parses it."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:  # fewer openers than the limit: no need to measure
        return
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise EarmarkError(f"{what} is nested too deeply ({depth:,} levels; at most {MAX_JSON_DEPTH})",
                           hint="send a flat document", status=400)
