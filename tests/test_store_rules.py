"""The store is the one door: rules that keep it so, checked on the source tree.

- no SQL under ``app/web`` (routes read through ``app.store`` and ``app.web.views``);
- no SQL under ``app/pipeline``, ``app/cli`` or ``earmark/``: they import nothing from SQLAlchemy
  but the ``Session`` type, and add, delete or query no rows themselves;
- ``np.frombuffer`` on stored vectors only in ``app/store/codec.py``;
- neighbour lists written only by ``earmark project``, clip scores only by ``earmark analyze``;
- no legacy ``session.query`` anywhere under ``app/``.
"""

from __future__ import annotations

import re
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
SQL_CALLS = re.compile(r"\bselect\(|\.execute\(|\.query\(")


def _sources(root: Path) -> dict[str, str]:
    return {str(p.relative_to(APP.parent)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}


def _lines(sources: dict[str, str], pattern: re.Pattern) -> list[str]:
    return [f"{name}:{i}: {line.strip()}" for name, text in sources.items()
            for i, line in enumerate(text.splitlines(), start=1) if pattern.search(line)]


def test_rules_no_sql_under_app_web():
    hits = _lines(_sources(APP / "web"), SQL_CALLS)
    assert hits == [], "routes must call app.store or app.web.views, not run SQL:\n" + "\n".join(hits)


SQLALCHEMY_IMPORT = re.compile(r"^\s*(from\s+sqlalchemy[\w.]*\s+import\s+(?P<names>.+)|import\s+sqlalchemy\b.*)$")
ROW_WRITES = re.compile(r"\b(session|s|sess)\.(add|add_all|delete|merge|bulk_save_objects|bulk_insert_mappings)\(")


def _sqlalchemy_imports(sources: dict[str, str]) -> list[str]:
    """Every SQLAlchemy import but ``from sqlalchemy.orm import Session`` (a type for signatures)."""
    hits = []
    for name, text in sources.items():
        for i, line in enumerate(text.splitlines(), start=1):
            m = SQLALCHEMY_IMPORT.match(line)
            if m and not (line.strip().startswith("from sqlalchemy.orm ")
                          and [n.strip() for n in (m.group("names") or "").split("#")[0].split(",")] == ["Session"]):
                hits.append(f"{name}:{i}: {line.strip()}")
    return hits


def test_rules_no_sql_in_the_pipeline_the_cli_or_the_client():
    sources: dict[str, str] = {}
    for root in (APP / "pipeline", APP / "cli", APP.parent / "earmark"):
        sources.update(_sources(root))
    assert any(name.startswith("app/pipeline/ingest.py") for name in sources)  # the rule reads the real tree
    hits = _sqlalchemy_imports(sources) + _lines(sources, SQL_CALLS) + _lines(sources, ROW_WRITES)
    assert hits == [], "call app.store (add the query to the aggregate's module there):\n" + "\n".join(hits)


def test_rules_float32_blobs_decoded_only_by_the_codec():
    hits = [h for h in _lines(_sources(APP), re.compile(r"np\.frombuffer\(|numpy\.frombuffer\("))
            if not h.startswith("app/store/codec.py:")]
    assert hits == [], "decode stored vectors with app.store.codec:\n" + "\n".join(hits)


def test_rules_one_writer_for_neighbours_and_for_scores():
    sources = _sources(APP)
    writers = {
        "replace_neighbors(": {"app/store/neighbors.py", "app/pipeline/project.py"},
        "replace_clip_scores(": {"app/store/scores.py", "app/pipeline/analyze.py"},
        "NeighborList(": {"app/store/models.py"},
    }
    for call, allowed in writers.items():
        found = {name for name, text in sources.items() if call in text}
        assert found <= allowed and found, f"{call} appears in {sorted(found - allowed)}"
    # nothing but the store module writes the tables by hand
    for table in ("NeighborList", "ClipScore"):
        hand = re.compile(rf"(insert|delete|update)\({table}\b|bulk_insert\(\w+, {table}\b")
        hits = [h for h in _lines(sources, hand) if not h.startswith(("app/store/neighbors.py", "app/store/scores.py"))]
        assert hits == [], "\n".join(hits)


def test_rules_no_legacy_session_query_under_app():
    hits = _lines(_sources(APP), re.compile(r"\.query\("))
    assert hits == [], "use 2.0-style select():\n" + "\n".join(hits)


def test_rules_scripts_take_their_urls_from_the_server():
    """static/*.js fill in the URL templates base.html hands them (app.web.urls.js_templates)."""
    static = APP.parent / "static"
    path_literal = re.compile(r"""["'`]/(api|media|clips|flags|findings)\b""")
    hits = [f"{p.name}:{i}: {line.strip()}" for p in sorted(static.glob("*.js"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if path_literal.search(line)]
    assert hits == [], "use earmark.url(name, params):\n" + "\n".join(hits)
    templates = APP.parent / "templates"
    media = [f"{p.name}:{i}" for p in sorted(templates.glob("*.html"))
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if "/media/clips" in line]
    assert media == [], "media URLs come from app.web.urls: " + ", ".join(media)
