"""The matcher end to end: a real Celery worker recognises listing photos and decides listings.

With the bundle the default recipe trained (conftest): indexing, batching, the calibrated
decision, idempotent writes, and bad input that never stops the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import psycopg
import pytest
from PIL import Image
from recognition_support import REPO, jpeg, listing, matches

from artwatch.demo import distractor_listing_photos
from artwatch.queue import MATCH_IMAGES, MATCHER_QUEUE, app
from matcher.bundle import Bundle
from matcher.catalogue_index import CatalogueIndex, NotIndexed
from matcher.overlay import HEIGHT
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
    bundle = Bundle.load(conn.execute("SELECT path FROM bundles WHERE active")
                         .fetchone()["path"])
    assert len(CatalogueIndex.load(conn, served["bundle_id"], bundle)) == 0


def _photo(seed: int, size: int = 96) -> bytes:
    """A photo of no catalogued object (smooth random colours)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 6, 3), dtype=np.uint8)
    return jpeg(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC), 92)


def test_undecodable_stored_photo_is_recorded_failed_once(
        conn: psycopg.Connection, served) -> None:
    good, broken = _photo(501), _photo(502)
    lot, ids = listing(conn, served, [good, broken])
    path = served["store"].path_for(conn.execute(
        "SELECT sha256 FROM images WHERE id = %s", (ids[1],)).fetchone()["sha256"].strip())
    path.write_bytes(broken[: len(broken) // 4])  # the stored file is damaged
    rec = served["recogniser"]()
    assert rec.recognise_photos(conn, ids) == 1  # the good photo; the batch goes on
    rows = conn.execute("SELECT image_id, status, error FROM listing_images "
                        "WHERE listing_id = %s ORDER BY position", (lot,)).fetchall()
    assert [r["status"] for r in rows] == ["stored", "failed"]
    assert rows[1]["error"].startswith("corrupt: ")
    # Never tried again: not by the matcher, not by the sweeper.
    assert rec.recognise_photos(conn, ids) == 0
    from matcher.sweeper import STALE_PHOTOS

    conn.execute("UPDATE listing_images SET queued_at = now() - interval '1 hour'")
    stale = conn.execute(STALE_PHOTOS, {"after": 60, "bundle": served["bundle_id"],
                                        "limit": 100}).fetchall()
    assert stale == []
    assert conn.execute("SELECT count(*) AS n FROM predictions WHERE image_id = %s",
                        (ids[1],)).fetchone()["n"] == 0


def test_sweeper_requeues_lost_work_and_gives_up_after_max_attempts(
        conn: psycopg.Connection, served) -> None:
    from queue_support import queued

    from matcher.sweeper import sweep

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(MATCHER_QUEUE)
    lost, lost_ids = listing(conn, served, [_photo(601), _photo(602)])
    fresh, _ = listing(conn, served, [_photo(603)])
    stuck, _ = listing(conn, served, [_photo(604)])
    unscored, unscored_ids = listing(conn, served, [_photo(605)])
    rec = served["recogniser"]()
    assert rec.recognise_photos(conn, unscored_ids) == 1  # killed before scoring
    conn.execute("UPDATE predictions SET created_at = now() - interval '1 hour'")
    conn.execute("UPDATE listing_images SET queued_at = now() - interval '1 hour' "
                 "WHERE listing_id <> %s", (fresh,))
    conn.execute("UPDATE listing_images SET match_attempts = 3 WHERE listing_id = %s", (stuck,))
    kwargs = {"task": MATCH_IMAGES, "queue": MATCHER_QUEUE, "after_s": 60, "max_attempts": 3,
              "limit": 100}
    result = sweep(conn, app, **kwargs)
    assert (result.photos, result.listings, result.gave_up) == (2, 1, 1)
    sent = {kw["listing_id"]: args[0] for args, kw in queued(MATCH_IMAGES)}
    assert sent == {lost: sorted(lost_ids), unscored: unscored_ids}
    row = conn.execute("SELECT status, error FROM listing_images WHERE listing_id = %s",
                       (stuck,)).fetchone()
    assert row["status"] == "failed" and row["error"].startswith("match_gave_up")
    assert conn.execute("SELECT match_attempts FROM listing_images WHERE listing_id = %s",
                        (lost,)).fetchone()["match_attempts"] == 1
    # Just re-queued: not again before the bound has passed once more.
    again = sweep(conn, app, **kwargs)
    assert (again.photos, again.listings) == (0, 0)
    assert len(queued(MATCH_IMAGES)) == 2
    # Back-pressure: a long queue is not fed more.
    conn.execute("UPDATE listing_images SET queued_at = now() - interval '1 hour'")
    full = sweep(conn, app, **{**kwargs, "limit": 1})
    assert full.skipped and "already queued" in full.skipped
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(MATCHER_QUEUE)


def _reused_museum_photo(conn: psycopg.Connection, served) -> tuple[str, int, list[int]]:  # noqa: ANN001
    """A lot whose one photo is the first catalogue photo, re-saved at 300 x 300: (the
    object's accession, the lot's id, its photo ids)."""
    photo = conn.execute(
        "SELECT o.accession, i.sha256 FROM objects o JOIN object_images oi "
        "ON oi.object_id = o.id JOIN images i ON i.id = oi.image_id ORDER BY i.id LIMIT 1"
    ).fetchone()
    museum = served["store"].open_rgb(photo["sha256"].strip())
    lot, ids = listing(conn, served, [jpeg(museum.resize((300, 300)), 70)])
    return photo["accession"], lot, ids


def test_an_alert_shows_where_the_model_looked_and_a_rescore_keeps_the_box(
        conn: psycopg.Connection, served) -> None:
    accession, lot, ids = _reused_museum_photo(conn, served)
    rec = served["recogniser"]()
    assert rec.bundle.crops_queries  # the default recipe embeds listing photos' object crops
    rec.handle(conn, [(ids, lot, "live")])
    found = matches(conn, lot)
    assert found and found[0]["accession"] == accession
    picture = conn.execute("SELECT sha256 FROM images WHERE id = %s",
                           (found[0]["evidence"]["saliency_image_id"],)).fetchone()
    assert served["store"].open_rgb(picture["sha256"].strip()).size == (HEIGHT, HEIGHT)

    def topk() -> dict:
        return conn.execute("SELECT topk FROM predictions WHERE image_id = %s",
                            (ids[0],)).fetchone()["topk"]

    before = topk()
    assert "crop" in before  # the box the photo was embedded from, or null for the whole
    if before["crop"] is not None:
        left, top, right, bottom = before["crop"]
        assert 0 <= left < right <= 300 and 0 <= top < bottom <= 300
    assert rec.rescore_photos(conn, ids) == ids  # a retro-hunt: no model pass, the box kept
    assert topk()["crop"] == before["crop"]


def test_a_photo_gone_from_the_store_still_alerts_without_its_pictures(
        conn: psycopg.Connection, served, caplog: pytest.LogCaptureFixture) -> None:
    """Disk trouble between recognition and the decision: the match is written with its
    scores; only the reviewer's pictures are missing, and the log says which photo."""
    accession, lot, ids = _reused_museum_photo(conn, served)
    rec = served["recogniser"]()
    assert rec.recognise_photos(conn, ids) == 1
    served["store"].path_for(conn.execute("SELECT sha256 FROM images WHERE id = %s",
                                          (ids[0],)).fetchone()["sha256"].strip()).unlink()
    with caplog.at_level("WARNING", logger="matcher.recognise"):
        rec.score_listing(conn, lot)
    found = matches(conn, lot)
    assert found and found[0]["accession"] == accession
    assert found[0]["evidence"]["image_id"] == ids[0]
    assert "saliency_image_id" not in found[0]["evidence"]
    assert f"no activation picture for image {ids[0]}" in caplog.text
