"""Digests through a real SMTP server on loopback: content, inline images, links, exactly-once."""

from __future__ import annotations

import base64
import io
import re
import threading

import pytest
from PIL import Image

from alerts.dispatch import Dispatcher
from alerts.feedback import record_decision
from alerts.keys import web_secret
from alerts.links import ReviewLinks
from alerts.sample import seed_matches

EVIL = "<script>alert('x')</script> Bronze figure"


def _parts(msg):
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    images = {
        str(p["Content-ID"]).strip("<>"): p.get_content()
        for p in msg.walk()
        if p.get_content_maintype() == "image"
    }
    return text, html, images


def test_digest_reaches_smtp_with_text_html_inline_images_and_links(
    conn, store, reviewer, smtp_server, smtp_settings
):
    box, _ = smtp_server
    seeded = seed_matches(conn, store, listings=3, candidates=6, title=EVIL + " {n}")
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(report.sent) == 1 and not report.errors
    assert len(box.messages) == 1
    msg = box.messages[0]
    assert msg.get_content_type() == "multipart/alternative"
    assert "ana@museum.test" in msg["To"]
    assert msg["Subject"].startswith("[artwatch] 3 suspected listings")
    text, html, images = _parts(msg)

    assert text.count("confirm: ") == 3 * 5  # top-5 of 6 candidates per listing
    assert html.count('class="cand"') == 15
    best = conn.execute(
        "SELECT o.accession FROM matches m JOIN objects o ON o.id = m.object_id "
        "ORDER BY m.score DESC LIMIT 1"
    ).fetchone()["accession"]
    assert best in text and best in html
    assert "1 weaker candidate" in html and "+ 1 weaker candidates" in text
    for word in ("Demo Auctions", "GBP", "first seen", "instance classifier", "demo-b0-v1"):
        assert word in text and word in html
    assert "perceptual-hash reuse of a museum photo" in html

    # Every image the HTML shows is an inline part, and every inline part is shown.
    cids = set(re.findall(r'src="cid:([^"]+)"', html))
    assert cids and cids == set(images)
    assert all(data[:3] == b"\xff\xd8\xff" for data in images.values())  # JPEG
    assert 'src="http' not in html  # no remote images in mail
    assert "<style" not in html and 'style="' in html  # CSS inlined

    # Links: lot pages, match pages, and signed review links that verify.
    listing_urls = [r["url"] for r in conn.execute("SELECT url FROM listings")]
    assert all(u in html and u in text for u in listing_urls)
    links = ReviewLinks(web_secret(smtp_settings), smtp_settings.web_base_url, 3600)
    tokens = re.findall(r'href="http://127\.0\.0\.1:8765/r/([^"]+)"', html)
    assert len(tokens) == 2 * 15
    actions = {(a.match_id, a.decision) for a in map(links.verify, tokens)}
    assert {a.reviewer_id for a in map(links.verify, tokens)} == {reviewer.id}
    assert {d for _, d in actions} == {"confirm", "dismiss"}
    assert {m for m, _ in actions} <= set(seeded.match_ids)

    # Escaping: the hostile title is text, never markup, in the HTML.
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert EVIL in text  # plain text carries it verbatim (no HTML there)

    row = conn.execute("SELECT * FROM alerts").fetchone()
    assert row["status"] == "sent" and row["attempts"] == 1 and row["delivered_via"] == "smtp"
    assert row["message_id"] == msg["Message-ID"]
    assert conn.execute("SELECT count(*) AS n FROM alert_items").fetchone()["n"] == 18

    # A second run has nothing new: nothing is sent twice.
    again = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert again.sent == [] and len(box.messages) == 1


def test_transient_smtp_failure_is_retried_and_delivered_once(
    conn, store, reviewer, smtp_server, smtp_settings
):
    box, _ = smtp_server
    seed_matches(conn, store, listings=1, candidates=2)
    box.fail_next = 2
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(report.sent) == 1
    assert box.attempts == 3 and len(box.messages) == 1
    assert conn.execute("SELECT attempts FROM alerts").fetchone()["attempts"] == 3


def test_exhausted_retries_keep_the_alert_for_the_next_run(
    conn, store, reviewer, smtp_server, smtp_settings
):
    box, _ = smtp_server
    seed_matches(conn, store, listings=1, candidates=2)
    box.fail_next = 10
    report = Dispatcher(smtp_settings, retry_attempts=2, retry_base_delay_s=0.01).run()
    assert report.sent == [] and len(report.deferred) == 1 and not box.messages
    row = conn.execute("SELECT status, attempts, error FROM alerts").fetchone()
    assert row["status"] == "pending" and row["attempts"] == 2 and "451" in row["error"]
    box.fail_next = 0
    conn.execute("UPDATE alerts SET next_attempt_at = now()")  # the back-off has passed
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(report.sent) == 1 and len(box.messages) == 1


