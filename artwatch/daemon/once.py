"""`artwatch run --once`: one full cycle of the daemon, then stop (the demo, tests, cron jobs).

1. crawls: the sources due when the run starts get their crawls from beat (it checks
   schedules as it starts); once all are created, beat is stopped so that none starts again;
2. drain: the crawls finish, the queues are empty, the `artwatch` worker is idle and every
   stored listing photo has a prediction under the active bundle (PostgreSQL is the truth).
   Photos still without one while nothing is in flight (their message was lost, e.g. with a
   killed worker) are sent again once with `artwatch match pending`; any left after that
   are reported;
3. digest: the alert sender's digest task runs, and the queues drain again.

Every state is read from PostgreSQL, Redis and the workers themselves, so the cycle holds
whatever the children do; the controller only watches. "Drained" must hold on
`STABLE_POLLS` polls in a row: a task that hands work on sends it before it is acknowledged.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from artwatch.daemon.control import Supervisor
from artwatch.daemon.queues import queue_depths
from artwatch.settings import Settings

STABLE_POLLS = 3
STALL_S = 20.0  # photos unpredicted with nothing in flight for this long: resend once
CRAWLS_CREATED_TIMEOUT_S = 180.0
PROGRESS_EVERY_S = 10.0

_UNPREDICTED_SQL = """
SELECT count(DISTINCT li.image_id) AS n FROM listing_images li
 WHERE li.status = 'stored' AND NOT EXISTS (
       SELECT 1 FROM predictions p JOIN bundles b ON b.id = p.bundle_id AND b.active
        WHERE p.image_id = li.image_id)
