"""The matcher loses nothing: kills, outages, restarts and poison, with real processes.

Each test runs artwatch as it runs in production, on a PostgreSQL and a Redis of its own
(`outage_support`) so it can stop them: a Celery matcher worker, beat (the sweeper), and for
crawl cases the local auction house and `artwatch crawl run`. It breaks something the way it
breaks in the field, and then checks, with no operator command, that within the recovery
bound every stored listing photo has exactly one prediction and every listing its score
under the active bundle (and the expected perceptual-hash matches are there). The bounds are
shortened by settings (recover after 8 s, a sweep every 2 s, visibility timeout 20 s).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
import pytest
from outage_support import PgServer, Processes, RedisServer, pg_bin, wait_until
from PIL import Image
from psycopg.rows import dict_row

from artwatch.deadletters import DEAD_LETTER_COUNTS
from artwatch.queue import MATCH_IMAGES, app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(pg_bin() is None, reason="needs PostgreSQL server binaries (initdb)"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

ARCH = "tf_efficientnet_lite0"
TEMPLATE = "artwatch_template"
RECOVERY_BOUND_S = 120  # disruption over -> everything done (recover-after 8 s + sweeps)
LISTINGS = 24


def _photo(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, row_factory=dict_row)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Private PostgreSQL + Redis, and a template database: catalogue, bundle, index."""
    from artwatch.db import migrate
    from artwatch.images import ImageStore
    from artwatch.images.records import record_image
    from matcher.bundle import Bundle
    from matcher.indexing import index_catalogue
    from matcher.sample import write_untrained_bundle

    pg, rd = PgServer(), RedisServer()
    pg.start()
    rd.start()
    data_dir = tmp_path_factory.mktemp("outage-data")
    store = ImageStore(data_dir / "images", max_bytes=40 << 20, max_pixels=60_000_000)
    url = pg.create_database(TEMPLATE)
    migrate(url)
    catalogue: dict[str, list[int]] = {}
    with _connect(url) as conn:
        for o in range(3):
            obj = conn.execute(
                "INSERT INTO objects (accession, collection) VALUES (%s, 'ceramics') "
                "RETURNING id", (f"CER.{o}",)).fetchone()["id"]
            for p in range(2):
                image_id = record_image(conn, store.put(_jpeg(_photo(10 * o + p))))
                conn.execute("INSERT INTO object_images (object_id, image_id) VALUES (%s, %s)",
                             (obj, image_id))
                catalogue.setdefault(f"CER.{o}", []).append(image_id)
        bundle_dir = data_dir / "bundle"
        write_untrained_bundle(bundle_dir, name="random", objects=sorted(catalogue),
                               architecture=ARCH)
        bundle_id = conn.execute(
            "INSERT INTO bundles (name, path, architecture, active) VALUES ('random', %s, %s, "
            "true) RETURNING id", (str(bundle_dir), ARCH)).fetchone()["id"]
        assert index_catalogue(conn, Bundle.load(bundle_dir), bundle_id, store) == (6, [])
    yield {"pg": pg, "redis": rd, "data_dir": data_dir, "store": store,
           "catalogue": catalogue}
    rd.stop()
    pg.destroy()


