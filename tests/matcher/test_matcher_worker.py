"""The matcher end to end: a real Celery worker recognises listing photos and writes matches.

The bundle here has random weights (training is tested elsewhere); what this checks is the
plumbing a trained bundle goes through: indexing, batching, perceptual-hash and retrieval
evidence, thresholds, idempotent writes, and that bad input never stops the worker.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image
from queue_support import queued

from artwatch.images import ImageStore
from artwatch.images.records import record_image
from artwatch.queue import MATCH_IMAGES, app
from matcher.bundle import save_bundle
from matcher.catalogue_index import CatalogueIndex
from matcher.indexing import index_catalogue
from matcher.model import ArtefactClassifier, backbone_config

ARCH = "tf_efficientnet_lite0"
REPO = Path(__file__).resolve().parents[2]


def _photo(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(6, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def world(conn: psycopg.Connection, settings, tmp_path: Path):
    """Three catalogued objects, an active random-weight bundle, the catalogue indexed."""
    store = ImageStore.from_settings(settings)
    objects = {}
    for o in range(3):
        obj_id = conn.execute(
            "INSERT INTO objects (accession, collection, title) VALUES (%s, 'ceramics', %s) "
            "RETURNING id", (f"CER.{o}", f"Jar {o}")).fetchone()["id"]
        photos = []
        for p in range(2):
            image_id = record_image(conn, store.put(_jpeg(_photo(10 * o + p))))
            conn.execute("INSERT INTO object_images (object_id, image_id) VALUES (%s, %s)",
                         (obj_id, image_id))
            photos.append(image_id)
        objects[f"CER.{o}"] = (obj_id, photos)
    torch_model = ArtefactClassifier(ARCH, 3)
    cfg = backbone_config(ARCH)
    bundle_dir = tmp_path / "bundle"
    save_bundle(bundle_dir, torch_model.eval(), {
        "name": "random-test", "architecture": ARCH, "resolution": 64,
        "mean": list(cfg.mean), "std": list(cfg.std), "objects": sorted(objects),
        "embedding_dim": torch_model.embedding_dim, "temperature": 1.0,
        "thresholds": {"precision_0.95": 0.9},
    })
    bundle_id = conn.execute(
        "INSERT INTO bundles (name, path, architecture, active) VALUES (%s, %s, %s, true) "
        "RETURNING id", ("random-test", str(bundle_dir), ARCH)).fetchone()["id"]
    from matcher.bundle import Bundle

    done, problems = index_catalogue(conn, Bundle.load(bundle_dir), bundle_id, store)
    assert (done, problems) == (6, [])
    source_id = conn.execute(
        "INSERT INTO sources (name, spider, start_urls) VALUES ('house', 'html', "
        "ARRAY['http://127.0.0.1/']) RETURNING id").fetchone()["id"]
    return {"store": store, "objects": objects, "bundle_id": bundle_id, "source": source_id}


def _listing(conn: psycopg.Connection, world, key: str, photos: list[bytes | None]) -> tuple:
    listing_id = conn.execute(
        "INSERT INTO listings (source_id, external_id, url, title) VALUES (%s, %s, %s, %s) "
        "RETURNING id", (world["source"], key, f"http://127.0.0.1/lot/{key}", key),
    ).fetchone()["id"]
    ids = []
    for pos, data in enumerate(photos):
        if data is None:  # a dead link: recorded as failed by the crawler, never matched
            conn.execute(
                "INSERT INTO listing_images (listing_id, url, position, status, error) "
                "VALUES (%s, %s, %s, 'failed', 'http_404')", (listing_id, f"u{pos}", pos))
            continue
        image_id = record_image(conn, world["store"].put(data))
        conn.execute(
            "INSERT INTO listing_images (listing_id, url, position, image_id, status) "
            "VALUES (%s, %s, %s, %s, 'stored')", (listing_id, f"u{pos}", pos, image_id))
        ids.append(image_id)
    return listing_id, ids


def test_index_search_finds_the_same_photo(conn: psycopg.Connection, world) -> None:
    index = CatalogueIndex.load(conn, world["bundle_id"])
    assert len(index) == 6
    row = conn.execute("SELECT vector FROM embeddings WHERE image_id = %s",
                       (world["objects"]["CER.1"][1][0],)).fetchone()
    hits = index.search(np.frombuffer(row["vector"], dtype="<f4")[None, :], k=3)[0]
    assert hits[0].object_id == world["objects"]["CER.1"][0]
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-4)
    assert len({h.object_id for h in hits}) == 3


@pytest.fixture
def worker(db_url: str):
    """A real Celery worker on the matcher queue, in its own process.

    The queue is emptied first: messages other tests left behind name image ids that the
    truncated database has since given to this test's photos.
    """
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("matcher")
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "artwatch.queue", "worker", "-Q", "matcher",
         "-I", "matcher.tasks", "--pool", "solo",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for(conn: psycopg.Connection, sql: str, params: tuple, expected: int,
              timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    count = -1
    while time.monotonic() < deadline:
        count = conn.execute(sql, params).fetchone()["n"]
        if count >= expected:
            return count
        time.sleep(0.5)
    return count


def test_worker_matches_reused_photo_and_ignores_unknown_object(
        conn: psycopg.Connection, world, worker) -> None:
    cat_photo = world["store"].path_for(
        conn.execute("SELECT sha256 FROM images WHERE id = %s",
                     (world["objects"]["CER.2"][1][1],)).fetchone()["sha256"]).read_bytes()
    reused = Image.open(io.BytesIO(cat_photo)).resize((80, 80))
    suspect, suspect_ids = _listing(conn, world, "lot-1", [_jpeg(reused, 80), None])
    innocent, innocent_ids = _listing(conn, world, "lot-2", [_jpeg(_photo(999))])
    app.send_task(MATCH_IMAGES, args=[suspect_ids], kwargs={"listing_id": suspect})
    app.send_task(MATCH_IMAGES, args=[innocent_ids], kwargs={"listing_id": innocent})
    app.send_task(MATCH_IMAGES, args=["not-a-list-of-ids"])  # malformed: dropped, logged
    app.send_task(MATCH_IMAGES, args=[[10**9]], kwargs={"listing_id": None})  # unknown photo
    got = _wait_for(conn, "SELECT count(*) AS n FROM predictions", (), 2)
    assert got == 2, worker.stdout.read() if worker.poll() is not None else got
    _wait_for(conn, "SELECT count(*) AS n FROM matches WHERE listing_id = %s", (suspect,), 1)
    rows = conn.execute(
        "SELECT m.*, o.accession FROM matches m JOIN objects o ON o.id = m.object_id "
        "WHERE listing_id = %s ORDER BY rank", (suspect,)).fetchall()
    phash = [r for r in rows if r["evidence"]["method"] == "phash"]
    assert len(phash) == 1 and phash[0]["accession"] == "CER.2"
    assert phash[0]["bundle_id"] is None and phash[0]["rank"] == 1
    assert phash[0]["evidence"]["image_id"] == suspect_ids[0]
    assert phash[0]["evidence"]["object_image_id"] == world["objects"]["CER.2"][1][1]
    model_rows = [r for r in rows if r["bundle_id"] == world["bundle_id"]]
    assert 1 <= len(model_rows) <= 3  # the model's candidates shown beside the hash hit
    # Random weights spread probability (~1/3 each): below the 0.9 threshold, no alert.
    assert conn.execute("SELECT count(*) AS n FROM matches WHERE listing_id = %s",
                        (innocent,)).fetchone()["n"] == 0
    assert worker.poll() is None  # bad messages did not stop the worker

    # Idempotent: the same messages again change nothing; a dismissal survives.
    conn.execute("UPDATE matches SET status = 'dismissed' WHERE id = %s", (phash[0]["id"],))
    before = conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"]
    app.send_task(MATCH_IMAGES, args=[suspect_ids], kwargs={"listing_id": suspect})
    time.sleep(4)
    assert conn.execute("SELECT count(*) AS n FROM predictions").fetchone()["n"] == before
    assert conn.execute("SELECT status FROM matches WHERE id = %s",
                        (phash[0]["id"],)).fetchone()["status"] == "dismissed"
    stored = conn.execute(
        "SELECT count(*) AS n FROM embeddings WHERE image_id = ANY(%s)",
        (suspect_ids + innocent_ids,)).fetchone()["n"]
    assert stored == 2  # listing embeddings kept for retro-hunts


def test_recogniser_decides_on_the_bundles_combined_score(
        conn: psycopg.Connection, world) -> None:
    """A bundle with a `score` spec: stored scores are `matcher.scoring.combine` of the stored
    classifier probability and retrieval, topk is ordered by it, and the threshold applies to it.
    """
    from matcher.bundle import Bundle
    from matcher.recognise import MatchPolicy, Recogniser
    from matcher.scoring import combine

    path = conn.execute("SELECT path FROM bundles WHERE id = %s",
                        (world["bundle_id"],)).fetchone()["path"]
    bundle = Bundle.load(path)
    spec = {"kind": "product", "w": 9.0, "b": -6.0}
    bundle.score = spec
    index = CatalogueIndex.load(conn, world["bundle_id"])
    accessions = {a: obj for a, (obj, _) in world["objects"].items()}
    rec = Recogniser(bundle, world["bundle_id"], index, accessions,
                     np.zeros((0, 3), np.uint64), world["store"], MatchPolicy(top_k=3))
    cat_photo = world["store"].path_for(
        conn.execute("SELECT sha256 FROM images WHERE id = %s",
                     (world["objects"]["CER.1"][1][0],)).fetchone()["sha256"]).read_bytes()
    resaved = _jpeg(Image.open(io.BytesIO(cat_photo)).resize((90, 90)), 75)
    listing, ids = _listing(conn, world, "lot-combined", [resaved])
    assert rec.recognise_photos(conn, ids) == 1
    pred = conn.execute("SELECT topk, best_score FROM predictions WHERE image_id = %s",
                        (ids[0],)).fetchone()
    top = pred["topk"]["classifier"]
    assert len(top) == 3  # every object, so the full score can be recomputed
    column = {a: i for i, a in enumerate(bundle.objects)}
    p = np.zeros((1, 3))
    r = np.zeros((1, 3))
    for c in top:
        p[0, column[c["accession"]]] = c["classifier"]
        r[0, column[c["accession"]]] = c["retrieval"]
    expected = combine(p, r, spec)[0]
    for c in top:
        assert c["score"] == pytest.approx(expected[column[c["accession"]]], abs=1e-5)
        assert c["score"] != pytest.approx(c["classifier"])
    assert [c["score"] for c in top] == sorted((c["score"] for c in top), reverse=True)
    assert pred["best_score"] == pytest.approx(top[0]["score"])
    by_accession = {c["accession"]: c for c in top}
    assert by_accession["CER.1"]["retrieval"] > 0.9  # a re-save of one of its photos

    rec.threshold = top[0]["score"] + 1e-4  # just above the best combined score: no alert
    assert rec.score_listing(conn, listing) == []
    rec.threshold = top[0]["score"] - 1e-4  # just below: the listing alerts on it
    written = rec.score_listing(conn, listing)
    assert written and written[0]["object_id"] == world["objects"][top[0]["accession"]][0]
    assert written[0]["score"] == pytest.approx(top[0]["score"])
    assert written[0]["evidence"]["scores"]["alert"] == pytest.approx(top[0]["score"])


def _recogniser(conn: psycopg.Connection, world):
    from artwatch.settings import get_settings
    from matcher.recognise import MatchPolicy, Recogniser

    return Recogniser.load(conn, world["store"], MatchPolicy(top_k=3),
                           device=get_settings().matcher_device)


def test_undecodable_stored_photo_is_recorded_failed_once(
        conn: psycopg.Connection, world) -> None:
    good = _jpeg(_photo(501))
    broken = _jpeg(_photo(502))
    listing, ids = _listing(conn, world, "lot-broken", [good, broken])
    path = world["store"].path_for(conn.execute(
        "SELECT sha256 FROM images WHERE id = %s", (ids[1],)).fetchone()["sha256"])
    path.write_bytes(broken[: len(broken) // 4])  # the stored file is damaged
    rec = _recogniser(conn, world)
    assert rec.recognise_photos(conn, ids) == 1  # the good photo; the batch goes on
    rows = conn.execute("SELECT image_id, status, error FROM listing_images "
                        "WHERE listing_id = %s ORDER BY position", (listing,)).fetchall()
    assert [r["status"] for r in rows] == ["stored", "failed"]
    assert rows[1]["error"].startswith("corrupt: ")
    # Never tried again: not by the matcher, not by the sweeper.
    assert rec.recognise_photos(conn, ids) == 0
    from matcher.sweeper import STALE_PHOTOS

    conn.execute("UPDATE listing_images SET queued_at = now() - interval '1 hour'")
    stale = conn.execute(STALE_PHOTOS, {"after": 60, "bundle": world["bundle_id"],
                                        "limit": 100}).fetchall()
    assert stale == []
    assert conn.execute("SELECT count(*) AS n FROM predictions WHERE image_id = %s",
                        (ids[1],)).fetchone()["n"] == 0


def test_sweeper_requeues_lost_work_and_gives_up_after_max_attempts(
        conn: psycopg.Connection, world) -> None:
    from matcher.sweeper import sweep

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("matcher")
    lost, lost_ids = _listing(conn, world, "lot-lost", [_jpeg(_photo(601)), _jpeg(_photo(602))])
    fresh, _ = _listing(conn, world, "lot-fresh", [_jpeg(_photo(603))])
    stuck, stuck_ids = _listing(conn, world, "lot-stuck", [_jpeg(_photo(604))])
    unscored, unscored_ids = _listing(conn, world, "lot-unscored", [_jpeg(_photo(605))])
    rec = _recogniser(conn, world)
    assert rec.recognise_photos(conn, unscored_ids) == 1  # killed before scoring
    conn.execute("UPDATE predictions SET created_at = now() - interval '1 hour'")
    conn.execute("UPDATE listing_images SET queued_at = now() - interval '1 hour' "
                 "WHERE listing_id <> %s", (fresh,))
    conn.execute("UPDATE listing_images SET match_attempts = 3 WHERE listing_id = %s", (stuck,))
    kwargs = {"task": MATCH_IMAGES, "queue": "matcher", "after_s": 60, "max_attempts": 3,
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
        connection.default_channel.queue_purge("matcher")
