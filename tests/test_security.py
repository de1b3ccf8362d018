"""The token (cookie or bearer), the cross-site request guard, and refusing to serve beyond loopback."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.errors import EarmarkError
from app.web.main import create_app
from app.web.security import COOKIE_NAME, check_bind, safe_next, session_cookie_value, token_matches
from tests.factories import make_run

TOKEN = "s3cret-token-value"


@pytest.fixture
def locked(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "audio", n_clips=12)
    settings = sqlite_store.settings.model_copy(update={"token": TOKEN})
    return TestClient(create_app(settings)), fx


def test_check_bind_needs_a_token_beyond_loopback():
    check_bind("127.0.0.1", None)
    check_bind("localhost", None)
    check_bind("0.0.0.0", "tok")
    with pytest.raises(EarmarkError, match="refusing to listen on 0.0.0.0"):
        check_bind("0.0.0.0", None)
    with pytest.raises(EarmarkError):
        check_bind("192.168.1.5", "")


def test_serve_refuses_a_public_host_without_a_token(monkeypatch, tmp_path):
    from app.cli import app as cli

    monkeypatch.setenv("EARMARK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("EARMARK_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "8765"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0" in result.output and "EARMARK_TOKEN" in result.output


def test_every_request_needs_the_token(locked):
    client, fx = locked
    r = client.get("/api/runs")
    assert r.status_code == 401 and r.json()["title"] == "authentication required"
    r = client.get(f"/clips?run={fx.run_id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fclips%3Frun%3D")
    assert client.get(f"/media/clips/{fx.clip_ids[0]}/audio.wav").status_code == 401
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/static/app.css").status_code == 200  # the login page needs its style
    assert client.get("/login").status_code == 200


def test_bearer_token_opens_the_api(locked):
    client, fx = locked
    assert client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = client.post(f"/api/clips/{fx.clip_ids[0]}/flag", json={"reason": "other"},
                    headers={"Authorization": f"Bearer {TOKEN}", "X-Earmark-CSRF": "1"})
    assert r.status_code == 200


def test_login_sets_a_cookie_that_is_not_the_token(locked):
    client, fx = locked
    bad = client.post("/login", data={"token": "nope", "next": "/clips"}, follow_redirects=False)
    assert bad.status_code == 401 and "not right" in bad.text
    ok = client.post("/login", data={"token": TOKEN, "next": "/clips"}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/clips"
    cookie = client.cookies.get(COOKIE_NAME)
    assert cookie and TOKEN not in cookie and cookie == session_cookie_value(TOKEN)
    assert "httponly" in ok.headers["set-cookie"].lower() and "samesite=strict" in ok.headers["set-cookie"].lower()
    assert client.get(f"/clips?run={fx.run_id}").status_code == 200
    client.cookies.set(COOKIE_NAME, "forged")
    assert client.get("/api/runs").status_code == 401


def test_login_never_redirects_off_site(locked):
    client, _ = locked
    r = client.post("/login", data={"token": TOKEN, "next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/"
    assert safe_next("https://evil.example") == "/" and safe_next("/\\evil") == "/" and safe_next("/a?b=1") == "/a?b=1"


def test_state_changes_need_the_csrf_header(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=6, write_audio=False)
    client = TestClient(create_app(sqlite_store.settings))
    url = f"/api/clips/{fx.clip_ids[0]}/flag"
    r = client.post(url, json={"reason": "other"})
    assert r.status_code == 403 and "X-Earmark-CSRF" in r.json()["detail"]
    # a form post from another site (no custom header possible) is refused as well
    assert client.post(url, data={"reason": "other"}, headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.post(url, json={"reason": "other"}, headers={"X-Earmark-CSRF": "0"}).status_code == 403
    assert client.post(url, json={"reason": "other"}, headers={"X-Earmark-CSRF": "1"}).status_code == 200
    assert client.get(url).status_code == 405  # no state change over GET


def test_token_compare():
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN)
    assert not token_matches("", TOKEN) and not token_matches(None, TOKEN)
