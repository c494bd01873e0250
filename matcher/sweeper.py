"""The matcher's sweeper: PostgreSQL is the truth, so interrupted work is found from its rows.

Run by beat every `ARTWATCH_MATCHER_SWEEP_INTERVAL_S` (task `matcher.sweep`, on the matcher
queue). It re-queues, as ordinary `matcher.match_images` messages:

1. stored listing photos without a prediction under the active bundle, queued (or first
   seen, if never queued) more than `ARTWATCH_MATCHER_RECOVER_AFTER_S` ago: their message
   was lost (Redis restarted, a send failed, a worker was killed, a lot sat on a list page an
   incremental crawl never reached again). Each re-queue counts in
   `listing_images.match_attempts`; a photo re-queued `ARTWATCH_MATCHER_MAX_ATTEMPTS` times
   is marked failed with the reason instead (so a photo that kills its worker cannot loop);
2. listings whose stored photos all have predictions but whose score under the active bundle
   is missing or older than their newest prediction (a worker died between the two writes),
   once that prediction is older than the same bound.

So a crash or an outage costs at most the bound plus one sweep, with no operator command.
Back-pressure: nothing is re-queued while the matcher queue already holds more than
`ARTWATCH_MATCHER_SWEEP_LIMIT` messages, and at most that many photos per sweep; re-queued
photos get a fresh `queued_at`, so a long queue is not fed the same photos again. Writes
are idempotent, so a photo that was only slow and gets matched twice changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from matcher.failures import mark_gave_up

log = logging.getLogger(__name__)

# Stored listing photos without a prediction under the active bundle, waiting too long.
STALE_PHOTOS = """
SELECT li.id, li.listing_id, li.image_id, li.match_attempts
  FROM listing_images li
 WHERE li.status = 'stored' AND li.image_id IS NOT NULL
   AND coalesce(li.queued_at, li.first_seen) < now() - make_interval(secs => %(after)s)
   AND NOT EXISTS (SELECT 1 FROM predictions p
                    WHERE p.image_id = li.image_id AND p.bundle_id = %(bundle)s)
 ORDER BY coalesce(li.queued_at, li.first_seen)
 LIMIT %(limit)s
 FOR UPDATE OF li SKIP LOCKED
"""

# Listings whose photos are all predicted, scored before their newest prediction (or never).
UNSCORED_LISTINGS = """
SELECT l.listing_id, l.image_ids, coalesce(s.attempts, 0) AS attempts
  FROM (SELECT li.listing_id, array_agg(DISTINCT li.image_id) AS image_ids,
               max(p.created_at) AS newest, bool_and(p.image_id IS NOT NULL) AS all_predicted
          FROM listing_images li
          LEFT JOIN predictions p ON p.image_id = li.image_id AND p.bundle_id = %(bundle)s
         WHERE li.status = 'stored' AND li.image_id IS NOT NULL
         GROUP BY li.listing_id) AS l
  LEFT JOIN listing_scores s ON s.listing_id = l.listing_id AND s.bundle_id = %(bundle)s
 WHERE l.all_predicted
   AND l.newest < now() - make_interval(secs => %(after)s)
   AND (s.scored_at IS NULL OR s.scored_at < l.newest)
   AND (s.queued_at IS NULL OR s.queued_at < now() - make_interval(secs => %(after)s))
   AND coalesce(s.attempts, 0) < %(max_attempts)s
 LIMIT %(limit)s
"""


@dataclass
class SweepResult:
    """What one sweep did (also the task's return value)."""

    photos: int = 0  # listing photos re-queued
    listings: int = 0  # listings re-queued for scoring
    messages: int = 0
    gave_up: int = 0  # photos marked failed after too many attempts
    skipped: str | None = None  # why nothing was looked at


def _queued_messages(app: Any, queue: str) -> int:
    with app.connection_for_write() as connection:
        return int(connection.default_channel.client.llen(queue))


def sweep(conn: psycopg.Connection, app: Any, *, task: str, queue: str, after_s: float,
          max_attempts: int, limit: int, per_message: int = 32) -> SweepResult:
    """Re-queue interrupted work (see the module's docstring); `conn` in autocommit mode."""
    result = SweepResult()
    bundle = conn.execute("SELECT id FROM bundles WHERE active").fetchone()
    if bundle is None:
        result.skipped = "no active bundle"
        return result
    waiting = _queued_messages(app, queue)
    if waiting > limit:
        result.skipped = f"{waiting} messages already queued"
        return result
    params = {"bundle": bundle["id"], "after": after_s, "limit": limit,
              "max_attempts": max_attempts}
    messages: list[tuple[list[int], int]] = []
    with conn.transaction():
        rows = conn.execute(STALE_PHOTOS, params).fetchall()
        give_up = [r["id"] for r in rows if r["match_attempts"] >= max_attempts]
        result.gave_up = mark_gave_up(conn, give_up, max_attempts)
        retry = [r for r in rows if r["match_attempts"] < max_attempts]
        if retry:
            conn.execute(
                "UPDATE listing_images SET queued_at = now(), "
                "match_attempts = match_attempts + 1 WHERE id = ANY(%s)",
                ([r["id"] for r in retry],),
            )
        by_listing: dict[int, list[int]] = {}
        for r in retry:
            by_listing.setdefault(int(r["listing_id"]), []).append(int(r["image_id"]))
        for listing_id, ids in by_listing.items():
            ids = sorted(set(ids))
            for start in range(0, len(ids), per_message):
                messages.append((ids[start:start + per_message], listing_id))
        result.photos = len(retry)
        listings = conn.execute(UNSCORED_LISTINGS, params).fetchall()
        if listings:
            conn.execute(
                """
                INSERT INTO listing_scores (listing_id, bundle_id, attempts, queued_at)
                SELECT unnest(%s::bigint[]), %s, 1, now()
                ON CONFLICT (listing_id, bundle_id)
                DO UPDATE SET attempts = listing_scores.attempts + 1, queued_at = now()
                """,
                ([r["listing_id"] for r in listings], bundle["id"]),
            )
        for r in listings:
            # photos already predicted are skipped by the matcher; the listing is scored
            messages.append((sorted(int(i) for i in r["image_ids"])[:per_message],
                             int(r["listing_id"])))
        result.listings = len(listings)
        # Sent inside the transaction: a send that fails (broker down) rolls the marks back,
        # so no attempt is spent; a commit that fails after the sends costs a duplicate
        # message, which changes nothing.
        for ids, listing_id in messages:
            app.send_task(task, args=[ids], kwargs={"listing_id": listing_id})
    result.messages = len(messages)
    if result.messages or result.gave_up:
        log.warning("sweeper: re-queued %d photo(s) and %d listing(s) in %d message(s); "
                    "gave up on %d photo(s)", result.photos, result.listings,
                    result.messages, result.gave_up)
    return result
