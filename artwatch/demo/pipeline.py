"""`artwatch demo run`: the whole daemon on generated data, on embedded services.

It drives artwatch exactly as an operator would, through its own commands: generate and
import a museum catalogue, train and activate a small model, index the catalogue, start the
local auction houses and register them as sources, start a matcher worker, crawl every house,
wait for the matcher, and send the digest (to the outbox when no SMTP server is set). Each
stage is idempotent, so a second run reuses the catalogue and model and only re-crawls.
At the end it scores the alerts against the auction houses' ground truth.
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

from rich.console import Console
from rich.table import Table

from artwatch.settings import Settings

DEMO_REVIEWER = "reviewer@artwatch.invalid"
FAST_POLITENESS = {"politeness": {"download_delay": 0, "autothrottle": False, "concurrency": 8}}


@dataclass(frozen=True)
class DemoOptions:
    objects: int = 40
    lots: int = 30
    seed: int = 0
    epochs: int = 12
    resolution: int = 160
    wait_s: float = 600.0


def artwatch(*args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run an `artwatch` command in a child process (stages stay in their own processes)."""
    proc = subprocess.run([sys.executable, "-m", "artwatch.cli", *args], input=stdin,
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=dict(os.environ, COLUMNS="120"))
    if check and proc.returncode != 0:
        raise RuntimeError(f"artwatch {' '.join(args[:2])} failed:\n{proc.stdout[-3000:]}")
    return proc.stdout


class Demo:
    """One demo run; `stage()` times and prints each step."""

    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.root = settings.data_dir / "demo"
        self.catalogue_dir = self.root / f"catalogue-{options.objects}-{options.seed}"

    def stage(self, title: str, work: Callable[[], str | None]) -> None:
        started = time.perf_counter()
        self.console.rule(f"[bold]{title}")
        note = work()
        took = time.perf_counter() - started
        self.console.print(f"[green]done[/green] in {took:.1f}s" + (f": {note}" if note else ""))

    # --- stages -----------------------------------------------------------------------------

    def catalogue(self) -> str:
        from artwatch.catalogue import import_catalogue
        from artwatch.db import connect
        from artwatch.demo.catalogue import generate_catalogue
        from artwatch.images import ImageStore

        if not (self.catalogue_dir / "manifest.csv").is_file():
            generate_catalogue(self.catalogue_dir, self.options.objects, seed=self.options.seed)
        with connect(autocommit=True) as conn:
            report = import_catalogue(conn, self.catalogue_dir, ImageStore.from_settings())
        return (f"{report.rows} photos of {self.options.objects} objects in "
                f"{self.catalogue_dir}; {report.photos_added} new")

    def model(self) -> str:
        from artwatch.db import connect

        name = f"demo-lite0-{self.options.objects}-{self.options.seed}"
        with connect() as conn:
            row = conn.execute("SELECT active FROM bundles WHERE name = %s", (name,)).fetchone()
        if row is None:
            out = artwatch(
                "train", "--name", name, "--arch", "tf_efficientnet_lite0",
                "--resolution", str(self.options.resolution), "--epochs",
                str(self.options.epochs), "--lr", "1e-3", "--augment", "marketplace",
                "--seed", str(self.options.seed), "--activate",
            )
            self.console.print(out.strip().splitlines()[-1])
        else:
            artwatch("models", "activate", name)
        artwatch("index")
        return f"bundle {name} active, catalogue indexed"

    def reviewer(self) -> str:
        password = secrets.token_urlsafe(9)
        artwatch("reviewers", "add", DEMO_REVIEWER, "--name", "Demo Reviewer",
                 "--password-stdin", stdin=password + "\n")
        return f"log in to the review app as {DEMO_REVIEWER} / {password}"

    def houses(self):  # noqa: ANN201 - the auction house type lives in a sibling package
        from artwatch.demo.auction_house import default_configs, start_houses

        houses = start_houses(default_configs(seed=self.options.seed, lots=self.options.lots),
                              self.catalogue_dir)
        for house in houses.values():
            artwatch("sources", "add", house.config.name, house.config.spider,
                     house.start_url, "--allow-private",
                     "--settings", json.dumps(FAST_POLITENESS))
            self.console.print(f"{house.config.name:12s} {house.config.style:5s} "
                               f"{house.start_url}")
        return houses

    def worker(self) -> subprocess.Popen[bytes]:
        log = (self.root / "worker.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "artwatch.queue", "worker",
             "-Q", "matcher,artwatch", "--pool", "solo", "--prefetch-multiplier", "64",
             "--without-gossip", "--without-mingle", "-l", "INFO"],
            stdout=log, stderr=subprocess.STDOUT,
        )

    def wait_for_matcher(self) -> str:
        from artwatch.db import connect

        deadline = time.monotonic() + self.options.wait_s
        with connect(autocommit=True) as conn:
            while True:
                row = conn.execute(
                    """
                    SELECT count(DISTINCT li.image_id) AS photos,
                           count(DISTINCT p.image_id) AS done
                      FROM listing_images li
                      LEFT JOIN predictions p ON p.image_id = li.image_id
                           AND p.bundle_id = (SELECT id FROM bundles WHERE active)
                     WHERE li.status = 'stored'
                    """
                ).fetchone()
                if row["done"] >= row["photos"] or time.monotonic() > deadline:
                    return f"{row['done']} of {row['photos']} listing photos recognised"
                time.sleep(1.0)

    def score(self, houses: dict) -> Table:  # noqa: ANN001
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
                """
            ).fetchall()
        counts = {"catalogued lots": 0, "alerted, right object": 0, "alerted, wrong object": 0,
                  "missed": 0, "distractor lots": 0, "false alerts": 0}
        for row in rows:
            shows = truth.get((row["source"], row["external_id"]))
            if shows:
                counts["catalogued lots"] += 1
                if row["accession"] == shows:
                    counts["alerted, right object"] += 1
                elif row["accession"]:
                    counts["alerted, wrong object"] += 1
                else:
                    counts["missed"] += 1
            else:
                counts["distractor lots"] += 1
                counts["false alerts"] += bool(row["accession"])
        table = Table("listings crawled", str(len(rows)), title="Alerts vs. ground truth")
        for key, value in counts.items():
            table.add_row(key, str(value))
        return table


def run_demo(settings: Settings, options: DemoOptions, console: Console,
             bring_up: Callable[[], None]) -> None:
    """Everything `artwatch demo run` does, in order."""
    demo = Demo(settings, options, console)
    demo.root.mkdir(parents=True, exist_ok=True)
    demo.stage("services: embedded PostgreSQL + Redis, migrations", lambda: bring_up() or None)
    demo.stage("catalogue: generate + import", demo.catalogue)
    demo.stage("model: train (CPU) + activate + index", demo.model)
    demo.stage("reviewer account", demo.reviewer)
    houses: dict = {}
    worker = None
    try:
        def start() -> str:
            houses.update(demo.houses())
            return f"{len(houses)} auction houses on 127.0.0.1, registered as sources"

        demo.stage("local auction houses", start)
        worker = demo.worker()
        for name in houses:
            demo.stage(f"crawl {name}",
                       lambda n=name: artwatch("crawl", "run", n, "--full").strip()
                       .splitlines()[-1])
        demo.stage("matcher worker: recognise listing photos", demo.wait_for_matcher)
        demo.stage("digest", lambda: artwatch("digest", "send").strip().splitlines()[-1])
        console.print(demo.score(houses))
        console.print(f"digests (no SMTP configured): {settings.outbox_dir}")
        console.print("review app: artwatch web  (then open http://127.0.0.1:8000)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        for house in houses.values():
            house.stop()
