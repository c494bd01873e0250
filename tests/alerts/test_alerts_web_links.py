"""Only http(s) URLs become links: in the digest e-mail (real SMTP), on the match page and
on the alert page (real uvicorn). Rows written before the importer and crawler refused
other schemes may still hold them; they are shown as text."""

from __future__ import annotations

import re

import httpx
import pytest
from alerts_support import sign_in

from alerts.dispatch import Dispatcher, prepare_alerts
from alerts.sample import seed_matches

HOSTILE_LISTING = "javascript:alert(document.cookie)"
HOSTILE_OBJECT = "data:text/html,<script>alert(1)</script>"
PASSWORD = "correct horse battery"


def _hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


def _no_live_hostile_link(html: str) -> None:
    for href in _hrefs(html):
        assert href.startswith(("http://", "https://", "/", "cid:")), href
    assert "javascript:" not in "".join(_hrefs(html)).lower()


@pytest.fixture
def hostile(conn, store):
    """Two listings; the first (and its candidates' catalogue records) with hostile URLs."""
    seeded = seed_matches(conn, store, listings=2, candidates=2)
    bad_listing = seeded.listing_ids[0]
    conn.execute("UPDATE listings SET url = %s WHERE id = %s", (HOSTILE_LISTING, bad_listing))
    conn.execute(
        "UPDATE objects SET url = %s WHERE id IN "
        "(SELECT object_id FROM matches WHERE listing_id = %s)",
        (HOSTILE_OBJECT, bad_listing),
    )
    match = conn.execute(
        "SELECT id FROM matches WHERE listing_id = %s ORDER BY rank LIMIT 1", (bad_listing,)
    ).fetchone()["id"]
    return seeded, match


def test_digest_email_links_only_http_urls(conn, hostile, reviewer, smtp_server, smtp_settings):
    box, _ = smtp_server
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(report.sent) == 1
    msg = box.messages[0]
    html = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    _no_live_hostile_link(html)
    assert "lot page (not a web link): javascript:alert(document.cookie)" in html
    assert "catalogue record (not a web link): data:text/html," in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    # The good listing and its catalogue records are still links.
    assert 'href="http://127.0.0.1:9/lots/0-1"' in html
    assert any(h.startswith("https://museum.invalid/objects/") for h in _hrefs(html))
    assert HOSTILE_LISTING in text  # plain text: shown, never a link


def test_match_and_alert_pages_link_only_http_urls(conn, hostile, web_server):
    from alerts.reviewers import add_reviewer

    seeded, match = hostile
    ana = add_reviewer(conn, "ana@museum.test", PASSWORD)
    prepare_alerts(conn, "digest")
    alert = conn.execute("SELECT id FROM alerts WHERE reviewer_id = %s", (ana.id,)).fetchone()
    with httpx.Client(base_url=web_server.base_url, timeout=20) as client:
        assert sign_in(client, "ana@museum.test", PASSWORD).status_code == 303
        page = client.get(f"/matches/{match}")
        assert page.status_code == 200
        _no_live_hostile_link(page.text)
        assert "(not a web link: javascript:alert(document.cookie))" in page.text
        assert "catalogue record (not a web link): data:text/html," in page.text
        good = conn.execute(
            "SELECT id FROM matches WHERE listing_id = %s LIMIT 1", (seeded.listing_ids[1],)
        ).fetchone()["id"]
        assert 'href="http://127.0.0.1:9/lots/0-1"' in client.get(f"/matches/{good}").text
        digest_page = client.get(f"/alerts/{alert['id']}")
        assert digest_page.status_code == 200
        _no_live_hostile_link(digest_page.text)
        assert "lot page (not a web link)" in digest_page.text
