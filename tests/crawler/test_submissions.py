"""Manual resubmission: refusals (each SSRF case), a real one-lot crawl, the queue, the CLI."""

from __future__ import annotations

import os

import pytest
from crawler_support import drop_queued, queued, register, rows
from dbreset import truncate_all
from typer.testing import CliRunner

from artwatch.db import connect
from artwatch.queue import MATCH_IMAGES, PROCESS_SUBMISSION
from artwatch.submissions import submit_url
from crawler.resubmit import process_submission
from crawler.runner import run_crawl


@pytest.fixture(autouse=True)
def _empty_db() -> None:
    truncate_all(os.environ["ARTWATCH_DATABASE_URL"])


def raw_source(name: str, start_url: str, allow_private: bool = False) -> None:
    """A source row as an operator might have left it (add_source itself refuses these)."""
    with connect(autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sources (name, spider, start_urls, allow_private) "
            "VALUES (%s, 'html_lots', %s, %s)",
            (name, [start_url], allow_private),
        )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://127.0.0.1:8001/lot/1", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http://user:secret@127.0.0.1:8001/lot/1", "credentials"),
        ("not a url", "scheme"),
        ("http://127.0.0.1:8002/lot/1", "not_a_source"),
        ("http://127.0.0.1:8001/lot/1", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link_local"),
        ("http://10.0.0.5/lot/1", "private"),
        ("http://[::1]:8003/lot/1", "loopback"),
    ],
)
def test_refused_submissions_are_recorded(url: str, reason: str) -> None:
    raw_source("loop", "http://127.0.0.1:8001/")
    raw_source("meta", "http://169.254.169.254/")
    raw_source("lan", "http://10.0.0.5/")
    raw_source("loop6", "http://[::1]:8003/")
    result = submit_url(url, requested_by="tester")
    assert not result.ok and result.error.startswith(reason), result.error
    row = rows("SELECT * FROM submissions WHERE id = %s", result.submission_id)[0]
    assert (row["status"], row["requested_by"]) == ("failed", "tester")
    assert row["error"] == result.error and row["finished_at"] is not None
    assert not queued(PROCESS_SUBMISSION) or all(
        args != [result.submission_id] for args, _ in queued(PROCESS_SUBMISSION))


def test_private_host_allowed_only_for_a_source_that_says_so(houses) -> None:
    house = houses("meridian", style="html", lots=10)
    register(house)
    lot = house.model.public_lots[0]
    ok = submit_url(house.lot_url(lot), requested_by="tester", enqueue=True)
    assert ok.ok and ok.status == "pending" and ok.source == "meridian"
    assert ([ok.submission_id], {}) in queued(PROCESS_SUBMISSION)
    drop_queued(PROCESS_SUBMISSION)


def test_resubmission_crawls_a_seen_lot_and_requeues_its_photos(houses) -> None:
    house = houses("meridian", style="html", lots=12)
    register(house)
    assert run_crawl("meridian", trigger="test", full=True, timeout=120).status == "finished"
    lot = house.model.public_lots[4]
    listing = rows("SELECT * FROM listings WHERE external_id = %s", lot.lot_id)[0]
    drop_queued(MATCH_IMAGES)
    submitted = submit_url(house.lot_url(lot), requested_by="cli", enqueue=False)
    result = process_submission(submitted.submission_id)
    assert result.status == "crawled", result.error
    assert result.listing_id == listing["id"]
    assert rows("SELECT count(*) AS n FROM listings")[0]["n"] == len(house.model.public_lots)
    crawl = rows("SELECT * FROM crawls WHERE id = %s", result.crawl_id)[0]
    assert crawl["trigger"] == "manual" and crawl["stats"]["item_scraped_count"] == 1
    messages = queued(MATCH_IMAGES)
    assert [kw["listing_id"] for _, kw in messages] == [listing["id"]]
    stored = {p["image_id"] for p in result.photos if p["status"] == "stored"}
    assert set(messages[0][0][0]) == stored and stored
    assert process_submission(submitted.submission_id).status == "crawled"  # idempotent


def test_resubmission_of_an_api_lot_and_a_missing_lot(houses) -> None:
    house = houses("lotstream", style="api", lots=10)
    register(house)
    lot = house.model.public_lots[2]
    result = process_submission(submit_url(house.lot_url(lot), "cli", enqueue=False).submission_id)
    assert result.status == "crawled", result.error
    assert rows("SELECT external_id FROM listings")[0]["external_id"] == lot.lot_id
    missing = submit_url(house.base_url + "/lots/NOPE", "cli", enqueue=False)
    result = process_submission(missing.submission_id)
    assert result.status == "failed" and "no lot" in result.error


def test_cli_sources_and_submit(houses) -> None:
    from artwatch.cli import app  # as users run it: artwatch sources ..., artwatch submit

    house = houses("meridian", style="html", lots=10)
    runner = CliRunner()
    out = runner.invoke(app, ["sources", "add", "meridian", "html_lots", house.start_url,
                              "--allow-private", "--schedule", "*/30 * * * *",
                              "--settings", '{"politeness": {"download_delay": 0}}'])
    assert out.exit_code == 0, out.output
    bad = runner.invoke(app, ["sources", "add", "x", "html_lots", "http://10.0.0.1/"])
    assert bad.exit_code == 1 and "private" in bad.output
    assert runner.invoke(app, ["sources", "disable", "meridian"]).exit_code == 0
    listing = runner.invoke(app, ["sources", "list"])
    assert "meridian" in listing.output and "no" in listing.output
    assert runner.invoke(app, ["sources", "enable", "meridian"]).exit_code == 0
    lot = house.model.public_lots[1]
    done = runner.invoke(app, ["submit", house.lot_url(lot), "--wait", "0"])
    assert done.exit_code == 0, done.output
    assert "crawled" in done.output and "stored" in done.output
    refused = runner.invoke(app, ["submit", "http://169.254.169.254/", "--wait", "0"])
    assert refused.exit_code == 2 and "not_a_source" in refused.output
    drop_queued(MATCH_IMAGES)
