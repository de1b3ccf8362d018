"""Login and logout for a server started with ``EARMARK_TOKEN`` (see ``app.web.security``).

A correct token opens a server-side session (a random id in the ``earmark_session`` cookie) that
expires after ``EARMARK_SESSION_HOURS`` and that ``/logout`` revokes. Failed logins are throttled
per client address: after ``LOGIN_FAILURES_ALLOWED`` in a minute, the next tries get a 429.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

from app.web.deps import render
from app.web.security import COOKIE_NAME, auth_state, client_address, safe_next, token_matches

router = APIRouter(include_in_schema=False)


@router.get("/login")
def show_login(request: Request, next: Annotated[str, Query(max_length=2000)] = "/"):
    """The one-field login form (a plain redirect home when no token is configured)."""
    if not request.app.state.settings.token:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", runs=[], next=safe_next(next), error=None)


@router.post("/login")
def log_in(request: Request, token: Annotated[str, Form(max_length=1000)] = "",
           next: Annotated[str, Form(max_length=2000)] = "/"):
    """Check the token (constant time, throttled per client) and open a session."""
    configured = request.app.state.settings.token
    if not configured:
        return RedirectResponse(safe_next(next), status_code=303)
    auth, client = auth_state(request.app), client_address(request)
    wait = auth.throttle.wait_s(client)
    if wait:
        resp = render(request, "login.html", status_code=429, runs=[], next=safe_next(next),
                      error=f"Too many wrong tokens from your address. Try again in {wait} s.")
        resp.headers["Retry-After"] = str(wait)
        return resp
    if not token_matches(token, configured):
        auth.throttle.failed(client)
        return render(request, "login.html", status_code=401, runs=[], next=safe_next(next),
                      error="That token is not right.")
    auth.throttle.succeeded(client)
    auth.sessions.revoke(request.cookies.get(COOKIE_NAME))  # a fresh id on every login
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(COOKIE_NAME, auth.sessions.open(), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", max_age=max(1, round(auth.sessions.ttl_s)))
    return resp


@router.post("/logout")
def log_out(request: Request):
    """Revoke this session on the server and forget the cookie."""
    auth_state(request.app).sessions.revoke(request.cookies.get(COOKIE_NAME))
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(COOKIE_NAME)
    return resp
