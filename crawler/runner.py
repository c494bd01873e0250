"""Run one crawl as `scrapy crawl <spider>` in a subprocess and account for it in `crawls`.

Scrapy's Twisted reactor cannot be restarted inside one process, so every crawl (scheduled,
manual or a single resubmitted lot) is its own process. The `crawls` row is created here
first, so a crawl that dies (killed, out of memory, Chromium crash) still leaves a row that
says so; the spider's CrawlRecorder fills in Scrapy's stats when it closes normally.
Full crawls of one source never overlap (PostgreSQL advisory lock held for the run).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from artwatch.db import connect
from artwatch.db.retry import db_retrying
from artwatch.settings import get_settings
from crawler.sources import Source, get_source

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CRAWL_LOCK_CLASS = 0x6177  # "aw": advisory-lock namespace for per-source crawl locks
PLAYWRIGHT_HANDLERS = {
    "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
}


@dataclass
class CrawlResult:
    """How a crawl ended; `stats` are Scrapy's (as stored on the crawl row)."""

    crawl_id: int | None
    source: str
    status: str  # finished | failed | skipped
    returncode: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    log_path: Path | None = None
    seconds: float = 0.0


def create_crawl(conn: Any, source_id: int, trigger: str) -> int:
    row = conn.execute(
        "INSERT INTO crawls (source_id, trigger) VALUES (%s, %s) RETURNING id", (source_id, trigger)
    ).fetchone()
    return int(row["id"])


def scrapy_command(
    source: Source,
    *,
    crawl_id: int,
    url: str | None = None,
    full: bool = False,
    force: bool = False,
    settings: dict[str, Any] | None = None,
    shard: str | None = None,
) -> list[str]:
    """The `scrapy crawl` command line for this source and run."""
    command = [sys.executable, "-m", "scrapy", "crawl", source.spider,
               "-a", f"source={source.name}", "-a", f"crawl_id={crawl_id}"]
    if url:
        command += ["-a", f"url={url}"]
    if full:
        command += ["-a", "full=1"]
    if force:
        command += ["-a", "force=1"]
    if shard:
        command += ["-a", f"shard={shard}"]
    merged: dict[str, Any] = dict(source.scrapy_settings())
    if source.settings.get("playwright") and source.spider == "generic":
        merged["DOWNLOAD_HANDLERS"] = PLAYWRIGHT_HANDLERS
    merged.update(settings or {})
    for name, value in merged.items():
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        command += ["-s", f"{name}={text}"]
    return command


