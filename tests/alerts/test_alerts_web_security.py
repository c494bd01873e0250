"""The review app over real HTTP: login, CSRF, signed links, escaping, search."""

from __future__ import annotations

import time

import httpx
import pytest
from alerts_support import csrf_of, sign_in
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from alerts.links import SALT, ReviewLinks
from alerts.reviewers import add_reviewer
from alerts.sample import seed_matches

PASSWORD = "correct horse battery"


def _login(client: httpx.Client, email: str = "ana@museum.test", password: str = PASSWORD):
    return sign_in(client, email, password)


@pytest.fixture
def seeded(conn, store):
    return seed_matches(
        conn, store, listings=2, candidates=3, title="<script>alert('pwn')</script> lot {n}"
    )


@pytest.fixture
def ana(conn):
    return add_reviewer(conn, "ana@museum.test", PASSWORD, name="Ana")


@pytest.fixture
def client(web_server):
    with httpx.Client(base_url=web_server.base_url, timeout=20) as c:
        yield c


def _status(conn, match_id: int) -> str:
    return conn.execute("SELECT status FROM matches WHERE id = %s", (match_id,)).fetchone()[
        "status"
    ]


def test_anonymous_reads_redirect_and_writes_are_refused(conn, seeded, ana, client):
    match = seeded.match_ids[0]
    r = client.get("/")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = client.get(f"/matches/{match}")
    assert r.status_code == 303
    token = csrf_of(client.get("/login").text)  # even with a session's CSRF token
    r = client.post(f"/matches/{match}/review", data={"decision": "confirm", "csrf_token": token})
    assert r.status_code == 403
    assert client.post("/submit", data={"url": "http://x", "csrf_token": token}).status_code == 403
    img = conn.execute("SELECT sha256 FROM images LIMIT 1").fetchone()["sha256"]
    assert client.get(f"/img/{img}").status_code == 403
    assert _status(conn, match) == "open"
    assert conn.execute("SELECT count(*) AS n FROM reviews").fetchone()["n"] == 0


def test_login_wrong_password_and_open_redirect(ana, client):
    assert _login(client, password="wrong password!").status_code == 401
    token = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"email": "ana@museum.test", "password": PASSWORD,
                                    "csrf_token": token, "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_passwords_are_argon2id_hashes(conn, ana):
    stored = conn.execute("SELECT password_hash FROM reviewers").fetchone()["password_hash"]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_csrf_token_required_for_every_write(conn, seeded, ana, client):
    match = seeded.match_ids[0]
    assert _login(client).status_code == 303
    url = f"/matches/{match}/review"
    assert client.post(url, data={"decision": "confirm"}).status_code == 403
    assert client.post(url, data={"decision": "confirm", "csrf_token": "x" * 43}).status_code == 403
    # the login form too: a login CSRF is refused
    with httpx.Client(base_url=str(client.base_url)) as other:
        r = other.post("/login", data={"email": "ana@museum.test", "password": PASSWORD})
        assert r.status_code == 403
    assert _status(conn, match) == "open"
    token = csrf_of(client.get(f"/matches/{match}").text)
    r = client.post(url, data={"decision": "dismiss", "note": "not it", "csrf_token": token})
    assert r.status_code == 303 and _status(conn, match) == "dismissed"


def test_template_output_is_escaped(conn, seeded, ana, client):
    _login(client)
    for path in ("/", f"/matches/{seeded.match_ids[0]}", "/search?q=<script>"):
        html = client.get(path).text
        assert "<script>" not in html, path
        assert "&lt;script&gt;" in html, path