"""


class OnceCycle:
    """Decides, poll by poll, whether the one cycle is done."""

    def __init__(self, settings: Settings, console: Console, supervisor: Supervisor) -> None:
        from artwatch.db import connect, database_url
        from artwatch.services import redis_url
        from crawler.schedule import due_now

        self.settings = settings
        self.console = console
        self.supervisor = supervisor
        self.db_url = database_url(settings)
        self.redis_url = redis_url(settings)
        self.connect = lambda: connect(self.db_url, autocommit=True)
        with self.connect() as conn:
            self.t0 = conn.execute("SELECT now() AS t").fetchone()["t"]
            self.due = [s.name for s in due_now(conn)]
        self.phase = "crawls" if self.due else "drain"
        self.phase_started = time.monotonic()
        self.stable = 0
        self.stall_since: float | None = None
        self.resent = False
        self.unrecognised = 0
        self.last_progress = 0.0
        self.worker_node = f"worker@{socket.gethostname()}"
        due = ", ".join(self.due) if self.due else "none"
        console.print(f"--once: sources due now: {due}")

    # --- facts --------------------------------------------------------------------------

    def _crawls(self, conn: Any) -> list[dict[str, Any]]:
        return conn.execute(
            "SELECT c.id, s.name, c.status, c.trigger, c.stats, c.error FROM crawls c "
            "JOIN sources s ON s.id = c.source_id WHERE c.started_at >= %s ORDER BY c.id",
            (self.t0,),
        ).fetchall()

    def _worker_idle(self) -> bool:
        """The `artwatch` worker answers and has nothing active or reserved."""
        from artwatch.queue import app

        inspect = app.control.inspect(destination=[self.worker_node], timeout=1.5)
        for reply in (inspect.active(), inspect.reserved()):
            if not reply or self.worker_node not in reply or reply[self.worker_node]:
                return False
        return True

    def _progress(self, conn: Any, depths: dict[str, int], crawls: list[dict[str, Any]],
                  unpredicted: int) -> None:
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_EVERY_S:
            return
        self.last_progress = now
        done = sum(c["status"] != "running" for c in crawls)
        stored = conn.execute(
            "SELECT count(DISTINCT image_id) AS n FROM listing_images WHERE status = 'stored'"
        ).fetchone()["n"]
        self.console.print(
            f"[{self.phase}] crawls {done}/{len(crawls)} done; listing photos recognised "
            f"{stored - unpredicted}/{stored}; queued: artwatch {depths['artwatch']}, "
            f"matcher {depths['matcher']}"
        )

    def _drained(self) -> bool:
        depths = queue_depths(self.redis_url)
        with self.connect() as conn:
            crawls = self._crawls(conn)
            unpredicted = int(conn.execute(_UNPREDICTED_SQL).fetchone()["n"])
            self._progress(conn, depths, crawls, unpredicted)
        if depths["artwatch"] or depths["matcher"]:
            self.stall_since = None
            return False
        if any(c["status"] == "running" for c in crawls) or not self._worker_idle():
            self.stall_since = None
            return False
        if unpredicted == 0:
            return True
        # Nothing in flight, yet photos wait: their messages are gone (or a photo cannot be
        # read). Wait a little (a matcher may hold a batch), send them again once, report.
        now = time.monotonic()
        if self.stall_since is None:
            self.stall_since = now
            return False
        if now - self.stall_since < STALL_S:
            return False
        if not self.resent:
            self.resent = True
            self.stall_since = None
            self.console.print(f"{unpredicted} stored listing photo(s) have no prediction "
                               "and nothing is in flight: artwatch match pending")
            subprocess.run([sys.executable, "-m", "artwatch.cli", "match", "pending"],
                           check=False, env=dict(os.environ))
            return False
        self.unrecognised = unpredicted
        return True

    # --- the cycle ----------------------------------------------------------------------

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self.phase_started = time.monotonic()
        self.stable = 0
        self.console.print(f"--once: {phase}")

    def poll(self) -> bool:
        """One look; True when the cycle is complete."""
        if self.phase == "crawls":
            with self.connect() as conn:
                started = {c["name"] for c in self._crawls(conn) if c["trigger"] == "schedule"}
            if set(self.due) <= started:
                self.supervisor.stop("beat")  # no further crawls in this cycle
                self.console.print(f"--once: beat started {len(started)} crawl(s); beat "
                                   "stopped for the rest of the cycle")
                self._enter("drain")
            elif time.monotonic() - self.phase_started > CRAWLS_CREATED_TIMEOUT_S:
                missing = ", ".join(sorted(set(self.due) - started))
                self.console.print(f"[red]beat did not start crawls of {missing}[/red]")
                self.supervisor.stop("beat")
                self._enter("drain")
            return False
        self.stable = self.stable + 1 if self._drained() else 0
        if self.stable < STABLE_POLLS:
            return False
        if self.phase == "drain":
            from artwatch.queue import SEND_DIGESTS, app

            app.send_task(SEND_DIGESTS)
            self._enter("digest")
            return False
        return True

    def summary(self) -> None:
        """What the cycle did: crawls, photos, matches, alerts."""
        with self.connect() as conn:
            crawls = self._crawls(conn)
            counts = conn.execute(
                """
                SELECT (SELECT count(*) FROM matches WHERE created_at >= %(t)s) AS matches,
                       (SELECT count(*) FROM alerts WHERE sent_at >= %(t)s) AS alerts,
                       (SELECT count(*) FROM predictions WHERE created_at >= %(t)s) AS preds
                """,
                {"t": self.t0},
            ).fetchone()
        table = Table("crawl", "source", "status", "lots", "photos stored", "photos failed",
                      title="--once: this cycle")
        for c in crawls:
            stats = c["stats"] or {}
            table.add_row(str(c["id"]), c["name"], c["status"],
                          str(stats.get("item_scraped_count", 0)),
                          str(stats.get("artwatch/photos_stored", 0)),
                          str(stats.get("artwatch/photos_failed", 0)))
        self.console.print(table)
        self.console.print(
            f"--once: done; {counts['preds']} photo(s) recognised, {counts['matches']} new "
            f"match(es), {counts['alerts']} alert(s) sent"
            + (f"; [red]{self.unrecognised} photo(s) could not be recognised[/red]"
               if self.unrecognised else "")
        )