def _with_retry(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Run a database step after the crawl, waiting out a PostgreSQL restart (fresh conn)."""
    return db_retrying(get_settings().db_retry_s, what)(fn, *args)


def _finish_row(crawl_id: int, status: str, error: str | None) -> None:
    def finish() -> None:
        with connect(autocommit=True) as conn:
            conn.execute(
                "UPDATE crawls SET status = %s, error = coalesce(error, %s), "
                "finished_at = coalesce(finished_at, now()) WHERE id = %s "
                "AND status = 'running'",
                (status, error, crawl_id),
            )

    _with_retry(f"closing crawl {crawl_id}", finish)


def _crawl_row(crawl_id: int) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        with connect(autocommit=True) as conn:
            return conn.execute(
                "SELECT status, stats, error FROM crawls WHERE id = %s", (crawl_id,)
            ).fetchone()

    return _with_retry(f"reading crawl {crawl_id}", read)


def shared_politeness(source: Source, processes: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """Scrapy settings that split the source's per-site budget between `processes` crawls."""
    from crawler import settings as defaults

    merged = {**source.scrapy_settings(), **overrides}
    concurrency = int(merged.get("CONCURRENT_REQUESTS_PER_DOMAIN",
                                 defaults.CONCURRENT_REQUESTS_PER_DOMAIN))
    delay = float(merged.get("DOWNLOAD_DELAY", defaults.DOWNLOAD_DELAY))
    return {
        "CONCURRENT_REQUESTS_PER_DOMAIN": max(1, -(-concurrency // processes)),
        "DOWNLOAD_DELAY": delay * processes,
        # The crawl processes already fill the cores: photos are checked in their threads
        # (2 processes, 3 alternating rounds: threads 88.9-110.8 lots/s, a photo process
        # each 81.6-92.6; crawler/README.md).
        "ARTWATCH_PHOTO_PROCESSES": 0,
    }


_FIRST = ("start_time",)
_LAST = ("finish_time",)
_MAX = ("elapsed_time_seconds", "memusage/max", "memusage/startup")


def merge_stats(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """One crawl's stats from its processes': counts summed, times spanned, peaks maxed."""
    merged: dict[str, Any] = {}
    for stats in shards:
        for key, value in stats.items():
            if key in merged and key in _FIRST:
                merged[key] = min(merged[key], value)
            elif key in merged and key in _LAST:
                merged[key] = max(merged[key], value)
            elif key in _MAX or key.endswith("/max") or key.endswith("max_concurrent"):
                merged[key] = max(merged.get(key, value), value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                prior = merged.get(key)  # None where a shard had no figure (too short a run)
                merged[key] = value + (prior if isinstance(prior, int | float) else 0)
            else:
                merged.setdefault(key, value)
    reasons = [s.get("finish_reason") for s in shards]
    merged["finish_reason"] = next((r for r in reasons if r != "finished"), "finished")
    if merged.get("elapsed_time_seconds"):
        merged["items_per_minute"] = (
            merged.get("item_scraped_count", 0) * 60 / merged["elapsed_time_seconds"]
        )
    return merged


def _merge_shards(crawl_id: int, processes: int, error: str | None) -> None:
    """Close a crawl run by several processes: merged stats, finished only if all were."""
    _with_retry(f"closing crawl {crawl_id}", _merge_shards_once, crawl_id, processes, error)


def _merge_shards_once(crawl_id: int, processes: int, error: str | None) -> None:
    with connect(autocommit=True) as conn:
        row = conn.execute("SELECT stats FROM crawls WHERE id = %s", (crawl_id,)).fetchone()
        shards = (row["stats"] or {}).get("shards", {})
        per_shard = [shards[k] for k in sorted(shards, key=int)]
        merged = merge_stats(per_shard) if per_shard else {}
        merged["shards"] = shards
        merged["processes"] = processes
        if error is None and len(per_shard) != processes:
            error = f"{processes - len(per_shard)} of {processes} crawl processes left no stats"
        if error is None and merged.get("finish_reason") != "finished":
            error = str(merged.get("finish_reason"))
        conn.execute(
            "UPDATE crawls SET status = %s, error = %s, stats = %s, finished_at = now() "
            "WHERE id = %s",
            ("failed" if error else "finished", error, Jsonb(merged), crawl_id),
        )


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the crawl and everything it started (Chromium included): its own process group."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_crawl(
    source_name: str,
    *,
    trigger: str = "schedule",
    url: str | None = None,
    full: bool = False,
    force: bool = False,
    crawl_id: int | None = None,
    timeout: float = 6 * 3600,
    settings: dict[str, Any] | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    processes: int | None = None,
) -> CrawlResult:
    """Crawl a source (or one lot URL of it) now, in a subprocess; block until it ends.

    `processes` > 1 (or the source's `processes` setting) splits a full crawl over several
    Scrapy processes, each taking the lots whose key hashes to its shard, so a crawl can use
    several cores; the per-site concurrency and delay are divided between them so the site
    sees the same politeness.
    """
    started = time.monotonic()
    # The connection holds the crawl's advisory lock while the crawl runs. After the crawl,
    # only fresh connections are used: PostgreSQL may have restarted meanwhile, and the
    # crawl's outcome must still be recorded and reported as it was.
    with closing(connect(autocommit=True)) as conn:
        source = get_source(conn, source_name)
        if crawl_id is None:
            crawl_id = create_crawl(conn, source.id, trigger)
        locked = True
        if not url:  # single-lot resubmissions may run beside a full crawl
            locked = bool(conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s) AS ok", (CRAWL_LOCK_CLASS, source.id)
            ).fetchone()["ok"])
        if not locked:
            # A redelivered task (its crawl row already names a runner) must not touch the
            # row the running crawl owns; a fresh row that cannot run now is closed.
            row = conn.execute("SELECT stats FROM crawls WHERE id = %s", (crawl_id,)).fetchone()
            if row is None or "runner" not in (row["stats"] or {}):
                _finish_row(crawl_id, "failed", "another crawl of this source is running")
            return CrawlResult(crawl_id, source.name, "skipped",
                               error="another crawl of this source is running")
        conn.execute(
            "UPDATE crawls SET stats = stats || %s WHERE id = %s",
            (Jsonb({"runner": {"host": socket.gethostname(), "pid": os.getpid()}}), crawl_id),
        )
        logs = get_settings().data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        processes = 1 if url else max(1, int(processes or source.settings.get("processes", 1)))
        run_settings = dict(settings or {})
        if processes > 1:
            run_settings = {**shared_politeness(source, processes, run_settings), **run_settings}
        env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings"}
        running: list[tuple[subprocess.Popen[bytes], Path]] = []
        for index in range(processes):
            log_path = logs / (f"crawl-{crawl_id}.log" if processes == 1
                               else f"crawl-{crawl_id}-{index}.log")
            command = scrapy_command(
                source, crawl_id=crawl_id, url=url, full=full, force=force,
                settings=run_settings, shard=f"{index}/{processes}" if processes > 1 else None,
            )
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            running.append((process, log_path))
            if on_start is not None:
                on_start(process)
        deadline = time.monotonic() + timeout
        error = None
        returncode = 0
        for process, log_path in running:
            try:
                code = process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for other, _ in running:
                    _stop(other)
                error = f"timed out after {timeout:.0f}s"
                code = process.returncode
            if code != 0 and error is None:
                error = f"scrapy exited with {code}: {_log_tail(log_path, 600)}"
            returncode = returncode or (code if code is not None else -9)
    if processes > 1:
        _merge_shards(crawl_id, processes, error)
    elif error:
        _finish_row(crawl_id, "failed", error)
    row = _crawl_row(crawl_id)
    if row["status"] == "running" and processes == 1:  # it ended without recording how
        _finish_row(crawl_id, "failed", "the crawl process ended without recording its outcome")
        row = _crawl_row(crawl_id)
    return CrawlResult(
        crawl_id=crawl_id,
        source=source.name,
        status=row["status"],
        returncode=returncode,
        stats=row["stats"] or {},
        error=row["error"],
        log_path=running[0][1],
        seconds=time.monotonic() - started,
    )
