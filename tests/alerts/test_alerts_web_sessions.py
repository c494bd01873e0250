"""Server-side sessions over real HTTP: logout, password change and disabling end them."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest
from alerts_support import csrf_of, sign_in

from alerts.reviewers import add_reviewer, set_active, set_password

PASSWORD = "correct horse battery"
COOKIE = "artwatch_session"


@pytest.fixture
def ana(conn):
    return add_reviewer(conn, "ana@museum.test", PASSWORD, name="Ana")


@pytest.fixture
def bo(conn):
    return add_reviewer(conn, "bo@museum.test", "another long password", name="Bo")


def _browser(web_server, cookie: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=web_server.base_url, timeout=20)
    if cookie is not None:
        client.cookies.set(COOKIE, cookie, domain="127.0.0.1")
    return client


def _signed_in(client: httpx.Client) -> bool:
    """The queue page opens (200) rather than sending the browser to /login (303)."""
    r = client.get("/")
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def _session_rows(conn, reviewer_id: int) -> list[dict]:
    return conn.execute(
        "SELECT ended_at, end_reason, expires_at - created_at AS lifetime "
        "FROM web_sessions WHERE reviewer_id = %s ORDER BY created_at",
        (reviewer_id,),
    ).fetchall()


def test_cookie_copied_before_logout_is_refused_after_it(conn, ana, web_server):
    with _browser(web_server) as browser:
        assert sign_in(browser, "ana@museum.test", PASSWORD).status_code == 303
        copied = browser.cookies[COOKIE]
        assert _signed_in(browser)
        with _browser(web_server, copied) as thief:
            assert _signed_in(thief)  # the copy works while the session stands
        token = csrf_of(browser.get("/").text)
        r = browser.post("/logout", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert not _signed_in(browser)
    with _browser(web_server, copied) as thief:
        r = thief.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert thief.get(f"/img/{'0' * 64}").status_code == 403
        token = csrf_of(thief.get("/login").text)
        r = thief.post("/submit", data={"url": "http://127.0.0.1:9/x", "csrf_token": token})
        assert r.status_code == 403
    [row] = _session_rows(conn, ana.id)
    assert row["end_reason"] == "logout" and row["ended_at"] is not None
    assert row["lifetime"].total_seconds() == web_server.settings.web_session_max_age_s
    assert conn.execute("SELECT count(*) AS n FROM submissions").fetchone()["n"] == 0


def test_only_a_hash_of_the_session_token_is_stored(conn, ana, web_server):
    with _browser(web_server) as browser:
        sign_in(browser, "ana@museum.test", PASSWORD)
        cookie = browser.cookies[COOKIE]
    stored = conn.execute("SELECT token_sha256 FROM web_sessions").fetchone()["token_sha256"]
    payload = json.loads(base64.b64decode(cookie.split(".")[0] + "=="))  # Starlette's format
    assert hashlib.sha256(payload["sid"].encode()).hexdigest() == stored
    assert payload["sid"] not in stored and "rid" not in payload


def test_password_change_ends_every_session_of_that_reviewer_only(conn, ana, bo, web_server):
    with (_browser(web_server) as laptop, _browser(web_server) as phone,
          _browser(web_server) as other):
        for client in (laptop, phone):
            assert sign_in(client, "ana@museum.test", PASSWORD).status_code == 303
        assert sign_in(other, "bo@museum.test", "another long password").status_code == 303
        assert _signed_in(laptop) and _signed_in(phone) and _signed_in(other)

        assert set_password(conn, "ana@museum.test", "a brand new passphrase")
        assert not _signed_in(laptop) and not _signed_in(phone)
        assert _signed_in(other)  # Bo's session is not touched
        reasons = {r["end_reason"] for r in _session_rows(conn, ana.id)}
        assert reasons == {"password_changed"}

        assert sign_in(laptop, "ana@museum.test", PASSWORD).status_code == 401
        assert sign_in(laptop, "ana@museum.test", "a brand new passphrase").status_code == 303
        assert _signed_in(laptop)
        # `reviewers add` on an existing account resets the password: same effect.
        add_reviewer(conn, "ana@museum.test", "third password, long enough", name="Ana")
        assert not _signed_in(laptop)


def test_disabling_ends_sessions_and_enabling_does_not_revive_them(conn, ana, web_server):
    with _browser(web_server) as browser:
        assert sign_in(browser, "ana@museum.test", PASSWORD).status_code == 303
        copied = browser.cookies[COOKIE]
        assert set_active(conn, "ana@museum.test", False)
        [row] = _session_rows(conn, ana.id)
        assert row["end_reason"] == "disabled"
        assert set_active(conn, "ana@museum.test", True)
    with _browser(web_server, copied) as again:
        assert not _signed_in(again)


def test_cli_password_change_ends_sessions(conn, ana, web_server):
    from typer.testing import CliRunner

    from artwatch.cli import app

    with _browser(web_server) as browser:
        sign_in(browser, "ana@museum.test", PASSWORD)
        assert _signed_in(browser)
        r = CliRunner().invoke(app, ["reviewers", "password", "ana@museum.test",
                                     "--password-stdin"], input="short\n")
        assert r.exit_code == 2 and "at least" in r.output
        assert _signed_in(browser)  # a refused change ends nothing
        r = CliRunner().invoke(app, ["reviewers", "password", "ana@museum.test",
                                     "--password-stdin"], input="a long new passphrase\n")
        assert r.exit_code == 0, r.output
        assert "sessions ended" in r.output
        assert not _signed_in(browser)
