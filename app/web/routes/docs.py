"""``/docs``: an offline API reference built from the app's own OpenAPI schema.

FastAPI's default ``/docs`` loads Swagger UI from a CDN, and no installed package ships its
assets, so this page lists every operation (method, path, summary, parameters) itself and links
the machine-readable ``/openapi.json``.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from app.web.deps import render

router = APIRouter(include_in_schema=False)
NAV = ("API", "/docs", 90)


def _operations(schema: dict) -> list[dict]:
    ops = []
    for path, methods in sorted(schema.get("paths", {}).items()):
        for method, op in methods.items():
            params = [dict(name=p.get("name"), where=p.get("in"), required=p.get("required", False),
                           type=(p.get("schema") or {}).get("type") or _any_of(p.get("schema") or {}),
                           description=p.get("description") or (p.get("schema") or {}).get("description", ""))
                      for p in op.get("parameters", [])]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ops.append(dict(method=method.upper(), path=path, summary=segments(op.get("summary", "")),
                            description=segments(first_paragraph(op.get("description", ""))), params=params,
                            body=(body.get("$ref") or "").rsplit("/", 1)[-1], tags=op.get("tags", [])))
    return ops


def first_paragraph(text: str) -> str:
    """The first paragraph of a docstring, its wrapped lines joined (a line alone may stop mid-sentence)."""
    para = re.split(r"\n\s*\n", (text or "").strip(), maxsplit=1)[0]
    return " ".join(line.strip() for line in para.splitlines())


def segments(text: str) -> list[dict]:
    """reStructuredText-ish ``code`` and `code` spans as ``[{text, code}]``, for the template to render
    escaped (no ``|safe``); other markup is left as text."""
    out = []
    for i, part in enumerate(re.split(r"``(.+?)``|`([^`]+)`", text or "")):
        if part:
            out.append(dict(text=part, code=i % 3 != 0))
    return out


def _any_of(schema: dict) -> str:
    kinds = [s.get("type") for s in schema.get("anyOf", []) if s.get("type") and s.get("type") != "null"]
    return " | ".join(kinds)


@router.get("/docs")
def show_docs(request: Request):
    """The API reference page."""
    return render(request, "docs.html", operations=_operations(request.app.openapi()))
