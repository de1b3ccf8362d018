"""Login and logout for a server started with ``EARMARK_TOKEN`` (see ``app.web.security``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse

from app.web.deps import render
from app.web.security import COOKIE_NAME, safe_next, session_cookie_value, token_matches

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
    """Check the token (constant time) and set the session cookie."""
    configured = request.app.state.settings.token
    if not configured:
        return RedirectResponse(safe_next(next), status_code=303)
    if not token_matches(token, configured):
        return render(request, "login.html", status_code=401, runs=[], next=safe_next(next),
                      error="That token is not right.")
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(COOKIE_NAME, session_cookie_value(configured), httponly=True, samesite="strict",
                    secure=request.url.scheme == "https", max_age=30 * 24 * 3600)
    return resp


@router.post("/logout")
def log_out():
    """Forget the session cookie."""
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(COOKIE_NAME)
    return resp