class _Crash(BaseException):
    """Stands in for the process dying (not an Exception: nothing may catch it)."""


def test_crash_between_alert_row_and_send_delivers_exactly_once(
    conn, store, reviewer, smtp_server, smtp_settings
):
    box, _ = smtp_server
    seed_matches(conn, store, listings=2, candidates=3)
    # Crash 1: right after the alert row was committed, before any sending.
    prepared = Dispatcher(smtp_settings).prepare("digest")
    assert len(prepared) == 1 and not box.messages

    # Crash 2: the process dies while sending (inside the locked transaction).
    class DyingTransport:
        name = "smtp"

        def send(self, message, html_page=None):
            raise _Crash()

    with pytest.raises(_Crash):
        Dispatcher(smtp_settings, transport=DyingTransport()).run()
    row = conn.execute("SELECT status FROM alerts").fetchone()
    assert row["status"] == "pending"  # rolled back, not lost

    # Recovery: the pending alert is delivered once, and no second alert is created.
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert report.sent == prepared and report.prepared == []
    assert len(box.messages) == 1
    assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 1
    Dispatcher(smtp_settings).run()
    assert len(box.messages) == 1


def test_concurrent_runs_send_each_alert_once(conn, store, smtp_server, smtp_settings):
    from alerts.reviewers import add_reviewer

    box, _ = smtp_server
    add_reviewer(conn, "a@museum.test", "password-one-123")
    add_reviewer(conn, "b@museum.test", "password-two-123")
    seed_matches(conn, store, listings=2, candidates=2)
    threads = [
        threading.Thread(target=Dispatcher(smtp_settings, retry_base_delay_s=0.01).run)
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    recipients = sorted(str(m["To"]) for m in box.messages)
    assert recipients == ["a@museum.test", "b@museum.test"]
    assert len(set(box.message_ids())) == 2


def test_reviewed_matches_never_realert(conn, store, reviewer, smtp_server, smtp_settings):
    box, _ = smtp_server
    seeded = seed_matches(conn, store, listings=1, candidates=3)
    dismissed, confirmed, left = seeded.match_ids
    record_decision(conn, dismissed, reviewer.id, "dismiss", "different glaze")
    record_decision(conn, confirmed, reviewer.id, "confirm", "same chip on the rim")
    Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(box.messages) == 1
    items = [r["match_id"] for r in conn.execute("SELECT match_id FROM alert_items")]
    assert items == [left]

    # A new bundle finds the dismissed pair again: still no alert.
    pair = conn.execute(
        "SELECT listing_id, object_id FROM matches WHERE id = %s", (dismissed,)
    ).fetchone()
    bundle2 = conn.execute(
        "INSERT INTO bundles (name, path, architecture) VALUES ('b1-v2', '/x', 'b1') RETURNING id"
    ).fetchone()["id"]
    conn.execute(
        "INSERT INTO matches (listing_id, object_id, bundle_id, score, evidence) "
        "VALUES (%s, %s, %s, 0.99, '{\"method\": \"classifier\"}')",
        (pair["listing_id"], pair["object_id"], bundle2),
    )
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert report.prepared == [] and len(box.messages) == 1

    kept = conn.execute(
        "SELECT r.decision, r.note, r.created_at, v.email, m.status FROM reviews r "
        "JOIN reviewers v ON v.id = r.reviewer_id JOIN matches m ON m.id = r.match_id "
        "WHERE r.match_id = %s",
        (confirmed,),
    ).fetchone()
    assert kept["status"] == "confirmed" and kept["email"] == "ana@museum.test"
    assert kept["note"] == "same chip on the rim" and kept["created_at"] is not None


def test_urgent_alert_goes_out_at_once_and_leaves_the_digest(
    conn, store, reviewer, smtp_server, smtp_settings
):
    from alerts.dispatch import send_urgent

    box, _ = smtp_server
    seeded = seed_matches(conn, store, listings=2, candidates=2)
    hot = seeded.match_ids[0]
    conn.execute("UPDATE matches SET score = 0.99 WHERE id = %s", (hot,))
    report = send_urgent([hot], settings=smtp_settings, retry_base_delay_s=0.01)
    assert len(report.sent) == 1
    assert box.messages[0]["Subject"].startswith("[artwatch URGENT] 1 suspected listing")
    Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(box.messages) == 2
    digest_items = [
        r["match_id"]
        for r in conn.execute(
            "SELECT ai.match_id FROM alert_items ai JOIN alerts a ON a.id = ai.alert_id "
            "WHERE a.kind = 'digest'"
        )
    ]
    assert hot not in digest_items and len(digest_items) == 3


def test_outbox_when_no_smtp_is_configured(conn, store, reviewer, tmp_path):
    from email import message_from_bytes, policy

    from artwatch.settings import get_settings, load_settings

    base = get_settings()
    settings = load_settings(
        data_dir=base.data_dir, database_url=base.database_url, web_secret="s" * 32
    )
    seed_matches(conn, store, listings=2, candidates=2)
    report = Dispatcher(settings).run()
    assert len(report.sent) == 1
    name = conn.execute("SELECT message_id FROM alerts").fetchone()["message_id"]
    emls = [p for p in settings.outbox_dir.glob("*.eml") if name.strip("<>")[:20] in p.name]
    assert len(emls) == 1
    page = emls[0].with_suffix(".html").read_text()
    # Readable as written: every photo is in the file itself (no cid: part, no login).
    assert "cid:" not in page and "/img/" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) >= 2 * 2 and all(s.startswith("data:image/jpeg;base64,") for s in sources)
    for src in sources:
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size[0] > 0
    msg = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert msg["Message-ID"] == name
    assert conn.execute("SELECT delivered_via FROM alerts").fetchone()["delivered_via"] == "outbox"


