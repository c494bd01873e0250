"""Helpers for the daemon tests: a quick world to match, and a running `artwatch run`."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ARCH = "tf_efficientnet_lite0"


def jpeg(seed: int, size: int = 96) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def random_world(conn: Any, store: Any, bundle_dir: Path, *, listings: int,
                 photos_per_listing: int) -> list[int]:
    """Three catalogued objects, an active random-weight bundle (indexed), and listings
    whose stored photos wait for the matcher; returns the listing photos' image ids."""
    from artwatch.images.records import record_image
    from matcher.bundle import Bundle
    from matcher.indexing import index_catalogue
    from matcher.sample import write_untrained_bundle

    accessions = []
    for o in range(3):
        obj = conn.execute("INSERT INTO objects (accession, collection, title) VALUES "
                           "(%s, 'ceramics', %s) RETURNING id", (f"CER.{o}", f"Jar {o}")
                           ).fetchone()["id"]
        for p in range(2):
            image = record_image(conn, store.put(jpeg(10 * o + p)))
            conn.execute("INSERT INTO object_images (object_id, image_id) VALUES (%s, %s)",
                         (obj, image))
        accessions.append(f"CER.{o}")
    write_untrained_bundle(bundle_dir, name="random-daemon", objects=accessions,
                           architecture=ARCH)
    info = json.loads((bundle_dir / "bundle.json").read_text())
    bundle_id = conn.execute(
        "INSERT INTO bundles (name, path, architecture, info, active) "
        "VALUES (%s, %s, %s, %s::jsonb, true) RETURNING id",
        ("random-daemon", str(bundle_dir), ARCH, json.dumps(info))).fetchone()["id"]
    index_catalogue(conn, Bundle.load(bundle_dir), bundle_id, store)
    source = conn.execute(  # disabled: beat must not crawl it
        "INSERT INTO sources (name, spider, start_urls, enabled) VALUES ('house', 'html_lots', "
        "ARRAY['http://127.0.0.1:9/'], false) RETURNING id").fetchone()["id"]
    ids = []
    for n in range(listings):
        listing = conn.execute(
            "INSERT INTO listings (source_id, external_id, url, title) VALUES (%s, %s, %s, %s) "
            "RETURNING id", (source, f"lot-{n}", f"http://127.0.0.1:9/lot/{n}", f"lot {n}"),
        ).fetchone()["id"]
        for p in range(photos_per_listing):
            image = record_image(conn, store.put(jpeg(1000 + n * photos_per_listing + p)))
            conn.execute(
                "INSERT INTO listing_images (listing_id, url, position, image_id, status, "
                "queued_at) VALUES (%s, %s, %s, %s, 'stored', now())",
                (listing, f"http://127.0.0.1:9/img/{n}-{p}.jpg", p, image))
            ids.append(image)
    return ids


def enqueue_one_per_message(conn: Any) -> int:
    """Every unpredicted stored photo as its own message (many messages fill a batch)."""
    from artwatch.queue import MATCH_IMAGES, app

    rows = conn.execute("SELECT listing_id, image_id FROM listing_images "
                        "WHERE status = 'stored' ORDER BY id").fetchall()
    for row in rows:
        app.send_task(MATCH_IMAGES, args=[[row["image_id"]]],
                      kwargs={"listing_id": row["listing_id"]})
    return len(rows)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def artwatch(*args: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "artwatch.cli", *args], cwd=REPO, env=env,
                          text=True, capture_output=True, timeout=timeout)


def status(env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    done = artwatch("status", "--json", env=env)
    return done.returncode, json.loads(done.stdout)


class RunningDaemon:
    """`artwatch run [args]` in a child process, its output in a file."""

    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.env = env or dict(os.environ)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "artwatch.cli", "run", *args], cwd=REPO, env=self.env,
                stdout=out, stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> dict[str, Any]:
        return status(self.env)[1]["daemon"]["children"]

    def wait_until(self, check: Any, timeout: float, what: str) -> float:
        """Seconds until `check(children)` holds (AssertionError after `timeout`)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process.poll() is None, f"artwatch run exited:\n{self.output()}"
            if check(self.children()):
                return time.monotonic() - started
            time.sleep(0.3)
        raise AssertionError(f"not {what} within {timeout}s:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 120) -> float:
        """SIGTERM; seconds until the controller exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
