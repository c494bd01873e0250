"""Scheduling and the Celery tasks, run by a real worker process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crawler_support import drop_queued, register, rows
from dbreset import truncate_all

from artwatch.db import connect
from artwatch.queue import CRAWL_SOURCE, MATCH_IMAGES, PROCESS_SUBMISSION, SCHEDULE_CRAWLS, app
from artwatch.submissions import submit_url
from crawler.schedule import due_sources

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _empty_db() -> None:
    truncate_all(os.environ["ARTWATCH_DATABASE_URL"])


def test_cron_schedule_decides_what_is_due(houses) -> None:
    house = houses("meridian", style="html", lots=8)
    register(house, schedule="0 * * * *")
    off = houses("lotstream", style="api", lots=8)
    register(off, enabled=False, schedule="* * * * *")
    with connect(autocommit=True) as conn:
        conn.execute("UPDATE sources SET created_at = now() - interval '2 hours'")
        now = dt.datetime.now(dt.UTC)
        due = due_sources(conn, now)
        assert [s.name for s, _ in due] == ["meridian"]
        assert due_sources(conn, now) == []  # its crawl is running: not started twice
        conn.execute("UPDATE crawls SET status = 'finished'")
        assert due_sources(conn, now) == []  # next slot is the next full hour
        assert [s.name for s, _ in due_sources(conn, now + dt.timedelta(hours=1))] == ["meridian"]


def test_new_source_is_due_at_once(houses) -> None:
    """Never crawled on schedule: the first look finds it due (whatever its cron says)."""
    from crawler.schedule import due_now

    register(houses("meridian", style="html", lots=8), schedule="0 0 1 1 *")  # yearly
    with connect(autocommit=True) as conn:
        assert [s.name for s in due_now(conn)] == ["meridian"]
        assert conn.execute("SELECT count(*) AS n FROM crawls").fetchone()["n"] == 0  # read-only
        assert [s.name for s, _ in due_sources(conn)] == ["meridian"]
        conn.execute("UPDATE crawls SET status = 'finished'")
        assert due_now(conn) == [] and due_sources(conn) == []  # next: next January


def test_beat_has_the_one_schedule_entry() -> None:
    import crawler.tasks  # noqa: F401 - registers the tasks and the periodic entry

    app.loader.import_default_modules()
    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == SCHEDULE_CRAWLS]
    assert len(entries) == 1 and entries[0]["schedule"] == 60.0
    assert {CRAWL_SOURCE, SCHEDULE_CRAWLS, PROCESS_SUBMISSION} <= set(app.tasks)


@pytest.mark.slow
def test_worker_runs_crawl_and_submission_tasks(houses) -> None:
    house = houses("meridian", style="html", lots=8)
    register(house)
    queue = f"crawler-test-{os.getpid()}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crawler.tasks", "worker", "-Q", queue,
         "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
         "-l", "WARNING"],
        cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        app.send_task(CRAWL_SOURCE, args=["meridian"], queue=queue)
        lot = house.model.public_lots[0]
        submission = submit_url(house.lot_url(lot), "web", enqueue=False)
        app.send_task(PROCESS_SUBMISSION, args=[submission.submission_id], queue=queue)
        deadline = time.monotonic() + 240  # two crawls in a solo worker, on a loaded machine
        while time.monotonic() < deadline:
            done = rows("SELECT status FROM submissions WHERE id = %s", submission.submission_id)
            crawls = rows("SELECT status, trigger FROM crawls ORDER BY id")
            if done[0]["status"] != "pending" and len(crawls) == 2 and all(
                    c["status"] != "running" for c in crawls):
                break
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.5)
        assert [c["status"] for c in crawls] == ["finished", "finished"]
        assert done[0]["status"] == "crawled"
        assert rows("SELECT count(*) AS n FROM listings")[0]["n"] == len(house.model.public_lots)
    finally:
        worker.terminate()
        worker.wait(30)
        drop_queued(MATCH_IMAGES)


def test_overlapping_full_crawls_do_not_run_twice(houses) -> None:
    from artwatch.db import connect as db_connect
    from crawler.runner import CRAWL_LOCK_CLASS, create_crawl, run_crawl

    house = houses("meridian", style="html", lots=8)
    source = register(house)
    with db_connect(autocommit=True) as holder:  # a crawl of this source is running
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (CRAWL_LOCK_CLASS, source.id))
        fresh = run_crawl("meridian", trigger="test")
        assert fresh.status == "skipped"
        assert rows("SELECT status FROM crawls WHERE id = %s", fresh.crawl_id)[0]["status"] \
            == "failed"
        with db_connect(autocommit=True) as conn:  # a redelivered message for a running crawl
            running = create_crawl(conn, source.id, "schedule")
            conn.execute("UPDATE crawls SET stats = '{\"runner\": {\"pid\": 1}}' WHERE id = %s",
                         (running,))
        again = run_crawl("meridian", crawl_id=running)
        assert again.status == "skipped"
        assert rows("SELECT status FROM crawls WHERE id = %s", running)[0]["status"] == "running"
    assert house.log == []  # nothing was fetched
