"""Access control: hosts, the shared token, login sessions, the cross-site request guard, security headers.

- ``check_bind(host, token)``: binding to anything but loopback needs a token (``EARMARK_TOKEN``), and
  a token shorter than ``MIN_TOKEN_LENGTH`` characters (spaces aside) is refused at start.
- Host check (DNS rebinding): a request is served only when its ``Host`` names this server: a loopback
  name, the configured ``EARMARK_HOST``, or a name in ``EARMARK_ALLOWED_HOSTS`` (comma-separated;
  ``*`` turns the check off). The port is not compared: a rebinding page must already use earmark's
  port to reach it. Bound to every interface (``0.0.0.0``) with no allowed hosts named, any host is
  served, since a token is required there and a rebound page cannot present it.
- With a token set, every request needs it: the ``earmark_session`` cookie that ``/login`` sets or
  ``Authorization: Bearer <token>`` (constant-time compare). The cookie is a random session id
  known only to this server process (``SessionBook``): it expires after ``EARMARK_SESSION_HOURS``,
  ``/logout`` revokes it, and a restart revokes them all. Failed logins are throttled per client
  address (``LoginThrottle``). Static files and the login page are open so the login form can render.
- Every request that is not GET/HEAD/OPTIONS must carry ``X-Earmark-CSRF: 1`` (the login form
  excepted: it proves itself with the token), and when the browser says where it comes from
  (``Origin``), that must be this server.
- Every response carries ``SECURITY_HEADERS`` and a Content-Security-Policy allowing only this
  origin, plus the hashes of the few inline scripts and handlers the templates hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from app.config import LOOPBACK_HOSTS, Settings
from app.errors import EarmarkError
from app.web.deps import CSRF_HEADER, TEMPLATES_DIR

COOKIE_NAME = "earmark_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_PREFIXES = ("/static/", "/login", "/favicon.ico")
MIN_TOKEN_LENGTH = 16
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
MAX_SESSIONS = 10_000  # oldest dropped beyond this, so a login loop cannot grow memory without end
LOGIN_FAILURES_ALLOWED = 5  # per client address and window
LOGIN_WINDOW_S = 60.0
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def check_token(token: str | None) -> None:
    """Refuse a configured token that is too short to stand up to guessing."""
    if token is not None and token != "" and len(token.strip()) < MIN_TOKEN_LENGTH:
        raise EarmarkError(
            f"EARMARK_TOKEN is too short: at least {MIN_TOKEN_LENGTH} characters are needed",
            detail="a short or blank token can be guessed; it is the only thing guarding the server",
            hint="use a long random secret, e.g. `export EARMARK_TOKEN=$(openssl rand -hex 16)`",
        )


def check_bind(host: str, token: str | None) -> None:
    """Refuse a weak token, and refuse to serve beyond this machine without a token."""
    check_token(token)
    if host not in LOOPBACK_HOSTS and not token:
        raise EarmarkError(
            f"refusing to listen on {host} without a token",
            detail="anyone who can reach this address could read and change your flags",
            hint="set EARMARK_TOKEN to a long random secret (e.g. `export EARMARK_TOKEN=$(openssl rand -hex 16)`), "
                 "or serve on 127.0.0.1",
        )


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the configured one."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _digest(session_id: str) -> str:
    # Sessions are looked up by a hash of the id, so lookup time says nothing about stored ids.
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionBook:
    """Login sessions held by this server process: random ids with an expiry, revocable.

    In memory, not in the store: a session is only worth anything to the process that issued it,
    a restart logging everyone out is an acceptable price (log in again with the token), and it
    needs no schema change. Thread-safe (sync routes run in a thread pool).
    """

    def __init__(self, ttl_s: float):
        self.ttl_s = ttl_s
        self._expiry: dict[str, float] = {}  # digest of the id -> monotonic expiry
        self._lock = threading.Lock()

    def open(self) -> str:
        """A new session id, valid for ``ttl_s`` seconds."""
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
            while len(self._expiry) >= MAX_SESSIONS:
                self._expiry.pop(next(iter(self._expiry)))
            self._expiry[_digest(session_id)] = now + self.ttl_s
        return session_id

    def valid(self, session_id: str | None) -> bool:
        """True for an id this process issued that has neither expired nor been revoked."""
        if not session_id:
            return False
        key = _digest(session_id)
        with self._lock:
            expiry = self._expiry.get(key)
            if expiry is not None and expiry <= time.monotonic():
                del self._expiry[key]
                expiry = None
        return expiry is not None

    def revoke(self, session_id: str | None) -> None:
        """Forget one session (logout)."""
        if session_id:
            with self._lock:
                self._expiry.pop(_digest(session_id), None)

    def revoke_all(self) -> None:
        """Forget every session."""
        with self._lock:
            self._expiry.clear()


class LoginThrottle:
    """At most ``LOGIN_FAILURES_ALLOWED`` failed logins per client address in ``LOGIN_WINDOW_S``."""

    def __init__(self, allowed: int = LOGIN_FAILURES_ALLOWED, window_s: float = LOGIN_WINDOW_S):
        self.allowed, self.window_s = allowed, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, client: str) -> int:
        """Seconds before ``client`` may try again (0: it may try now)."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self.allowed:
                return 0
            return max(1, int(times[0] + self.window_s - now + 0.999))

    def failed(self, client: str) -> None:
        """Record one failed login."""
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > MAX_SESSIONS:  # forget addresses whose failures have aged out
                self._failures = {c: t for c, t in self._failures.items() if t and t[-1] > now - self.window_s}
            self._recent(client, now).append(now)

    def succeeded(self, client: str) -> None:
        """Clear ``client``'s failures."""
        with self._lock:
            self._failures.pop(client, None)


