"""Celery tasks of the crawling stage (registered on the shared `artwatch.queue.app`).

- `crawler.schedule_crawls` (every minute, from the one beat): start due sources.
- `crawler.crawl_source(source_name, crawl_id=None, full=False)`: one crawl, as a
  `scrapy crawl` subprocess, reporting into its `crawls` row.
- `crawler.process_submission(submission_id)`: a manual resubmission.

All three are idempotent: a redelivered message finds its crawl or submission finished.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from typing import Any

from celery.signals import beat_init, worker_shutting_down

from artwatch.db import connect
from artwatch.queue import CRAWL_SOURCE, PROCESS_SUBMISSION, SCHEDULE_CRAWLS, app

log = logging.getLogger(__name__)

SCHEDULE_EVERY_S = 60.0

# Scrapy processes of the crawls this worker runs now (each is its own process group).
_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


def _track(process: subprocess.Popen[bytes]) -> None:
    with _running_lock:
        _running.add(process)


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
    started: list[subprocess.Popen[bytes]] = []

    def on_start(process: subprocess.Popen[bytes]) -> None:
        started.append(process)
        _track(process)

    try:
        result = run_crawl(source_name, trigger="schedule", crawl_id=crawl_id, full=full,
                           on_start=on_start)
    finally:
        with _running_lock:
            _running.difference_update(started)
    return {"crawl_id": result.crawl_id, "status": result.status, "error": result.error}


@app.task(name=PROCESS_SUBMISSION, ignore_result=True, acks_late=True)
def process_submission(submission_id: int) -> dict:
    """Crawl a manually submitted lot URL now."""
    from crawler.resubmit import process_submission as run

    result = run(submission_id)
    return {"submission_id": submission_id, "status": result.status, "error": result.error}


@worker_shutting_down.connect
def _stop_crawls(**_: Any) -> None:
    """Warm shutdown: ask running crawls to close (Scrapy's own graceful stop on SIGTERM).

    The crawl then records what it did, its task returns and is acknowledged, and the
    worker exits within its stop timeout instead of waiting hours for a big site; the next
    scheduled (incremental) crawl carries on. Scrapy runs in a session of its own, so the
    supervisor's signal to the worker's process group does not reach it by itself.
    """
    with _running_lock:
        processes = list(_running)
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            log.warning("shutting down: asked crawl process %s to stop", process.pid)
        except ProcessLookupError:
            pass


@beat_init.connect
def _check_schedules_at_start(**_: Any) -> None:
    """Beat looks for due sources as it starts, not only a minute later."""
    app.send_task(SCHEDULE_CRAWLS)


# The one periodic entry: check schedules every minute (run exactly one beat). Celery adds
# it now if the app is configured already, else as soon as it is (importing this module
# never forces the broker configuration).
app.add_periodic_task(SCHEDULE_EVERY_S, schedule_crawls.s(), name=SCHEDULE_CRAWLS)
