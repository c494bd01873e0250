"""Sign-in throttling over real HTTP, from several real client addresses on loopback.

Clients bind to 127.0.0.2, 127.0.0.3, ... (all loopback on Linux), so the app sees them as
different client addresses exactly as it would see different machines.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from alerts_support import csrf_of, sign_in

from alerts.reviewers import add_reviewer

PASSWORD = "correct horse battery"
ACCOUNT_LIMIT = 10  # the defaults (ARTWATCH_WEB_LOGIN_MAX_FAILURES_*)
ADDRESS_LIMIT = 30


@pytest.fixture
def ana(conn):
    return add_reviewer(conn, "ana@museum.test", PASSWORD, name="Ana")


def _client(web_server, address: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=web_server.base_url, timeout=30, transport=transport)


def _attempts(client: httpx.Client, email: str, passwords: list[str]) -> list[int]:
    token = csrf_of(client.get("/login").text)
    codes = []
    for password in passwords:
        r = client.post("/login", data={"email": email, "password": password,
                                        "csrf_token": token, "next": "/"})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= 900
            assert "Too many failed sign-in attempts" in r.text
    return codes


def test_one_client_then_four_clients_are_throttled_per_account(
    conn, ana, web_server, caplog
):
    caplog.set_level(logging.WARNING, logger="alerts.web.throttle")
    # Ana's own browser signed in before the attack: it holds a device cookie.
    with _client(web_server, "127.0.0.9") as own:
        assert sign_in(own, "ana@museum.test", PASSWORD).status_code == 303
        device_cookie = own.cookies["artwatch_device"]

    with _client(web_server) as attacker:
        codes = _attempts(attacker, "ana@museum.test", [f"guess {i}" for i in range(300)])
        assert codes[:ACCOUNT_LIMIT] == [401] * ACCOUNT_LIMIT
        assert codes[ACCOUNT_LIMIT:] == [429] * (300 - ACCOUNT_LIMIT)
        # The right password from this client is refused unchecked too.
        assert _attempts(attacker, "ana@museum.test", [PASSWORD]) == [429]
    for i in range(4):
        with _client(web_server, f"127.0.0.{2 + i}") as other:
            assert _attempts(other, "ana@museum.test", ["guess", PASSWORD]) == [429, 429]

    checked = conn.execute(
        "SELECT outcome, count(*) AS n FROM login_attempts "
        "WHERE address <> '127.0.0.9' GROUP BY 1"
    ).fetchall()
    assert {r["outcome"]: r["n"] for r in checked} == {"failed": ACCOUNT_LIMIT}
    warnings = [r.getMessage() for r in caplog.records if "sign-in throttled" in r.getMessage()]
    assert len(warnings) == 1 and "account ana@museum.test" in warnings[0]

    # No lock-out the attacker can use: Ana's browser is judged by its own bucket.
    with _client(web_server, "127.0.0.1") as own:  # even from the attacker's address
        own.cookies.set("artwatch_device", device_cookie, domain="127.0.0.1", path="/login")
        assert _attempts(own, "ana@museum.test", ["typo"]) == [401]
        r = sign_in(own, "ana@museum.test", PASSWORD)
        assert r.status_code == 303 and own.get("/").status_code == 200


def test_one_address_spraying_many_accounts_is_throttled(conn, ana, web_server):
    with _client(web_server, "127.0.0.2") as sprayer:
        codes = [_attempts(sprayer, f"user{i}@museum.test", ["guess"])[0]
                 for i in range(ADDRESS_LIMIT + 2)]
        assert codes == [401] * ADDRESS_LIMIT + [429, 429]
        # Ana, never attacked, is refused from this address ...
        assert _attempts(sprayer, "ana@museum.test", [PASSWORD]) == [429]
    with _client(web_server, "127.0.0.3") as elsewhere:  # ... and not from another one
        assert sign_in(elsewhere, "ana@museum.test", PASSWORD).status_code == 303


def test_throttling_ends_when_the_window_moves_on(conn, ana, web_server):
    with _client(web_server) as client:
        codes = _attempts(client, "ana@museum.test", ["guess"] * (ACCOUNT_LIMIT + 1))
        assert codes[-1] == 429
        # Let the window pass (as the clock would): the failures are then too old to count.
        conn.execute("UPDATE login_attempts SET at = at - make_interval(secs => %s)",
                     (web_server.settings.web_login_window_s + 1,))
        assert sign_in(client, "ana@museum.test", PASSWORD).status_code == 303


def test_parallel_guesses_do_not_slip_past_the_limit(conn, ana, web_server):
    def guess(i: int) -> int:
        with _client(web_server, "127.0.0.4") as client:
            return _attempts(client, "ana@museum.test", [f"parallel {i}"])[0]

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(guess, range(36)))
    assert codes.count(401) <= ACCOUNT_LIMIT and codes.count(429) >= 36 - ACCOUNT_LIMIT
    assert set(codes) <= {401, 429}
    failed = conn.execute(
        "SELECT count(*) AS n FROM login_attempts WHERE outcome = 'failed'"
    ).fetchone()["n"]
    assert failed == codes.count(401)
