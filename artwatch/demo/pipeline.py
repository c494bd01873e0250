"""`artwatch demo run`: the daemon end to end on generated data, on embedded services.

It prepares what an operator would, through artwatch's own commands: generate and import a
museum catalogue, train and activate a model (`artwatch train`, its steps shown as they
go), index the catalogue, add a reviewer, start the local auction houses and
register them as sources with a schedule. Then the daemon does the work: `artwatch run
--once` starts beat, the workers and the matcher under supervisord; beat finds the houses
due at once and queues their crawls, the crawl worker runs Scrapy, the matcher worker
recognises the photos, the alert sender writes the digest to the outbox (no SMTP set).
At the end the demo prints where the digest and the review page are and a one-line verdict
against the houses' ground truth.

Every stage is idempotent: a second run reuses the catalogue, the model, the reviewer and
the houses' addresses (so listing and photo URLs stay the same), re-crawls, and adds no
listing, photo, prediction, match or alert (only the new crawls' rows).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from artwatch.settings import Settings

DEMO_REVIEWER = "reviewer@artwatch.invalid"
FAST_POLITENESS = {"politeness": {"download_delay": 0, "autothrottle": False, "concurrency": 8}}
DEMO_SCHEDULE = "* * * * *"  # due again by the next run; `run --once` crawls each house once


@dataclass(frozen=True)
class DemoOptions:
    objects: int = 40
    lots: int = 30
    seed: int = 0
    views: int = 4
    distractors: int = 120
    wait_s: float = 900.0


def artwatch(*args: str, stdin: str | None = None, check: bool = True,
             console: Console | None = None) -> str:
    """Run an `artwatch` command in a child process; with `console`, echo its lines live."""
    width = max(60, console.width - 2) if console is not None else 120  # fits when echoed
    proc = subprocess.Popen(
        [sys.executable, "-m", "artwatch.cli", *args], text=True, bufsize=1,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=dict(os.environ, COLUMNS=str(width)),
    )
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if console is not None:
            console.print("  " + line.rstrip(), markup=False, highlight=False)
    output = "".join(lines)
    if proc.wait() != 0 and check:
        raise RuntimeError(f"artwatch {' '.join(args[:2])} failed:\n{output[-3000:]}")
    return output


@dataclass(frozen=True)
class Verdict:
    listings: int
    planted: int
    found: int
    wrong_object: int
    missed: int
    distractors: int
    false_alerts: int

    @property
    def line(self) -> str:
        wrong = f" ({self.wrong_object} alerted as another object)" if self.wrong_object else ""
        return (f"verdict: {self.found} of {self.planted} planted objects found, "
                f"{self.missed + self.wrong_object} missed{wrong}; {self.false_alerts} false "
                f"alert(s) on {self.distractors} distractor lots")


class Demo:
    """One demo run; `stage()` times and prints each step."""

    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.root = settings.data_dir / "demo"
        self.catalogue_dir = self.root / f"catalogue-{options.objects}-{options.seed}"
        self.ports_file = self.root / "houses.json"
        self.password_file = self.root / "reviewer-password"

    def stage(self, title: str, work: Callable[[], str | None]) -> None:
        started = time.perf_counter()
        self.console.rule(f"[bold]{title}")
        note = work()
        took = time.perf_counter() - started
        self.console.print(f"[green]done[/green] in {took:.1f}s" + (f": {note}" if note else ""))

    def _progress(self) -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=self.console)

    # --- stages -----------------------------------------------------------------------------

    def catalogue(self) -> str:
        from artwatch.catalogue import import_catalogue
        from artwatch.db import connect
        from artwatch.demo.catalogue import generate_catalogue
        from artwatch.images import ImageStore

        with self._progress() as progress:
            if not (self.catalogue_dir / "manifest.csv").is_file():
                task = progress.add_task("generating objects", total=self.options.objects)
                generate_catalogue(self.catalogue_dir, self.options.objects,
                                   seed=self.options.seed,
                                   progress=lambda done, _: progress.update(task, completed=done))
            from artwatch.catalogue.manifest import read_manifest

            task = progress.add_task("importing photos",
                                     total=len(read_manifest(self.catalogue_dir)))
            with connect(autocommit=True) as conn:
                report = import_catalogue(conn, self.catalogue_dir, ImageStore.from_settings(),
                                          progress=lambda n: progress.advance(task, n))
        return (f"{report.rows} photos of {self.options.objects} objects in "
                f"{self.catalogue_dir}; {report.photos_added} new")

    def model(self) -> str:
        from artwatch.db import connect

        name = f"demo-lite0-{self.options.objects}-{self.options.seed}"
        with connect() as conn:
            row = conn.execute("SELECT active FROM bundles WHERE name = %s", (name,)).fetchone()
        if row is None:
            self.console.print(f"training {name} on the CPU (the default recipe: "
                               f"{self.options.views} listing views per photo, cross-fitted, "
                               f"calibrated):")
            artwatch(
                "train", "--name", name, "--views", str(self.options.views),
                "--distractors", str(self.options.distractors),
                "--seed", str(self.options.seed), "--activate", console=self.console,
            )
        else:
            self.console.print(f"bundle {name} exists: reused, not retrained")
            artwatch("models", "activate", name)
        artwatch("index", console=self.console)
        return f"bundle {name} active, catalogue indexed"

    def reviewer(self) -> str:
        from artwatch.db import connect

        with connect() as conn:
            exists = conn.execute("SELECT 1 FROM reviewers WHERE email = %s AND active",
                                  (DEMO_REVIEWER,)).fetchone()
        if exists and self.password_file.is_file():
            password = self.password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(9)
            artwatch("reviewers", "add", DEMO_REVIEWER, "--name", "Demo Reviewer",
                     "--password-stdin", stdin=password + "\n")
            fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
        return f"log in to the review app as {DEMO_REVIEWER} / {password}"

    def houses(self) -> dict[str, Any]:
        from artwatch.demo.auction_house import default_configs, start_houses

        ports = {}
        if self.ports_file.is_file():
            ports = json.loads(self.ports_file.read_text())
        houses = start_houses(default_configs(seed=self.options.seed, lots=self.options.lots),
                              self.catalogue_dir, ports=ports)
        self.ports_file.write_text(json.dumps({n: h.port for n, h in houses.items()}))
        for house in houses.values():
            artwatch("sources", "add", house.config.name, house.config.spider,
                     house.start_url, "--allow-private", "--schedule", DEMO_SCHEDULE,
                     "--settings", json.dumps(FAST_POLITENESS))
            self.console.print(f"{house.config.name:12s} {house.config.style:5s} "
                               f"{house.start_url}  (schedule {DEMO_SCHEDULE})")
        return houses

    def wait_until_due(self, houses: dict[str, Any]) -> None:
        """On a second run within a minute of the first, wait for the houses' next scheduled
        minute: the daemon crawls what is due (`* * * * *`), and nothing would be yet."""
        import datetime as dt

        from artwatch.db import connect
        from crawler.schedule import next_run

        with connect() as conn:
            row = conn.execute(
                "SELECT max(c.started_at) AS last FROM crawls c JOIN sources s "
                "ON s.id = c.source_id WHERE s.name = ANY(%s) AND c.trigger = 'schedule'",
                (list(houses),)).fetchone()
        if row["last"] is None:
            return
        wait = (next_run(DEMO_SCHEDULE, row["last"]) - dt.datetime.now(dt.UTC)).total_seconds()
        if wait > 0:
            self.console.print(f"waiting {wait:.0f}s for the houses' next scheduled minute")
            time.sleep(wait + 1)

    def daemon(self) -> str:
        out = artwatch("run", "--once", "--no-web", "--timeout", str(int(self.options.wait_s)),
                       console=self.console)
        done = [line for line in out.splitlines() if line.startswith("--once: done")]
        return done[-1].removeprefix("--once: ") if done else None

    def disable_sources(self, houses: dict[str, Any]) -> None:
        """The houses stop with the demo: a later `artwatch run` must not crawl dead ports."""
        from artwatch.db import connect
        from crawler.sources import set_enabled

        with connect(autocommit=True) as conn:
            for name in houses:
                set_enabled(conn, name, False)

    def score(self, houses: dict[str, Any]) -> tuple[Table, Verdict]:
        """Alerts against the houses' ground truth (which lots show catalogued objects)."""
        from artwatch.db import connect

        truth = {}
        for house in houses.values():
            for lot in house.model.public_lots:
                truth[(house.config.name, lot.lot_id)] = lot.shows
        with connect() as conn:
            rows = conn.execute(
                """
                SELECT s.name AS source, l.external_id, o.accession
                  FROM listings l JOIN sources s ON s.id = l.source_id
                  LEFT JOIN matches m ON m.listing_id = l.id AND m.rank = 1
                  LEFT JOIN objects o ON o.id = m.object_id
                 WHERE s.name = ANY(%s)
                """,
                (list(houses),),
            ).fetchall()
        counts = {"found": 0, "wrong": 0, "missed": 0, "planted": 0, "distractors": 0,
                  "false": 0}
        for row in rows:
            shows = truth.get((row["source"], row["external_id"]))
            if shows:
                counts["planted"] += 1
                if row["accession"] == shows:
                    counts["found"] += 1
                elif row["accession"]:
                    counts["wrong"] += 1
                else:
                    counts["missed"] += 1
            else:
                counts["distractors"] += 1
                counts["false"] += bool(row["accession"])
        verdict = Verdict(len(rows), counts["planted"], counts["found"], counts["wrong"],
                          counts["missed"], counts["distractors"], counts["false"])
        table = Table("listings crawled", str(len(rows)), title="Alerts vs. ground truth")
        for key, value in (("lots showing a catalogued object", verdict.planted),
                           ("alerted, right object", verdict.found),
                           ("alerted, wrong object", verdict.wrong_object),
                           ("missed", verdict.missed),
                           ("distractor lots", verdict.distractors),
                           ("false alerts", verdict.false_alerts)):
            table.add_row(key, str(value))
        return table, verdict

    def where(self, since: float) -> None:
        """Where the reviewer's view of this run is: the alert pages and the review app."""
        pages = sorted(self.settings.outbox_dir.glob("*.html"), key=lambda p: p.stat().st_mtime)
        new = [p for p in pages if p.stat().st_mtime >= since]
        digests = [p for p in new if ".digest_" in p.name]
        urgent = [p for p in new if ".urgent_" in p.name]
        for page in digests:
            self.console.print(f"digest (open it in a browser): {page}")
        if urgent:
            self.console.print(f"urgent alerts sent at once ({len(urgent)}; their matches are "
                               f"not repeated in the digest): {', '.join(map(str, urgent))}")
        if not new:
            last = [p for p in pages if ".digest_" in p.name]
            self.console.print("no new alert this run (nothing new to alert)"
                               + (f"; the last digest: {last[-1]}" if last else ""))
        self.console.print(f"review page: run `artwatch web`, open "
                           f"{self.settings.web_base_url.rstrip('/')}/ and log in (see the "
                           f"reviewer stage above)")


