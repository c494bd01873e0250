"""Listing photos the matcher can never use: recorded failed, once, with the reason.

A stored photo whose file is gone or no longer decodes, or one the sweeper has re-queued
`ARTWATCH_MATCHER_MAX_ATTEMPTS` times without a prediction, gets `listing_images.status =
'failed'` and the reason in `error` (the same columns the crawler uses for a photo it could
not fetch). Failed photos are never queued again and a listing is scored on its other
photos; a later crawl that fetches the photo anew makes it `stored` again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import psycopg

from matcher.decode import PhotoUnreadable

log = logging.getLogger(__name__)


def mark_unreadable(conn: psycopg.Connection, unreadable: Mapping[int, PhotoUnreadable]) -> int:
    """Record photos that cannot be decoded; returns the listing photo rows marked."""
    if not unreadable:
        return 0
    ids = list(unreadable)
    reasons = [f"{e.reason}: {e.detail}"[:500] for e in unreadable.values()]
    for image_id, exc in unreadable.items():
        log.error("image %s cannot be used for matching: %s", image_id, exc)
    cur = conn.execute(
        """
        UPDATE listing_images li SET status = 'failed', error = u.reason
          FROM unnest(%s::bigint[], %s::text[]) AS u(image_id, reason)
         WHERE li.image_id = u.image_id AND li.status = 'stored'
        """,
        (ids, reasons),
    )
    return cur.rowcount


def mark_gave_up(conn: psycopg.Connection, listing_image_ids: list[int], attempts: int) -> int:
    """Record listing photos the sweeper stops re-queueing (no prediction after `attempts`)."""
    if not listing_image_ids:
        return 0
    cur = conn.execute(
        """
        UPDATE listing_images SET status = 'failed',
               error = format('match_gave_up: no prediction after %%s attempts', %s::int)
         WHERE id = ANY(%s) AND status = 'stored'
        """,
        (attempts, listing_image_ids),
    )
    if cur.rowcount:
        log.error("gave up matching %d listing photo(s) after %d attempts", cur.rowcount,
                  attempts)
    return cur.rowcount


def record_scored(conn: psycopg.Connection, bundle_id: int, scored: list[int],
                  failed: Mapping[int, str] | None = None) -> None:
    """Note listings scored now under the bundle (and the error of those that failed).

    The sweeper re-queues a listing whose predictions are newer than its `scored_at`, so a
    worker killed between writing predictions and scoring loses nothing. Listings that no
    longer exist are skipped.
    """
    failed = dict(failed or {})
    ids = list(scored) + list(failed)
    if not ids:
        return
    errors = [None] * len(scored) + list(failed.values())
    conn.execute(
        """
        INSERT INTO listing_scores (listing_id, bundle_id, scored_at, attempts, error)
        SELECT u.id, %s, CASE WHEN u.error IS NULL THEN now() END, 0, u.error
          FROM unnest(%s::bigint[], %s::text[]) AS u(id, error)
          JOIN listings l ON l.id = u.id
        ON CONFLICT (listing_id, bundle_id) DO UPDATE SET
            scored_at = coalesce(EXCLUDED.scored_at, listing_scores.scored_at),
            attempts = CASE WHEN EXCLUDED.error IS NULL THEN 0 ELSE listing_scores.attempts END,
            error = EXCLUDED.error
        """,
        (bundle_id, ids, errors),
    )
