"""Unhandled errors: a generic 500 with an error id (details only in the server log), on a real uvicorn,
with the keep-alive connection still usable afterwards."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from app.web.main import create_app

SECRET_NOTE = "my private note 4711"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app: FastAPI):
    """A real uvicorn serving ``app`` on a free loopback port, in a thread; yields the port."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _app_with_failing_routes(store) -> FastAPI:
    """The product app plus two test-only routes that fail: a plain bug and a database error."""
    app = create_app(store.settings)

    def api_boom():
        raise RuntimeError(f"internal state leaked: {SECRET_NOTE}")

    def api_bad_sql():
        with store.sessions() as s:  # a failing statement with a bound parameter, as a buggy route would run
            s.execute(text("SELECT note FROM no_such_table WHERE note = :note"), {"note": SECRET_NOTE})

    def page_boom():
        raise RuntimeError(f"page state leaked: {SECRET_NOTE}")

    app.add_api_route("/api/test-boom", api_boom, methods=["GET", "POST"])
    app.add_api_route("/api/test-bad-sql", api_bad_sql)
    app.add_api_route("/test-page-boom", page_boom)
    return app


def test_server_error_body_is_generic_with_an_id_in_the_log(store, caplog):
    with serve(_app_with_failing_routes(store)) as port, caplog.at_level(logging.ERROR, logger="app.web.main"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path in ("/api/test-boom", "/api/test-bad-sql"):
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode()
            assert r.status == 500, body
            problem = json.loads(body)
            assert problem["title"] == "internal error"
            error_id = re.search(r"error id ([0-9a-f]{12})", problem["detail"]).group(1)
            # nothing of the failure in the body: no message, no SQL, no bound parameter, no class name
            for leak in (SECRET_NOTE, "no_such_table", "SELECT", "RuntimeError", "ProgrammingError",
                         "OperationalError", "Traceback"):
                assert leak not in body, (path, leak)
            logged = [rec for rec in caplog.records if error_id in rec.getMessage()]
            assert logged and logged[0].exc_info, path  # the details are in the server log, under the id
            assert SECRET_NOTE in logged[0].exc_info[1].__str__() or SECRET_NOTE in repr(logged[0].exc_info[1])
        conn.request("GET", "/test-page-boom")
        r = conn.getresponse()
        page = r.read().decode()
        assert r.status == 500 and "error id" in page and SECRET_NOTE not in page and "RuntimeError" not in page
        conn.close()


def test_server_error_keeps_the_keep_alive_connection_usable(sqlite_store):
    with serve(_app_with_failing_routes(sqlite_store)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/api/runs")
        r = conn.getresponse()
        r.read()
        assert r.status == 200
        first_socket = conn.sock
        for method in ("GET", "POST", "GET"):
            headers = {"X-Earmark-CSRF": "1", "Content-Type": "application/json"} if method == "POST" else {}
            conn.request(method, "/api/test-boom", body="{}" if method == "POST" else None, headers=headers)
            r = conn.getresponse()
            r.read()
            assert r.status == 500
            closes = (r.getheader("connection") or "").lower() == "close"
            # the next request on the same connection must work: either the socket stayed open, or the
            # server said it would close it (and http.client then opens a fresh one)
            conn.request("GET", "/api/runs")
            nxt = conn.getresponse()
            nxt.read()
            assert nxt.status == 200
            if not closes:
                assert conn.sock is first_socket  # the same keep-alive connection carried on
        conn.close()


@pytest.mark.parametrize("path", ["/api/test-boom", "/test-page-boom"])
def test_server_error_answers_carry_the_security_headers(sqlite_store, path):
    with serve(_app_with_failing_routes(sqlite_store)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        assert r.status == 500 and r.getheader("x-frame-options") == "DENY"
        conn.close()