def run_demo(settings: Settings, options: DemoOptions, console: Console,
             bring_up: Callable[[], None]) -> Verdict:
    """Everything `artwatch demo run` does, in order; the verdict."""
    started = time.perf_counter()
    wall_started = time.time() - 1  # file times have coarse resolution
    demo = Demo(settings, options, console)
    demo.root.mkdir(parents=True, exist_ok=True)
    demo.stage("services: embedded PostgreSQL + Redis, migrations", lambda: bring_up() or None)
    demo.stage("catalogue: generate + import", demo.catalogue)
    demo.stage("model: train (CPU) + activate + index", demo.model)
    demo.stage("reviewer account", demo.reviewer)
    houses: dict[str, Any] = {}
    try:
        def start() -> str:
            houses.update(demo.houses())
            return f"{len(houses)} auction houses on 127.0.0.1, registered as sources"

        demo.stage("local auction houses", start)
        demo.wait_until_due(houses)
        demo.stage("the daemon: artwatch run --once (crawl, match, digest)", demo.daemon)
        table, verdict = demo.score(houses)
    finally:
        for house in houses.values():
            house.stop()
        if houses:
            demo.disable_sources(houses)
    console.print(table)
    demo.where(since=wall_started)
    console.print(f"[bold]{verdict.line}[/bold] (demo took {time.perf_counter() - started:.0f}s)")
    return verdict