class AuthState:
    """What the guard and the login routes share, one per app: sessions and the login throttle."""

    def __init__(self, settings: Settings):
        self.sessions = SessionBook(settings.session_hours * 3600)
        self.throttle = LoginThrottle()


_AUTH_LOCK = threading.Lock()


def auth_state(app: FastAPI) -> AuthState:
    """The app's ``AuthState``, made on first use."""
    with _AUTH_LOCK:
        state = getattr(app.state, "auth", None)
        if state is None:
            state = app.state.auth = AuthState(app.state.settings)
        return state


def client_address(request: Request) -> str:
    """The peer address, the key login throttling counts by."""
    return request.client.host if request.client else "unknown"


def is_authenticated(request: Request, token: str) -> bool:
    """True when the request carries the token as a bearer header or a live login session cookie."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and token_matches(auth[7:].strip(), token):
        return True
    return auth_state(request.app).sessions.valid(request.cookies.get(COOKIE_NAME))


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """Host names this server answers to, lower case; ``None`` when any host is accepted."""
    named = {h.strip().lower().rstrip(".") for h in settings.allowed_hosts.split(",") if h.strip()}
    if "*" in named:
        return None
    if settings.host in WILDCARD_HOSTS and not named:
        return None
    hosts = set(LOOPBACK_HOSTS) | named
    if settings.host not in WILDCARD_HOSTS:
        hosts.add(settings.host.lower().strip("[]"))
    return frozenset(hosts)


def host_name(netloc: str) -> str:
    """The name part of a ``Host`` value or URL authority: ``[::1]:8000`` → ``::1``, ``A.b:80`` → ``a.b``.

    ``""`` when the value is not a name with an optional numeric port.
    """
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        name, _, rest = netloc[1:].partition("]")
    else:
        name, _, port = netloc.partition(":")
        rest = f":{port}" if _ else ""
    if rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit()):
        return ""
    return name.rstrip(".")


def _origin_ok(origin: str, host_header: str, hosts: frozenset[str] | None) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc.lower() == host_header.lower():
        return True  # same origin as the request itself
    return hosts is not None and host_name(parts.netloc) in hosts


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", re.S)
_INLINE_HANDLER = re.compile(r"\son[a-z]+=\"([^\"]*)\"")


@lru_cache(maxsize=4)
def inline_script_hashes(templates_dir: Path = TEMPLATES_DIR) -> tuple[str, ...]:
    """CSP hash sources for every inline script and event handler written literally in the templates."""
    found: set[str] = set()
    for path in sorted(templates_dir.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        found.update(_INLINE_SCRIPT.findall(text))
        found.update(_INLINE_HANDLER.findall(text))
    return tuple(sorted(_hash_source(s) for s in found if "{{" not in s and "{%" not in s))


# Pages that draw with plotly's WebGL traces (scattergl): regl, inside plotly.min.js, compiles its draw
# calls with ``new Function``, so only these pages also allow 'unsafe-eval' (still only this origin's scripts).
EVAL_PAGES = ("/cloud",)


@lru_cache(maxsize=2)
def content_security_policy(allow_eval: bool = False) -> str:
    """Only this origin: scripts from /static plus the templates' own inline snippets (by hash).

    Styles allow inline (the templates use style attributes; plotly.js injects its stylesheet);
    images and audio may also be ``data:``/``blob:`` URLs that the page makes itself.
    """
    scripts = " ".join(("'self'", "'unsafe-hashes'", *(("'unsafe-eval'",) if allow_eval else ()),
                        *inline_script_hashes()))
    return ("default-src 'self'; "
            f"script-src {scripts}; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; "
            "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _problem(title: str, detail: str, hint: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"title": title, "detail": detail, "hint": hint, "status": status},
                        status_code=status, headers=headers)


def _wants_json(path: str) -> bool:
    return path.startswith("/api") or path.startswith("/media") or path == "/openapi.json"


async def _check(request: Request, call_next):
    settings = request.app.state.settings
    hosts = allowed_hosts(settings)
    host_header = request.headers.get("host", "")
    if hosts is not None and host_name(host_header) not in hosts:
        return _problem("unknown host", f"this earmark server does not answer to the host {host_header!r}",
                        "open it through 127.0.0.1 or localhost, or add the name to EARMARK_ALLOWED_HOSTS", 421)
    token = settings.token
    path = request.url.path
    if token and not path.startswith(OPEN_PREFIXES) and not is_authenticated(request, token):
        if _wants_json(path) or request.method not in SAFE_METHODS:
            return _problem("authentication required", "this earmark server needs its token",
                            "send `Authorization: Bearer <token>` or log in at /login", 401,
                            {"WWW-Authenticate": "Bearer"})
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("origin")
        if origin is not None and not _origin_ok(origin, host_header, hosts):
            return _problem("cross-site request refused", f"a request from {origin!r} may not change this server",
                            "change state from earmark's own pages, or from a client that sends no Origin", 403)
        if path != "/login" and request.headers.get(CSRF_HEADER) != "1":
            return _problem("missing cross-site request header",
                            f"state-changing requests must carry the header {CSRF_HEADER}: 1",
                            "use earmark.post() from static/app.js, or add the header to your client", 403)
    return await call_next(request)


async def guard(request: Request, call_next):
    """HTTP middleware: host, token, origin and CSRF checks, then the security headers on every answer."""
    response = await _check(request, call_next)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy",
                                content_security_policy(request.url.path in EVAL_PAGES))
    return response
