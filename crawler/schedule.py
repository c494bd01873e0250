"""Which sources are due for a crawl, from their cron schedules and their last crawl.

Run by the `crawler.schedule_crawls` beat task every minute (and once as beat starts). A
source never crawled on schedule is due at once. The decision and the new
`crawls` row are made under a transaction-level advisory lock, so even two beats (or a
retried task) cannot start the same source twice for one cron slot.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from croniter import croniter

from crawler.sources import Source

SCHEDULE_LOCK_KEY = 0x61770001  # advisory lock for the scheduling decision


def next_run(schedule: str, after: dt.datetime) -> dt.datetime:
    return croniter(schedule, after).get_next(dt.datetime)


_SOURCES_SQL = """
    SELECT s.*,
        (SELECT max(started_at) FROM crawls c
          WHERE c.source_id = s.id AND c.trigger = 'schedule') AS last_started,
        EXISTS (SELECT 1 FROM crawls c WHERE c.source_id = s.id
                AND c.status = 'running' AND c.trigger = 'schedule'
                AND c.started_at > now() - interval '12 hours') AS running
    FROM sources s WHERE s.enabled ORDER BY s.id
"""


def is_due(row: dict[str, Any], now: dt.datetime) -> bool:
    """A source row (with `last_started`, `running`) is due now.

    Never crawled on schedule: due at once, so a new source shows it works the first time
    the daemon looks. Otherwise: when the first cron time after its last scheduled crawl has
    passed and no crawl of it is running.
    """
    if row["running"]:
        return False
    if row["last_started"] is None:
        return True
    return next_run(row["schedule"], row["last_started"]) <= now


def due_now(conn: Any, now: dt.datetime | None = None) -> list[Source]:
    """The enabled sources that are due now, without starting anything (read-only)."""
    now = now or dt.datetime.now(dt.UTC)
    return [Source.from_row(r) for r in conn.execute(_SOURCES_SQL).fetchall() if is_due(r, now)]


def due_sources(conn: Any, now: dt.datetime | None = None) -> list[tuple[Source, int]]:
    """Create a scheduled `crawls` row for every enabled source that is due; return them."""
    now = now or dt.datetime.now(dt.UTC)
    started: list[tuple[Source, int]] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEDULE_LOCK_KEY,))
        for row in conn.execute(_SOURCES_SQL).fetchall():
            if not is_due(row, now):
                continue
            crawl = conn.execute(
                "INSERT INTO crawls (source_id, trigger) VALUES (%s, 'schedule') RETURNING id",
                (row["id"],),
            ).fetchone()
            started.append((Source.from_row(row), int(crawl["id"])))
    return started
