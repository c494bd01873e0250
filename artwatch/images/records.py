"""The `images` rows that mirror the store's files.

One statement records a whole batch of photos (the catalogue importer's batches, a lot's
photos in the crawler), sync or async: callers run `UPSERT_IMAGES` with `images_params()`
and read the ids with `image_ids()`; `record_images()` does all three on a sync connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from artwatch.images.store import StoredImage

# DISTINCT ON: a batch may hold one photo twice (two URLs, same bytes), and one INSERT may
# not touch a row twice; rows go in in the batch's order (ids follow the manifest). DO
# UPDATE (a no-op) rather than DO NOTHING, so that a row another transaction inserted a
# moment ago is returned too.
UPSERT_IMAGES = """
INSERT INTO images (sha256, format, width, height, size_bytes, phash, phash_mirror)
SELECT sha256, format, width, height, size_bytes, phash, phash_mirror FROM (
    SELECT DISTINCT ON (sha256) *
      FROM unnest(%(sha256)s::char(64)[], %(format)s::text[], %(width)s::int[],
                  %(height)s::int[], %(size_bytes)s::bigint[], %(phash)s::bigint[],
                  %(phash_mirror)s::bigint[])
           WITH ORDINALITY AS u(sha256, format, width, height, size_bytes, phash,
                                phash_mirror, ord)
     ORDER BY sha256, ord
) AS batch
ORDER BY ord
ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
RETURNING id, sha256
"""


def images_params(stored: Sequence[StoredImage]) -> dict[str, list[Any]]:
    return {
        "sha256": [s.sha256 for s in stored],
        "format": [s.format for s in stored],
        "width": [s.width for s in stored],
        "height": [s.height for s in stored],
        "size_bytes": [s.size_bytes for s in stored],
        "phash": [s.phash for s in stored],
        "phash_mirror": [s.phash_mirror for s in stored],
    }


def image_ids(rows: Iterable[Any]) -> dict[str, int]:
    """sha256 -> images.id from UPSERT_IMAGES' rows (dict or tuple rows)."""
    out: dict[str, int] = {}
    for row in rows:
        image_id, sha = (row["id"], row["sha256"]) if isinstance(row, dict) else row
        out[sha] = int(image_id)
    return out


def record_images(conn: psycopg.Connection, stored: Sequence[StoredImage]) -> dict[str, int]:
    """Insert each photo's row once (by sha256); return sha256 -> id for all of them."""
    if not stored:
        return {}
    return image_ids(conn.execute(UPSERT_IMAGES, images_params(stored)).fetchall())


def record_image(conn: psycopg.Connection, stored: StoredImage) -> int:
    """Insert the photo's row once (by sha256) and return its id either way."""
    return record_images(conn, [stored])[stored.sha256]
