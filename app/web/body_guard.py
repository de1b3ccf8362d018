"""``JsonBodyGuard``: every JSON request body is measured before anything parses it.

Python's JSON parser recurses once per nesting level, so a body of 100k nested arrays ends in a
``RecursionError`` deep inside the framework. This ASGI middleware reads a JSON body first (at most
``MAX_JSON_BODY`` bytes: 413 beyond), refuses one nested deeper than ``app.limits.MAX_JSON_DEPTH``
(400, with the depth), and otherwise hands the same bytes on unchanged. Other bodies (forms, file
uploads) pass through untouched; their routes check their own limits.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import EarmarkError
from app.limits import check_json

MAX_JSON_BODY = 16 * 1024 * 1024  # a bulk flag of 200,000 clip ids is about 1.5 MB


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class JsonBodyGuard:
    """ASGI middleware: refuse a JSON body that is too large or nested too deeply, before it is parsed."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_JSON_BODY:
                await self._refuse(EarmarkError(f"the JSON body is larger than {MAX_JSON_BODY // 2**20} MB",
                                                hint="send fewer items per request", status=413), scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            check_json(body)
        except EarmarkError as exc:
            await self._refuse(exc, scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(exc: EarmarkError, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse(exc.as_dict(), status_code=exc.status)(scope, receive, send)
