"""Which sources are due for a crawl, from their cron schedules and their last crawl.

Run by the `crawler.schedule_crawls` beat task every minute. The decision and the new
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


def due_sources(conn: Any, now: dt.datetime | None = None) -> list[tuple[Source, int]]:
    """Create a scheduled `crawls` row for every enabled source that is due; return them.

    A source is due when the first cron time after its last scheduled crawl (or after it
    was created) has passed and no crawl of it is running.
    """
    now = now or dt.datetime.now(dt.UTC)
    started: list[tuple[Source, int]] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEDULE_LOCK_KEY,))
        rows = conn.execute(
            """
            SELECT s.*,
                (SELECT max(started_at) FROM crawls c
                  WHERE c.source_id = s.id AND c.trigger = 'schedule') AS last_started,
                EXISTS (SELECT 1 FROM crawls c WHERE c.source_id = s.id
                        AND c.status = 'running' AND c.trigger = 'schedule'
                        AND c.started_at > now() - interval '12 hours') AS running
            FROM sources s WHERE s.enabled ORDER BY s.id
            """
        ).fetchall()
        for row in rows:
            if row["running"]:
                continue
            since = row["last_started"] or row["created_at"]
            if next_run(row["schedule"], since) > now:
                continue
            crawl = conn.execute(
                "INSERT INTO crawls (source_id, trigger) VALUES (%s, 'schedule') RETURNING id",
                (row["id"],),
            ).fetchone()
            started.append((Source.from_row(row), int(crawl["id"])))
    return started
