"""Helpers of the recognition tests: photos of the generated catalogue, listings as the
crawler stores them, the matcher's decision on them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from PIL import Image

from artwatch.demo import object_spec
from artwatch.demo.distractors import render_with_mask
from artwatch.demo.marketplace import simulate_listing
from artwatch.images.records import record_image

REPO = Path(__file__).resolve().parents[2]
SEED = 3  # the catalogue's generator seed (conftest)
OBJECTS = 12  # generated objects; the last is catalogued after training (conftest)


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def view(index: int, q: int, listing: bool = True) -> Image.Image:
    """A new photo of catalogue object `index` from an unseen viewpoint (listing-style)."""
    rng = np.random.default_rng([SEED, 777, index, q])
    img, mask = render_with_mask(object_spec(SEED, index), rng, size=256)
    return simulate_listing([img], rng, masks=[mask]).image if listing else img


def listing(conn: psycopg.Connection, served: dict[str, Any],
            photos: list[bytes | None]) -> tuple[int, list[int]]:
    """A listing with stored photos (None: a photo the crawler recorded as failed)."""
    served["n"] += 1
    key = f"lot-{served['n']}"
    listing_id = conn.execute(
        "INSERT INTO listings (source_id, external_id, url) VALUES (%s, %s, %s) RETURNING id",
        (served["source"], key, f"http://127.0.0.1/{key}")).fetchone()["id"]
    ids = []
    for pos, data in enumerate(photos):
        if data is None:
            conn.execute(
                "INSERT INTO listing_images (listing_id, url, position, status, error) "
                "VALUES (%s, %s, %s, 'failed', 'http_404')", (listing_id, f"u{pos}", pos))
            continue
        image_id = record_image(conn, served["store"].put(data))
        conn.execute(
            "INSERT INTO listing_images (listing_id, url, position, image_id, status) "
            "VALUES (%s, %s, %s, %s, 'stored') ON CONFLICT DO NOTHING",
            (listing_id, f"u{pos}", pos, image_id))
        ids.append(image_id)
    return listing_id, ids


def decide(conn: psycopg.Connection, rec: Any, listing_id: int, ids: list[int]) -> dict:
    """Run the matcher's batch handler on one listing; its decision row."""
    rec.handle(conn, [(ids, listing_id, "live")])
    return conn.execute("SELECT * FROM listing_decisions WHERE listing_id = %s",
                        (listing_id,)).fetchone()


def matches(conn: psycopg.Connection, listing_id: int) -> list[dict]:
    return conn.execute(
        "SELECT m.*, o.accession FROM matches m JOIN objects o ON o.id = m.object_id "
        "WHERE listing_id = %s ORDER BY rank", (listing_id,)).fetchall()
