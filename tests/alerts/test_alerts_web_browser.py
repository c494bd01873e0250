"""A reviewer in headless Chromium: sign in, open a match, confirm it; screenshots saved.

Screenshots (test artifacts, overwritten each run):
    tests/artifacts/alerts_digest.png       the digest's HTML page
    tests/artifacts/alerts_match_page.png   a match page, listing photo beside the candidates
"""

from __future__ import annotations

import pytest

from alerts.dispatch import Dispatcher
from alerts.reviewers import add_reviewer
from alerts.sample import seed_matches
from artwatch.browser import chromium_launch_options


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(**chromium_launch_options())
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.slow
def test_reviewer_signs_in_opens_a_match_and_confirms_it(
    conn, store, web_server, browser, artifacts, smtp_server
):
    from artwatch.settings import load_settings

    box, port = smtp_server
    add_reviewer(conn, "ana@museum.test", "correct horse battery", name="Ana Reviewer")
    seed_matches(conn, store, listings=3, candidates=4, objects=6, artefacts=True,
                 title="Lot {n}: antique vessel, old European collection, ex-Sotheby's")
    mail = load_settings(**web_server.settings.model_dump(exclude={"smtp_host", "smtp_port",
                                                                   "smtp_security"}),
                         smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    report = Dispatcher(mail, retry_base_delay_s=0.01).run()
    assert len(report.sent) == 1 and len(box.messages) == 1
    alert_id = report.sent[0]

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(f"{web_server.base_url}/")
    assert "/login" in page.url
    page.fill("#email", "ana@museum.test")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{web_server.base_url}/")
    assert "12 open matches" in page.inner_text("h1")

    page.goto(f"{web_server.base_url}/alerts/{alert_id}")
    page.wait_for_load_state("networkidle")
    assert page.locator("img[alt^='catalogue photo']").count() == 12
    assert page.evaluate(
        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    ), "a digest image did not load"
    page.screenshot(path=str(artifacts / "alerts_digest.png"), full_page=True)

    page.goto(f"{web_server.base_url}/")
    page.click("table.grid a >> nth=0")
    page.wait_for_url("**/matches/*")
    match_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_load_state("networkidle")
    assert page.locator("img[alt^='listing photo']").count() == 2
    assert page.evaluate(
        "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    ), "a match-page image did not load"
    page.fill("#note", "Same repair on the left hand as the museum photo.")
    page.screenshot(path=str(artifacts / "alerts_match_page.png"), full_page=True)
    page.click("button.confirm")
    page.wait_for_selector(".flash")
    assert page.inner_text("#status") == "confirmed"

    row = conn.execute(
        "SELECT m.status, r.note, v.email FROM matches m JOIN reviews r ON r.match_id = m.id "
        "JOIN reviewers v ON v.id = r.reviewer_id WHERE m.id = %s",
        (match_id,),
    ).fetchone()
    assert row["status"] == "confirmed" and row["email"] == "ana@museum.test"
    assert row["note"].startswith("Same repair")
    page.close()


@pytest.mark.slow
def test_sign_out_in_the_browser_ends_the_session_a_copied_cookie_held(
    conn, web_server, browser
):
    ana = add_reviewer(conn, "ana@museum.test", "correct horse battery", name="Ana Reviewer")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{web_server.base_url}/login")
    page.fill("#email", "ana@museum.test")
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{web_server.base_url}/")
    copied = [c for c in context.cookies() if c["name"] == "artwatch_session"]
    assert len(copied) == 1 and copied[0]["httpOnly"]

    # The copy signs in a second browser while the session stands ...
    thief = browser.new_context()
    thief.add_cookies(copied)
    stolen = thief.new_page()
    stolen.goto(f"{web_server.base_url}/")
    assert stolen.url == f"{web_server.base_url}/" and "open matches" in stolen.inner_text("h1")

    page.click("header button:has-text('Sign out')")
    page.wait_for_url("**/login")
    page.goto(f"{web_server.base_url}/")
    assert "/login" in page.url

    # ... and not after the sign-out, though the cookie is byte for byte the same.
    stolen.goto(f"{web_server.base_url}/")
    assert "/login" in stolen.url
    assert stolen.locator("h1").inner_text() == "Sign in"
    row = conn.execute(
        "SELECT end_reason FROM web_sessions WHERE reviewer_id = %s", (ana.id,)
    ).fetchone()
    assert row["end_reason"] == "logout"
    thief.close()
    context.close()
