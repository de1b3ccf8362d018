"""The token (cookie or bearer), the cross-site request guard, and refusing to serve beyond loopback."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.errors import EarmarkError
from app.web.main import create_app
from app.web.security import COOKIE_NAME, check_bind, safe_next, token_matches
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
    check_bind("0.0.0.0", "a-long-enough-token")
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
    assert cookie and TOKEN not in cookie and len(cookie) >= 40
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


def _login(client) -> str:
    ok = client.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert ok.status_code == 303
    return client.cookies.get(COOKIE_NAME)


def test_auth_sessions_are_random_revocable_and_expire(sqlite_store):
    settings = sqlite_store.settings.model_copy(update={"token": TOKEN, "session_hours": 0.5 / 3600})
    app = create_app(settings)
    first, second = TestClient(app), TestClient(app)
    a, b = _login(first), _login(second)
    assert a != b  # a fresh random id per login, not a fixed function of the token
    assert "max-age=1" in first.post("/login", data={"token": TOKEN}, follow_redirects=False).headers["set-cookie"].lower()
    a = first.cookies.get(COOKIE_NAME)
    assert first.get("/api/runs").status_code == 200
    # logout revokes on the server: replaying the old cookie is refused
    assert first.post("/logout", headers={"X-Earmark-CSRF": "1"}).status_code == 200
    replay = TestClient(app, cookies={COOKIE_NAME: a})
    assert replay.get("/api/runs").status_code == 401
    assert second.get("/api/runs").status_code == 200  # the other session lives on
    import time
    time.sleep(0.6)  # past the half-second lifetime
    assert second.get("/api/runs").status_code == 401


def test_auth_login_is_throttled_per_client(locked):
    client, _ = locked
    for _ in range(5):
        assert client.post("/login", data={"token": "wrong-guess-0000000"}).status_code == 401
    r = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert "Too many wrong tokens" in r.text and client.cookies.get(COOKIE_NAME) is None


@pytest.mark.parametrize("token", ["x", "   ", " " * 20, "short-token-15ch"[:15]])
def test_auth_short_or_blank_token_is_refused_at_start(monkeypatch, tmp_path, token):
    from app.cli import app as cli

    with pytest.raises(EarmarkError, match="too short"):
        check_bind("127.0.0.1", token)
    monkeypatch.setenv("EARMARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EARMARK_TOKEN", token)
    result = CliRunner().invoke(cli, ["serve", "--port", "8765"])
    assert result.exit_code == 1 and "EARMARK_TOKEN is too short" in result.output
    check_bind("127.0.0.1", "sixteen-chars-ok")


def test_security_headers_on_pages_api_static_and_errors(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=6, write_audio=False)
    client = TestClient(create_app(sqlite_store.settings))
    for url in ["/", f"/clips?run={fx.run_id}", "/api/runs", "/static/app.css", "/no/such/page",
                f"/issues?run={fx.run_id}"]:
        r = client.get(url)
        assert r.headers["x-frame-options"] == "DENY", url
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["referrer-policy"] == "same-origin", url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, url
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0], url


def test_security_csp_hashes_every_inline_script_a_page_renders(sqlite_store, tmp_path):
    """Each inline script or handler that a page renders is allowed by its hash, so the CSP breaks nothing."""
    import base64
    import hashlib
    import re

    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=6, write_audio=False)
    client = TestClient(create_app(sqlite_store.settings))
    seen = 0
    for url in ["/", f"/clips?run={fx.run_id}", f"/issues?run={fx.run_id}", "/flags", f"/cloud?run={fx.run_id}",
                "/compare", f"/confusion?run={fx.run_id}",
                f"/clips/{fx.clip_ids[0]}?run={fx.run_id}", "/docs"]:
        r = client.get(url)
        assert r.status_code == 200, url
        snippets = re.findall(r"<script(?![^>]*\ssrc=)(?![^>]*application/json)[^>]*>(.*?)</script>", r.text, re.S)
        snippets += re.findall(r"\son[a-z]+=\"([^\"]*)\"", r.text)
        for snippet in snippets:
            digest = base64.b64encode(hashlib.sha256(snippet.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in r.headers["content-security-policy"], (url, snippet[:60])
            seen += 1
    assert seen >= 1  # the Issues page's script (the run picker has no inline handler: app.js wires it)


@pytest.mark.parametrize("host", ["attacker.example:8123", "attacker.example", "127.0.0.1.attacker.example",
                                  "localhost.evil:8000", ""])
def test_dns_rebinding_unknown_host_is_refused(sqlite_store, tmp_path, host):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=6, write_audio=False)
    client = TestClient(create_app(sqlite_store.settings))
    url = f"/api/clips/{fx.clip_ids[0]}/flag"
    r = client.post(url, json={"reason": "other"}, headers={"Host": host, "X-Earmark-CSRF": "1"})
    assert r.status_code == 421 and r.json()["title"] == "unknown host"
    assert client.get("/api/runs", headers={"Host": host}).status_code == 421
    assert client.get(f"/api/clips/{fx.clip_ids[0]}").json()["flag"] is None  # nothing changed


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST", "studio.lan:80"])
def test_dns_rebinding_serving_hosts_are_accepted(sqlite_store, host):
    settings = sqlite_store.settings.model_copy(update={"allowed_hosts": "studio.lan"})
    client = TestClient(create_app(settings))
    assert client.get("/api/runs", headers={"Host": host}).status_code == 200


def test_dns_rebinding_configured_host_and_wildcard(sqlite_store):
    named = TestClient(create_app(sqlite_store.settings.model_copy(update={"host": "10.1.2.3", "allowed_hosts": ""})))
    assert named.get("/api/runs", headers={"Host": "10.1.2.3:8000"}).status_code == 200
    assert named.get("/api/runs", headers={"Host": "10.1.2.4:8000"}).status_code == 421
    # on every interface a token is required; with no names given, the token is the guard
    anywhere = TestClient(create_app(sqlite_store.settings.model_copy(
        update={"host": "0.0.0.0", "allowed_hosts": "", "token": TOKEN})))
    r = anywhere.get("/api/runs", headers={"Host": "box.local:8000", "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200


def test_writes_from_another_origin_are_refused(sqlite_store, tmp_path):
    with sqlite_store.sessions() as s:
        fx = make_run(s, tmp_path / "a", n_clips=6, write_audio=False)
    client = TestClient(create_app(sqlite_store.settings))
    url = f"/api/clips/{fx.clip_ids[0]}/flag"
    csrf = {"X-Earmark-CSRF": "1", "Host": "127.0.0.1:8000"}
    for origin in ["http://attacker.example:8000", "null", "http://127.0.0.1:9999.evil", "file://"]:
        r = client.post(url, json={"reason": "other"}, headers={**csrf, "Origin": origin})
        assert r.status_code == 403 and r.json()["title"] == "cross-site request refused", origin
    assert client.get(f"/api/clips/{fx.clip_ids[0]}").json()["flag"] is None
    assert client.post(url, json={"reason": "other"}, headers={**csrf, "Origin": "http://127.0.0.1:8000"}).status_code == 200
    assert client.post(url, json={"reason": "cutoff"}, headers={**csrf, "Origin": "http://localhost:8000"}).status_code == 200
    assert client.post(url, json={"reason": "cutoff"}, headers=csrf).status_code == 200  # curl: no Origin
