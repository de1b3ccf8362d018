"""Access control: the shared token, the login cookie, and the cross-site request guard.

- ``check_bind(host, token)``: binding to anything but loopback needs a token (``EARMARK_TOKEN``).
- With a token set, every request needs it: the ``earmark_session`` cookie that ``/login`` sets
  (an HMAC of the token, not the token itself) or ``Authorization: Bearer <token>``. Compared in
  constant time. Static files and the login page are open so the login form can render.
- Every request that is not GET/HEAD/OPTIONS must carry ``X-Earmark-CSRF: 1``. Browsers cannot add
  a custom header to a cross-site request without a CORS preflight, which this app never grants,
  so a hostile page cannot change state. The login form is the one exception (it proves itself
  with the token).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse

from app.config import LOOPBACK_HOSTS
from app.errors import EarmarkError
from app.web.deps import CSRF_HEADER

COOKIE_NAME = "earmark_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_PREFIXES = ("/static/", "/login", "/favicon.ico")


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token."""
    if host not in LOOPBACK_HOSTS and not token:
        raise EarmarkError(
            f"refusing to listen on {host} without a token",
            detail="anyone who can reach this address could read and change your flags",
            hint="set EARMARK_TOKEN to a long random secret (e.g. `export EARMARK_TOKEN=$(openssl rand -hex 16)`), "
                 "or serve on 127.0.0.1",
        )


def session_cookie_value(token: str) -> str:
    """What the login cookie holds: an HMAC of the token, so the cookie never reveals it."""
    return hmac.new(token.encode(), b"earmark-session-v1", hashlib.sha256).hexdigest()


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def is_authenticated(request: Request, token: str) -> bool:
    """True when the request carries the token as a bearer header or a valid login cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and token_matches(auth[7:].strip(), token):
        return True
    cookie = request.cookies.get(COOKIE_NAME)
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_cookie_value(token).encode())


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _wants_json(path: str) -> bool:
    return path.startswith("/api") or path.startswith("/media") or path == "/openapi.json"


async def guard(request: Request, call_next):
    """HTTP middleware: token check first, then the CSRF header on state-changing requests."""
    token = request.app.state.settings.token
    path = request.url.path
    if token and not path.startswith(OPEN_PREFIXES) and not is_authenticated(request, token):
        if _wants_json(path) or request.method not in SAFE_METHODS:
            return JSONResponse(
                {"title": "authentication required", "detail": "this earmark server needs its token",
                 "hint": "send `Authorization: Bearer <token>` or log in at /login", "status": 401},
                status_code=401, headers={"WWW-Authenticate": "Bearer"},
            )
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if request.method not in SAFE_METHODS and path != "/login" and request.headers.get(CSRF_HEADER) != "1":
        return JSONResponse(
            {"title": "missing cross-site request header", "status": 403,
             "detail": f"state-changing requests must carry the header {CSRF_HEADER}: 1",
             "hint": "use earmark.post() from static/app.js, or add the header to your client"},
            status_code=403,
        )
    return await call_next(request)
