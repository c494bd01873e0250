"""The whole system once, as `artwatch demo run` drives it (small): every stage really runs.

Catalogue generation and import, CPU training, indexing, three local auction houses crawled
by Scrapy (one through Chromium), a real Celery matcher worker, and the digest in the outbox.
"""

from __future__ import annotations

import email
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from artwatch.cli import app


def test_demo_run_end_to_end(clean_db: str, settings) -> None:
    outbox = Path(settings.outbox_dir)
    # Other tests of the session (alerts/) leave their digests in the same outbox.
    earlier = set(outbox.glob("*.eml"))
    result = CliRunner().invoke(
        app, ["demo", "run", "--objects", "8", "--lots", "6", "--epochs", "2"],
        terminal_width=160,
    )
    assert result.exit_code == 0, result.output
    assert "Alerts vs. ground truth" in result.output
    with psycopg.connect(clean_db) as conn:
        def count(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        assert count("SELECT count(*) FROM objects") == 8
        assert count("SELECT count(*) FROM bundles WHERE active") == 1
        assert count("SELECT count(*) FROM sources") == 3
        assert count("SELECT count(*) FROM crawls WHERE status = 'finished'") == 3
        listings = count("SELECT count(*) FROM listings")
        assert listings >= 18  # 6 lots per house, plus the houses' special cases
        stored = count("SELECT count(DISTINCT image_id) FROM listing_images "
                       "WHERE status = 'stored'")
        assert stored > 0
        # Every stored listing photo was recognised by the worker under the active bundle.
        assert count("SELECT count(DISTINCT p.image_id) FROM predictions p "
                     "JOIN bundles b ON b.id = p.bundle_id AND b.active") == stored
    if count_matches(clean_db):
        messages = sorted(set(outbox.glob("*.eml")) - earlier)
        assert messages, "matches were found but no digest reached the outbox"
        parsed = email.message_from_bytes(messages[0].read_bytes())
        assert parsed["To"] and "reviewer@artwatch.invalid" in str(parsed["To"])


def count_matches(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM matches").fetchone()[0]
