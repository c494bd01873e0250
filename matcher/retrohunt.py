"""Retro-hunts: stored listings re-scored after the catalogue or the model changed.

A theft reported today is an object added to the catalogue today; the listing that sold it may
have been crawled last month. When catalogue photos are indexed (`artwatch index`), or a bundle
is activated, a retro-hunt re-scores the stored listings:

* photos with an embedding under the active bundle are scored again from it (no decoding, no
  model: one chunked matrix product over the catalogue per batch) - `Recogniser.rescore_photos`;
* photos without one (a new bundle) are re-queued to the matcher workers, marked as retro-hunt
  work, and their listings are decided when the workers have embedded them;
* each listing is then decided as any other (`Recogniser.score_listing`); matches it raises
  are marked `origin = 'retro-hunt'` and are alerted like new ones.

A hunt is a `retrohunts` row that records its resume point (listings are taken in id order), so
a hunt interrupted by a crash or an outage continues where it stopped (`artwatch retrohunt
--resume ID`, or the task again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from matcher.failures import record_scored
from matcher.recognise import Recogniser

log = logging.getLogger(__name__)
Enqueue = Callable[[list[int], int], None]  # (image ids, listing id): re-embed in the background


def start_hunt(conn: psycopg.Connection, bundle_id: int, reason: str,
               since: datetime | None = None) -> int:
    """A new hunt row; returns its id."""
    row = conn.execute(
        "INSERT INTO retrohunts (bundle_id, reason, since) VALUES (%s, %s, %s) RETURNING id",
        (bundle_id, reason, since),
    ).fetchone()
    return int(row["id"])


def stored_listings(conn: psycopg.Connection, since: datetime | None = None) -> int:
    """Listings with at least one stored photo (first seen since `since`)."""
    row = conn.execute(
        """
        SELECT count(DISTINCT l.id) AS n FROM listings l
          JOIN listing_images li ON li.listing_id = l.id AND li.status = 'stored'
         WHERE %s::timestamptz IS NULL OR l.first_seen >= %s
        """,
        (since, since),
    ).fetchone()
    return int(row["n"])


def run_hunt(conn: psycopg.Connection, recogniser: Recogniser, hunt_id: int, *,
             enqueue: Enqueue | None = None, batch: int = 100,
             progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) hunt `hunt_id` to its end; returns its counters and the new match ids."""
    hunt = conn.execute("SELECT * FROM retrohunts WHERE id = %s", (hunt_id,)).fetchone()
    if hunt is None:
        raise LookupError(f"no retro-hunt #{hunt_id}")
    if hunt["bundle_id"] != recogniser.bundle_id:
        raise ValueError(f"retro-hunt #{hunt_id} is for bundle {hunt['bundle_id']}, the active "
                         f"bundle is {recogniser.bundle_id}; start a new hunt")
    last, since = int(hunt["last_listing_id"]), hunt["since"]
    match_ids: list[int] = []
    try:
        while True:
            rows = conn.execute(
                """
                SELECT l.id, array_agg(DISTINCT li.image_id) AS images FROM listings l
                  JOIN listing_images li ON li.listing_id = l.id AND li.status = 'stored'
                 WHERE l.id > %s AND (%s::timestamptz IS NULL OR l.first_seen >= %s)
                 GROUP BY l.id ORDER BY l.id LIMIT %s
                """,
                (last, since, since, batch),
            ).fetchall()
            if not rows:
                break
            images = sorted({int(i) for r in rows for i in r["images"]})
            have = set(recogniser.rescore_photos(conn, images))
            requeued = 0
            new: list[int] = []
            scored: list[int] = []
            for r in rows:
                missing = [int(i) for i in r["images"] if int(i) not in have]
                if missing and enqueue is not None:
                    enqueue(missing, int(r["id"]))
                    requeued += len(missing)
                if len(missing) < len(r["images"]):  # decide on what is embedded already
                    new += [m["match_id"] for m in
                            recogniser.score_listing(conn, int(r["id"]), "retro-hunt")]
                    scored.append(int(r["id"]))
            record_scored(conn, recogniser.bundle_id, scored)
            last = int(rows[-1]["id"])
            match_ids += new
            conn.execute(
                """
                UPDATE retrohunts SET last_listing_id = %s, listings = listings + %s,
                       photos_requeued = photos_requeued + %s, matches = matches + %s
                 WHERE id = %s
                """,
                (last, len(rows), requeued, len(new), hunt_id),
            )
            if progress:
                progress(len(rows))
    except Exception as exc:
        conn.execute("UPDATE retrohunts SET status = 'failed', error = %s WHERE id = %s",
                     (f"{type(exc).__name__}: {exc}"[:500], hunt_id))
        raise
    done = conn.execute(
        """
        UPDATE retrohunts SET status = 'finished', finished_at = now(), error = NULL
         WHERE id = %s RETURNING listings, photos_requeued, matches
        """,
        (hunt_id,),
    ).fetchone()
    log.info("retro-hunt #%s finished: %s", hunt_id, dict(done))
    return {**dict(done), "match_ids": match_ids}