def test_saliency_overlay_shown_and_missing_photo_is_a_placeholder(
    conn, store, reviewer, smtp_server, smtp_settings
):
    import random

    from alerts.sample import make_photo
    from artwatch.images.records import record_image

    box, _ = smtp_server
    seeded = seed_matches(conn, store, listings=1, candidates=2, seed=11)
    overlay = record_image(conn, store.put(make_photo(random.Random(5), "saliency")))
    conn.execute(
        "UPDATE matches SET evidence = evidence || jsonb_build_object('saliency_image_id', %s) "
        "WHERE id = %s",
        (overlay, seeded.match_ids[0]),
    )
    # One catalogue photo's file is gone from the store (disk trouble): still delivered.
    gone = conn.execute(
        "SELECT i.sha256 FROM matches m "
        "JOIN images i ON i.id = (m.evidence->>'object_image_id')::int WHERE m.id = %s",
        (seeded.match_ids[1],),
    ).fetchone()["sha256"]
    store.path_for(gone).unlink()
    report = Dispatcher(smtp_settings, retry_base_delay_s=0.01).run()
    assert len(report.sent) == 1
    _, html, images = _parts(box.messages[0])
    assert 'alt="where the model looked in the listing photo' in html
    assert "no catalogue photo" in html
    assert set(re.findall(r'src="cid:([^"]+)"', html)) == set(images)


def test_digest_sets_low_candidates_apart_and_drops_negligible_ones(conn, store, reviewer):
    """Candidates over the bundle's threshold alert; lower ones are shown apart; ~0% ones not."""
    from alerts.dispatch import load_digest
    from alerts.render import LinkedImages, render_html, render_text
    from artwatch.settings import get_settings

    seeded = seed_matches(conn, store, listings=1, candidates=4)
    point = get_settings().match_operating_point
    conn.execute("UPDATE bundles SET info = info || jsonb_build_object('thresholds', "
                 "jsonb_build_object(%s::text, 0.6))", (point,))
    scores = [0.91, 0.72, 0.31, 0.0002]  # two alert, one for comparison, one negligible
    for match_id, score in zip(seeded.match_ids, scores, strict=True):
        conn.execute("UPDATE matches SET score = %s, bundle_id = %s, evidence = evidence || "
                     "'{\"method\": \"classifier\"}' WHERE id = %s",
                     (score, seeded.bundle_id, match_id))
    alert_id = Dispatcher(get_settings()).prepare("digest")[0]
    digest = load_digest(conn, alert_id, top_k=5, operating_point=point)
    (view,) = digest.listings
    assert [c.score for c in view.alerted_candidates] == pytest.approx(scores[:2])
    assert [c.score for c in view.low_candidates] == pytest.approx([0.31])
    assert view.negligible == 1 and digest.match_count == 2
    links = ReviewLinks("s" * 32, "http://review.test", 3600)
    html = render_html(digest, links, LinkedImages("http://review.test"), inline=False)
    alerted_part, low_part = html.split("Below the alert threshold", 1)
    assert "91.0%" in alerted_part and "72.0%" in alerted_part and "31.0%" not in alerted_part
    assert "31.0%" in low_part and "0.0%" not in html
    assert "1 further candidate scored under 0.1%" in html
    text = render_text(digest, links)
    assert "Below the alert threshold" in text and "0.0%" not in text
