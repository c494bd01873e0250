"""The matcher end to end: a real Celery worker recognises listing photos and decides listings.

With the bundle the default recipe trained (conftest): indexing, batching, the calibrated
decision, idempotent writes, and bad input that never stops the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest
from PIL import Image
from recognition_support import REPO, jpeg, listing, matches

from artwatch.demo import distractor_listing_photos
from artwatch.queue import MATCH_IMAGES, MATCHER_QUEUE, app
from matcher.catalogue_index import CatalogueIndex, NotIndexed
from matcher.recognise import MatchPolicy, Recogniser


@pytest.fixture
def worker(served, db_url: str):
    """A real Celery worker on the matcher queue, in its own process.

    The queue is emptied first: messages other tests left behind name image ids that the
    truncated database has since given to this test's photos.
    """
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(MATCHER_QUEUE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "artwatch.queue", "worker", "-Q", MATCHER_QUEUE,
         "-I", "matcher.tasks", "--pool", "solo", "--prefetch-multiplier", "64",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for(conn: psycopg.Connection, sql: str, params: tuple, expected: int,
              timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = conn.execute(sql, params).fetchone()["n"]
        if count >= expected:
            return count
        time.sleep(0.5)
    return count


def test_worker_alerts_on_a_reused_photo_and_not_on_an_ordinary_listing(
        conn: psycopg.Connection, served, worker) -> None:
    photo = conn.execute(
        "SELECT o.accession, i.id, i.sha256 FROM objects o JOIN object_images oi "
        "ON oi.object_id = o.id JOIN images i ON i.id = oi.image_id ORDER BY i.id LIMIT 1"
    ).fetchone()
    museum = served["store"].open_rgb(photo["sha256"].strip())
    reused = museum.resize((300, 300), Image.Resampling.BICUBIC)
    suspect, suspect_ids = listing(conn, served, [jpeg(reused, 70), None])
    ordinary = jpeg(distractor_listing_photos(1, seed=5)[0][1])
    innocent, innocent_ids = listing(conn, served, [ordinary])
    app.send_task(MATCH_IMAGES, args=[suspect_ids], kwargs={"listing_id": suspect})
    app.send_task(MATCH_IMAGES, args=[innocent_ids], kwargs={"listing_id": innocent})
    app.send_task(MATCH_IMAGES, args=["not-a-list-of-ids"])  # malformed: logged, dropped
    app.send_task(MATCH_IMAGES, args=[[10**9]], kwargs={"listing_id": None})  # unknown photo
    got = _wait_for(conn, "SELECT count(*) AS n FROM listing_decisions", (), 2)
    assert got == 2, worker.stdout.read() if worker.poll() is not None else got
    found = matches(conn, suspect)
    assert found and found[0]["accession"] == photo["accession"] and found[0]["rank"] == 1
    assert found[0]["evidence"]["image_id"] == suspect_ids[0]
    assert found[0]["evidence"]["alerted"] is True
    assert [m["score"] for m in found] == sorted((m["score"] for m in found), reverse=True)
    decision = conn.execute("SELECT * FROM listing_decisions WHERE listing_id = %s",
                            (innocent,)).fetchone()
    assert decision["alerted"] is False and matches(conn, innocent) == []
    assert worker.poll() is None  # bad messages did not stop the worker

    # Idempotent: the same messages again change nothing; a dismissal survives.
    conn.execute("UPDATE matches SET status = 'dismissed' WHERE id = %s", (found[0]["id"],))
    before = conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"]
    app.send_task(MATCH_IMAGES, args=[suspect_ids], kwargs={"listing_id": suspect})
    time.sleep(4)
    assert conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"] == before
    assert conn.execute("SELECT status FROM matches WHERE id = %s",
                        (found[0]["id"],)).fetchone()["status"] == "dismissed"
    stored = conn.execute("SELECT count(*) AS n FROM embeddings WHERE image_id = ANY(%s)",
                          (suspect_ids + innocent_ids,)).fetchone()["n"]
    assert stored == 2  # listing embeddings kept for retro-hunts


def test_an_active_bundle_without_an_index_is_refused_with_the_command(
        conn: psycopg.Connection, served) -> None:
    conn.execute("DELETE FROM embeddings")
    with pytest.raises(NotIndexed, match="artwatch index"):
        Recogniser.load(conn, served["store"], MatchPolicy())
    index = CatalogueIndex.load(conn, served["bundle_id"], Recogniser.__init__ and
                                __import__("matcher.bundle").bundle.Bundle.load(
                                    conn.execute("SELECT path FROM bundles WHERE active")
                                    .fetchone()["path"]))
    assert len(index) == 0