def test_security_headers(ana, client):
    r = client.get("/login")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_signed_links_forged_expired_and_valid(conn, seeded, ana, web_server, client):
    settings = web_server.settings
    links = ReviewLinks(settings.web_secret.get_secret_value(), web_server.base_url, 3600)
    match = seeded.match_ids[1]
    good = links.token(match, ana.id, "confirm")
    forged_key = ReviewLinks("another-secret-entirely-000000000", "", 3600).token(
        match, ana.id, "confirm"
    )
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")

    class OldSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - settings.review_link_max_age_s - 60

    expired = URLSafeTimedSerializer(
        settings.web_secret.get_secret_value(), salt=SALT, signer=OldSigner
    ).dumps([match, ana.id, "confirm"])

    for bad, words in ((forged_key, "not valid"), (tampered, "not valid"),
                       ("garbage", "not valid"), (expired, "expired")):
        r = client.get(f"/r/{bad}")
        assert r.status_code == 403 and words in r.text
        token = csrf_of(client.get("/login").text)  # a valid session token does not help
        r = client.post(f"/r/{bad}", data={"csrf_token": token})
        assert r.status_code == 403
    assert _status(conn, match) == "open"

    # GET only shows the question (mail scanners prefetch links); POST decides.
    r = client.get(f"/r/{good}")
    assert r.status_code == 200 and "Confirm match" in r.text
    assert _status(conn, match) == "open"
    assert client.post(f"/r/{good}", data={}).status_code == 403  # CSRF still required
    r = client.post(f"/r/{good}", data={"csrf_token": csrf_of(r.text), "note": "seen it"})
    assert r.status_code == 200 and "confirmed" in r.text
    review = conn.execute("SELECT reviewer_id, decision, note FROM reviews").fetchone()
    assert dict(review) == {"reviewer_id": ana.id, "decision": "confirm", "note": "seen it"}
    assert _status(conn, match) == "confirmed"


def test_search_by_accession_auction_house_and_url(conn, seeded, ana, client):
    _login(client)
    accession = conn.execute(
        "SELECT o.accession FROM matches m JOIN objects o ON o.id = m.object_id LIMIT 1"
    ).fetchone()["accession"]
    url = conn.execute("SELECT url FROM listings ORDER BY id LIMIT 1").fetchone()["url"]
    assert accession in client.get("/search", params={"q": accession}).text
    by_house = client.get("/search", params={"q": "demo auctions"}).text
    assert by_house.count('href="/matches/') == 6
    by_url = client.get("/search", params={"q": url}).text
    assert by_url.count('href="/matches/') == 3
    assert "No matches" in client.get("/search", params={"q": "100%_nothing"}).text


def test_queue_and_photos_for_signed_in_reviewer(conn, seeded, ana, client):
    _login(client)
    page = client.get("/")
    assert "6 open matches" in page.text
    sha = conn.execute("SELECT sha256 FROM images LIMIT 1").fetchone()["sha256"]
    r = client.get(f"/img/{sha}", params={"s": 96})
    assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"
    assert client.get("/img/" + "0" * 64).status_code == 404
    assert client.get("/img/../../etc/passwd").status_code == 404


def test_manual_resubmission_uses_the_submit_code_path(conn, seeded, ana, client):
    _login(client)
    token = csrf_of(client.get("/submit").text)
    r = client.post("/submit", data={"url": "http://169.254.169.254/latest/meta-data",
                                     "csrf_token": token})
    assert r.status_code == 400 and "Not submitted" in r.text
    r = client.post("/submit", data={"url": "http://127.0.0.1:9/lots/0-0", "csrf_token": token})
    assert r.status_code == 200 and "queued" in r.text
    rows = conn.execute(
        "SELECT url, requested_by, status, error FROM submissions ORDER BY id"
    ).fetchall()
    assert [r["status"] for r in rows] == ["failed", "pending"]
    assert rows[0]["error"] and rows[1]["requested_by"] == "web:ana@museum.test"


def test_disabled_reviewer_is_signed_out_and_alert_pages_are_personal(
    conn, seeded, ana, client, web_server
):
    from alerts.dispatch import prepare_alerts
    from alerts.reviewers import set_active

    bo = add_reviewer(conn, "bo@museum.test", "another long password")
    prepare_alerts(conn, "digest")
    alerts = {r["reviewer_id"]: r["id"] for r in conn.execute("SELECT id, reviewer_id FROM alerts")}
    _login(client)
    assert client.get(f"/alerts/{alerts[ana.id]}").status_code == 200
    assert client.get(f"/alerts/{alerts[bo.id]}").status_code == 404  # Bo's links inside
    set_active(conn, "ana@museum.test", False)
    r = client.get("/")
    assert r.status_code == 303 and "/login" in r.headers["location"]
    token = csrf_of(client.get("/login").text)
    r = client.post(f"/matches/{seeded.match_ids[0]}/review",
                    data={"decision": "confirm", "csrf_token": token})
    assert r.status_code == 403 and _status(conn, seeded.match_ids[0]) == "open"
