"""The `images` rows that mirror the store's files."""

from __future__ import annotations

import psycopg

from artwatch.images.store import StoredImage

UPSERT_IMAGE = """
INSERT INTO images (sha256, format, width, height, size_bytes, phash)
VALUES (%(sha256)s, %(format)s, %(width)s, %(height)s, %(size_bytes)s, %(phash)s)
ON CONFLICT (sha256) DO UPDATE SET sha256 = EXCLUDED.sha256
RETURNING id
"""


def image_params(stored: StoredImage) -> dict[str, object]:
    return {
        "sha256": stored.sha256,
        "format": stored.format,
        "width": stored.width,
        "height": stored.height,
        "size_bytes": stored.size_bytes,
        "phash": stored.phash,
    }


def record_image(conn: psycopg.Connection, stored: StoredImage) -> int:
    """Insert the photo's row once (by sha256) and return its id either way."""
    row = conn.execute(UPSERT_IMAGE, image_params(stored)).fetchone()
    assert row is not None
    return int(row["id"] if isinstance(row, dict) else row[0])
