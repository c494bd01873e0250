"""Celery tasks of the crawling stage (registered on the shared `artwatch.queue.app`).

- `crawler.schedule_crawls` (every minute, from the one beat): start due sources.
- `crawler.crawl_source(source_name, crawl_id=None, full=False)`: one crawl, as a
  `scrapy crawl` subprocess, reporting into its `crawls` row.
- `crawler.process_submission(submission_id)`: a manual resubmission.

All three are idempotent: a redelivered message finds its crawl or submission finished.
"""

from __future__ import annotations

from artwatch.db import connect
from artwatch.queue import CRAWL_SOURCE, PROCESS_SUBMISSION, SCHEDULE_CRAWLS, app

SCHEDULE_EVERY_S = 60.0


@app.task(name=SCHEDULE_CRAWLS, ignore_result=True)
def schedule_crawls() -> list[int]:
    """Enqueue a crawl for every due source; returns the new crawl ids."""
    from crawler.schedule import due_sources

    with connect(autocommit=True) as conn:
        due = due_sources(conn)
    for source, crawl_id in due:
        app.send_task(CRAWL_SOURCE, args=[source.name], kwargs={"crawl_id": crawl_id})
    return [crawl_id for _, crawl_id in due]


@app.task(name=CRAWL_SOURCE, ignore_result=True, acks_late=True)
def crawl_source(source_name: str, crawl_id: int | None = None, full: bool = False) -> dict:
    """Crawl one source now (in a Scrapy subprocess)."""
    from crawler.runner import run_crawl

    if crawl_id is not None:
        with connect() as conn:
            row = conn.execute("SELECT status FROM crawls WHERE id = %s", (crawl_id,)).fetchone()
        if row is not None and row["status"] != "running":
            return {"crawl_id": crawl_id, "status": row["status"], "redelivered": True}
    result = run_crawl(source_name, trigger="schedule", crawl_id=crawl_id, full=full)
    return {"crawl_id": result.crawl_id, "status": result.status, "error": result.error}


@app.task(name=PROCESS_SUBMISSION, ignore_result=True, acks_late=True)
def process_submission(submission_id: int) -> dict:
    """Crawl a manually submitted lot URL now."""
    from crawler.resubmit import process_submission as run

    result = run(submission_id)
    return {"submission_id": submission_id, "status": result.status, "error": result.error}


# The one periodic entry: check schedules every minute (run exactly one beat). Celery adds
# it now if the app is configured already, else as soon as it is (importing this module
# never forces the broker configuration).
app.add_periodic_task(SCHEDULE_EVERY_S, schedule_crawls.s(), name=SCHEDULE_CRAWLS)