class System:
    """One test's database, queue, processes and the checks on them."""

    def __init__(self, servers: dict[str, Any], name: str, logs: Path) -> None:
        self.pg: PgServer = servers["pg"]
        self.redis: RedisServer = servers["redis"]
        self.store = servers["store"]
        self.catalogue = servers["catalogue"]
        self.db = self.pg.create_database(name, template=TEMPLATE)
        self.redis.client().flushall()
        env = {**os.environ,
               "ARTWATCH_DATABASE_URL": self.db, "ARTWATCH_REDIS_URL": self.redis.url,
               "ARTWATCH_DATA_DIR": str(servers["data_dir"]),
               "ARTWATCH_MATCHER_BATCH_SIZE": "8", "ARTWATCH_MATCHER_FLUSH_INTERVAL_S": "0.5",
               "ARTWATCH_MATCHER_RECOVER_AFTER_S": "8", "ARTWATCH_MATCHER_SWEEP_INTERVAL_S": "2",
               "ARTWATCH_MATCHER_VISIBILITY_TIMEOUT_S": "20", "ARTWATCH_DB_RETRY_S": "60",
               "ARTWATCH_MATCHER_DECODE_THREADS": "2", "PYTHONUNBUFFERED": "1"}
        self.env = env
        self.logs = logs
        self.procs = Processes(env, logs)
        self.expected_phash: set[tuple[int, int]] = set()  # (listing, object)
        self._connection = app.connection_for_write(self.redis.url)

    def conn(self) -> psycopg.Connection:
        return _connect(self.db)

    # --- data ---------------------------------------------------------------------------

    def listings(self, n: int = LISTINGS, first: int = 0) -> list[tuple[int, list[int]]]:
        """n listings of 1-3 stored photos; every 6th reuses a catalogue photo (a hash hit)."""
        from artwatch.images.records import record_image

        out = []
        with self.conn() as conn:
            source = conn.execute(
                "INSERT INTO sources (name, spider, start_urls) VALUES ('house', 'html_lots', "
                "ARRAY['http://127.0.0.1/']) ON CONFLICT (name) DO UPDATE SET name = 'house' "
                "RETURNING id").fetchone()["id"]
            cat = [(a, ids) for a, ids in sorted(self.catalogue.items())]
            for i in range(first, first + n):
                listing = conn.execute(
                    "INSERT INTO listings (source_id, external_id, url, title) VALUES "
                    "(%s, %s, %s, %s) RETURNING id",
                    (source, f"lot-{i}", f"http://127.0.0.1/lot/{i}", f"Lot {i}"),
                ).fetchone()["id"]
                photos = [_jpeg(_photo(1000 + 7 * i + j)) for j in range(1 + i % 3)]
                if i % 6 == 0:
                    accession, ids = cat[(i // 6) % len(cat)]
                    sha = conn.execute("SELECT sha256 FROM images WHERE id = %s",
                                       (ids[0],)).fetchone()["sha256"]
                    reused = Image.open(io.BytesIO(self.store.read_bytes(sha))).resize((80, 80))
                    photos[0] = _jpeg(reused, 85)
                    obj = conn.execute("SELECT id FROM objects WHERE accession = %s",
                                       (accession,)).fetchone()["id"]
                    self.expected_phash.add((listing, obj))
                image_ids = []
                for pos, data in enumerate(photos):
                    image_id = record_image(conn, self.store.put(data))
                    conn.execute(
                        "INSERT INTO listing_images (listing_id, url, position, image_id, "
                        "status, queued_at) VALUES (%s, %s, %s, %s, 'stored', now())",
                        (listing, f"http://127.0.0.1/p/{i}/{pos}", pos, image_id))
                    image_ids.append(image_id)
                out.append((listing, image_ids))
        return out

    def send(self, args: list[Any], kwargs: dict[str, Any] | None = None) -> None:
        app.send_task(MATCH_IMAGES, args=args, kwargs=kwargs or {},
                      connection=self._connection)

    def enqueue(self, listings: list[tuple[int, list[int]]]) -> None:
        for listing, ids in listings:
            self.send([ids], {"listing_id": listing})

    def queued(self) -> int:
        return int(self.redis.client().llen("matcher"))

    # --- checks -------------------------------------------------------------------------

    def predictions(self) -> int:
        with self.conn() as conn:
            return int(conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"])

    def missing(self) -> dict[str, int]:
        """Work not done yet: stored photos without a prediction, listings without a score."""
        with self.conn() as conn:
            photos = conn.execute(
                """
                SELECT count(*) AS n FROM listing_images li
                 WHERE li.status = 'stored' AND NOT EXISTS (
                       SELECT 1 FROM predictions p JOIN bundles b ON b.id = p.bundle_id
                        WHERE b.active AND p.image_id = li.image_id)
                """).fetchone()["n"]
            listings = conn.execute(
                """
                SELECT count(*) AS n FROM (
                    SELECT li.listing_id, max(p.created_at) AS newest
                      FROM listing_images li
                      JOIN predictions p ON p.image_id = li.image_id
                      JOIN bundles b ON b.id = p.bundle_id AND b.active
                     WHERE li.status = 'stored' GROUP BY li.listing_id) AS l
                 WHERE NOT EXISTS (SELECT 1 FROM listing_scores s JOIN bundles b
                                     ON b.id = s.bundle_id AND b.active
                                    WHERE s.listing_id = l.listing_id
                                      AND s.scored_at >= l.newest)
                """).fetchone()["n"]
            unpredicted_listings = conn.execute(
                "SELECT count(DISTINCT listing_id) AS n FROM listing_images li "
                "WHERE li.status = 'stored' AND NOT EXISTS (SELECT 1 FROM predictions p "
                "WHERE p.image_id = li.image_id)").fetchone()["n"]
            matches = {(r["listing_id"], r["object_id"]) for r in conn.execute(
                "SELECT listing_id, object_id FROM matches WHERE rank = 1")}
        return {"photos": int(photos), "listings": int(listings) + int(unpredicted_listings),
                "phash_matches": len(self.expected_phash - matches)}

    def wait_complete(self, timeout: float = RECOVERY_BOUND_S) -> float:
        """Seconds until nothing is missing; fails with what is missing and the logs."""
        started = time.monotonic()
        try:
            wait_until(lambda: not any(self.missing().values()), timeout, 1.0,
                       "every photo predicted and every listing scored")
        except TimeoutError:
            pytest.fail(f"still missing after {timeout:.0f}s: {self.missing()}\n"
                        f"--- worker log tail ---\n{self.tail('worker')}\n"
                        f"--- worker2 log tail ---\n{self.tail('worker2')}")
        return time.monotonic() - started

    def assert_exactly_once(self) -> None:
        with self.conn() as conn:
            row = conn.execute(
                """
                SELECT (SELECT count(*) FROM predictions) AS predictions,
                       (SELECT count(DISTINCT image_id) FROM listing_images
                         WHERE status = 'stored') AS photos,
                       (SELECT count(*) FROM predictions p
                         WHERE NOT EXISTS (SELECT 1 FROM listing_images li
                                            WHERE li.image_id = p.image_id)) AS strays
                """).fetchone()
        assert row["strays"] == 0  # no prediction for a photo nobody asked about
        assert row["predictions"] == row["photos"]

    def dead_letters(self) -> dict[str, int]:
        raw = self.redis.client().hgetall(DEAD_LETTER_COUNTS)
        return {k.decode(): int(v) for k, v in raw.items()}

    def tail(self, name: str, chars: int = 3000) -> str:
        return self.procs.log(name)[-chars:]

    def close(self) -> None:
        self.procs.stop_all()
        self._connection.release()


@pytest.fixture
def system(servers: dict[str, Any], request: pytest.FixtureRequest,
           tmp_path: Path) -> Iterator[System]:
    sys_ = System(servers, f"outage_{request.node.name[:40].lower()}", tmp_path)
    yield sys_
    sys_.close()
    if servers["redis"].process is None:  # a test that left Redis down
        servers["redis"].start()


def _worker_ready(system: System, name: str = "worker") -> None:
    wait_until(lambda: "ready." in system.procs.log(name), 120, 0.5, f"{name} ready")


# --- the failure table, row by row -----------------------------------------------------------


def test_kill9_of_the_worker_before_its_first_batch_commits(system: System) -> None:
    listings = system.listings()
    system.enqueue(listings)
    system.procs.worker("worker")
    system.procs.beat()
    # The worker took its prefetch (two batches) off the queue; nothing is written yet.
    wait_until(lambda: system.queued() < len(listings), 120, 0.1, "messages prefetched")
    assert system.predictions() == 0
    system.procs.kill("worker")
    system.procs.worker("worker2")
    system.wait_complete()
    system.assert_exactly_once()


def test_kill9_of_the_pool_process_only(system: System) -> None:
    """The worker itself recovers: no sweeper, and a visibility timeout longer than the test
    (before, the killed batch's messages held their prefetch slots until a restart)."""
    system.env["ARTWATCH_MATCHER_VISIBILITY_TIMEOUT_S"] = "3600"
    listings = system.listings()
    main = system.procs.worker("worker", pool="prefork")
    _worker_ready(system)
    children = psutil.Process(main.pid).children()
    assert children, "prefork worker without a pool process"
    # Held still, the pool process is handed its first batch and cannot finish it (on a quiet
    # machine a batch takes ~0.1 s, too quick to catch otherwise): killed in the middle of it.
    for child in children:
        os.kill(child.pid, signal.SIGSTOP)
    system.enqueue(listings)
    wait_until(lambda: system.queued() < len(listings), 60, 0.1, "messages prefetched")
    time.sleep(3)  # past the flush interval: the batch went to the (stopped) pool process
    assert system.predictions() == 0
    for child in children:
        os.kill(child.pid, signal.SIGKILL)  # what the OOM killer does
    system.wait_complete(90)
    system.assert_exactly_once()
    assert main.poll() is None  # the worker stayed up and went on


def test_postgres_stopped_during_matching(system: System) -> None:
    listings = system.listings()
    half = len(listings) // 2
    system.enqueue(listings[:half])
    system.procs.worker("worker")
    system.procs.beat()
    wait_until(lambda: system.predictions() > 0, 120, 0.2, "first batch written")
    system.pg.stop()
    # The rest arrives while PostgreSQL is down (on a quiet machine the first half may all be
    # done already): these batches certainly meet the outage.
    system.enqueue(listings[half:])
    time.sleep(20)
    system.pg.start()
    system.wait_complete()
    system.assert_exactly_once()
    assert "database unavailable" in system.procs.log("worker")


def test_redis_restarted_during_matching(system: System) -> None:
    listings = system.listings()
    system.enqueue(listings)
    system.procs.worker("worker")
    system.procs.beat()
    wait_until(lambda: system.predictions() > 0, 120, 0.2, "first batch written")
    system.redis.stop()  # the queue is gone with it
    time.sleep(3)
    system.redis.start()
    system.wait_complete()
    system.assert_exactly_once()
    # Later messages still go out on the flush timer (less than a batch, and no sweeper to
    # send more): before, the timer died with the connection and they waited for a restart.
    system.procs.kill("beat")
    later = system.listings(3, first=LISTINGS)
    system.enqueue(later)
    system.wait_complete(20)


def test_poison_on_the_queue_is_moved_aside(system: System) -> None:
    """Raw non-messages, non-integer ids and Infinity: logged, counted, kept; no crash."""
    listings = system.listings(6)
    client = system.redis.client()
    client.lpush("matcher", b'{"hello": 1}')  # JSON, but not a message
    client.lpush("matcher", b"this is not JSON")
    system.enqueue(listings[:2])
    catalogue_ids = [i for ids in system.catalogue.values() for i in ids]
    system.send(["123"], {"listing_id": listings[0][0]})  # a string is not a list of ids
    system.send([[True, False]], {"listing_id": listings[0][0]})
    system.send([[1.9]], {"listing_id": listings[0][0]})
    system.send([[catalogue_ids[0], float("inf")]], {"listing_id": listings[0][0]})
    system.send([listings[2][1]], {"listing_id": "7"})
    system.enqueue(listings[2:])  # 4 good messages in the batch beside the Infinity one
    worker = system.procs.worker("worker")
    system.wait_complete(90)
    system.assert_exactly_once()  # catalogue photos 1, 2, 3 were never "predicted"
    counts = system.dead_letters()
    assert counts.get("not_json") == 1 and counts.get("not_a_message") == 1, counts
    assert counts.get("invalid_arguments") == 5, counts
    assert worker.poll() is None, system.tail("worker")
    entries = [json.loads(e) for e in system.redis.client().lrange("artwatch.dead-letters",
                                                                      0, -1)]
    assert any("this is not JSON" in e["raw"] for e in entries)
    assert any("Infinity" in e["raw"] for e in entries)
    # A second worker does not die on anything either.
    client.lpush("matcher", b"[1, 2")
    time.sleep(3)
    assert worker.poll() is None
    assert system.dead_letters().get("not_json") == 2


# --- crawl cases ------------------------------------------------------------------------------


@pytest.fixture
def house(system: System) -> Iterator[Any]:
    from artwatch.demo.auction_house import AuctionHouse, HouseConfig
    from crawler.sources import add_source

    house = AuctionHouse(HouseConfig(name="outage", style="html", lots=24, per_page=6,
                                     specials=False, first_hit_429=False))
    house.start()
    with system.conn() as conn:
        add_source(conn, "outage", "html_lots", [house.start_url], allow_private=True,
                   settings={"politeness": {"download_delay": 0.15, "autothrottle": False,
                                            "concurrency": 2}})
    yield house
    house.stop()


def _crawl(system: System, *extra: str) -> subprocess.Popen[bytes]:
    return system.procs.start("crawl", str(Path(sys.executable).parent / "artwatch"), "crawl",
                              "run", "outage", *extra)


def _listing_count(system: System) -> int:
    try:
        with system.conn() as conn:
            return int(conn.execute("SELECT count(*) AS n FROM listings").fetchone()["n"])
    except psycopg.OperationalError:
        return 0


def test_postgres_stopped_during_a_crawl(system: System, house: Any) -> None:
    system.procs.worker("worker")
    system.procs.beat()
    crawl = _crawl(system, "--full")
    wait_until(lambda: _listing_count(system) >= 6, 120, 0.2, "first lots saved")
    system.pg.stop()
    time.sleep(15)
    system.pg.start()
    assert crawl.wait(180) == 0, system.tail("crawl")
    out = system.procs.log("crawl")
    assert "finished" in out and "Traceback" not in out, out[-3000:]
    assert _listing_count(system) == len(house.model.public_lots)  # no lot lost
    system.wait_complete()
    system.assert_exactly_once()


def test_redis_restarted_during_a_crawl(system: System, house: Any) -> None:
    system.procs.worker("worker")
    system.procs.beat()
    crawl = _crawl(system, "--full")
    wait_until(lambda: _listing_count(system) >= 6, 120, 0.2, "first lots saved")
    system.redis.stop()
    time.sleep(4)
    system.redis.start()
    assert crawl.wait(180) == 0, system.tail("crawl")
    assert _listing_count(system) == len(house.model.public_lots)
    system.wait_complete()
    system.assert_exactly_once()


def test_lots_on_later_pages_are_matched_after_an_incremental_crawl(
        system: System, house: Any) -> None:
    """Their messages were lost (Redis restarted before a worker took them); the next crawl
    is incremental and stops on page one, so it sends nothing again: the sweeper queues them."""
    first = _crawl(system, "--full")
    assert first.wait(180) == 0, system.tail("crawl")
    assert system.queued() > 0
    system.redis.stop()
    system.redis.start()
    second = _crawl(system)  # incremental: stops once a page holds lots it has seen
    assert second.wait(180) == 0, system.tail("crawl")
    assert system.queued() == 0  # nothing re-sent by the crawl
    system.procs.worker("worker")
    system.procs.beat()
    system.wait_complete()
    system.assert_exactly_once()
