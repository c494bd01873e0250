"""Listing and listing-photo rows: idempotent upserts that keep what changed.

A lot seen again updates `last_seen` and appends to `changes` only the fields whose value
really changed, so re-crawling the same site adds no rows. A photo row is keyed by
(listing, URL); once stored it stays stored even if a later fetch of it fails, because
a photo we have is evidence and must not be lost.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from artwatch.images.records import UPSERT_IMAGES, image_ids, images_params
from crawler.prices import parse_amount

TRACKED_FIELDS = (
    "url", "title", "description", "price", "currency", "estimate_low", "estimate_high",
    "sale_date", "seller",
)


def _decimal(value: Any) -> Decimal | None:
    """An amount as stored. Spiders' items arrive with Decimals (ValidateItemPipeline read
    them); anything else is read the same way (`crawler.prices`), never guessed at."""
    if isinstance(value, Decimal):
        return value
    return parse_amount(value).low


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def normalise(item: dict[str, Any]) -> dict[str, Any]:
    """The listing columns from an item, typed as PostgreSQL stores them."""
    return {
        "url": item["url"],
        "title": (item.get("title") or "").strip() or None,
        "description": (item.get("description") or "").strip() or None,
        "price": _decimal(item.get("price")),
        "currency": (item.get("currency") or "").strip().upper() or None,
        "estimate_low": _decimal(item.get("estimate_low")),
        "estimate_high": _decimal(item.get("estimate_high")),
        "sale_date": _date(item.get("sale_date")),
        "seller": (item.get("seller") or "").strip() or None,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


async def upsert_listing(
    conn: psycopg.AsyncConnection,
    source_id: int,
    external_id: str,
    fields: dict[str, Any],
    data: dict[str, Any],
    crawl_id: int | None,
    problems: list[dict[str, Any]] | None = None,
) -> tuple[int, bool, list[dict[str, Any]]]:
    """Insert or update one listing; return (id, created, changes recorded now).

    `problems` ([{reason, detail}], crawler.problems) replace the listing's previous ones:
    they describe the lot as this crawl found it. Runs inside the caller's transaction
    (the row lock lasts until its commit).
    """
    cur = await conn.execute(
        "SELECT * FROM listings WHERE source_id = %s AND external_id = %s FOR UPDATE",
        (source_id, external_id),
    )
    old = await cur.fetchone()
    if old is None:
        cur = await conn.execute(
            """
            INSERT INTO listings (source_id, external_id, url, title, description, price,
                currency, estimate_low, estimate_high, sale_date, seller, data,
                last_crawl_id, problems)
            VALUES (%(source_id)s, %(external_id)s, %(url)s, %(title)s, %(description)s,
                %(price)s, %(currency)s, %(estimate_low)s, %(estimate_high)s,
                %(sale_date)s, %(seller)s, %(data)s, %(crawl_id)s, %(problems)s)
            ON CONFLICT (source_id, external_id) DO UPDATE SET last_seen = now()
            RETURNING id, (xmax = 0) AS created
            """,
            {**fields, "source_id": source_id, "external_id": external_id,
             "data": Jsonb(data), "crawl_id": crawl_id, "problems": Jsonb(problems or [])},
        )
        row = await cur.fetchone()
        return int(row["id"]), bool(row["created"]), []
    now = dt.datetime.now(dt.UTC).isoformat()
    changes = [
        {"at": now, "field": name, "old": _jsonable(old[name]), "new": _jsonable(value)}
        for name, value in fields.items()
        if value is not None and old[name] != value
    ]
    assignments = ", ".join(f"{c['field']} = %({c['field']})s" for c in changes)
    await conn.execute(
        f"""
        UPDATE listings SET last_seen = now(), last_crawl_id = %(crawl_id)s,
            data = data || %(data)s, changes = changes || %(changes)s,
            problems = %(problems)s
            {', ' + assignments if assignments else ''}
        WHERE id = %(id)s
        """,
        {**fields, "id": old["id"], "crawl_id": crawl_id, "data": Jsonb(data),
         "changes": Jsonb(changes), "problems": Jsonb(problems or [])},
    )
    return int(old["id"]), False, changes


# One row per (listing, URL); a photo once stored stays stored (evidence is never lost).
UPSERT_PHOTOS = """
INSERT INTO listing_images (listing_id, url, position, image_id, status, error)
SELECT %(listing_id)s, u.url, u.position, u.image_id, u.status, u.error
  FROM unnest(%(url)s::text[], %(position)s::int[], %(image_id)s::bigint[],
              %(status)s::text[], %(error)s::text[])
       AS u(url, position, image_id, status, error)
ON CONFLICT (listing_id, url) DO UPDATE SET
    last_seen = now(),
    position = EXCLUDED.position,
    image_id = coalesce(EXCLUDED.image_id, listing_images.image_id),
    status = CASE WHEN listing_images.status = 'stored' THEN 'stored' ELSE EXCLUDED.status END,
    error = CASE WHEN EXCLUDED.status = 'stored' THEN NULL ELSE EXCLUDED.error END
RETURNING id, url, image_id, status, queued_at
"""


async def record_photos(
    conn: psycopg.AsyncConnection, listing_id: int, photos: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Upsert the listing's photo rows (one statement); return them as stored, in order:
    {id, url, image_id, status, queued_at}. A URL given twice is written once (its first
    position): one INSERT may not touch a row twice."""
    first: dict[str, tuple[int, dict[str, Any]]] = {}
    for position, photo in enumerate(photos):
        first.setdefault(photo["url"], (position, photo))
    if not first:
        return []
    unique = list(first.values())
    cur = await conn.execute(UPSERT_PHOTOS, {
        "listing_id": listing_id,
        "url": [p["url"] for _, p in unique],
        "position": [position for position, _ in unique],
        "image_id": [p.get("image_id") for _, p in unique],
        "status": [p["status"] for _, p in unique],
        "error": [p.get("error") for _, p in unique],
    })
    by_url = {row["url"]: row for row in await cur.fetchall()}
    return [by_url[p["url"]] for p in photos]


@dataclass
class SavedLot:
    """What one lot's transaction wrote."""

    listing_id: int
    created: bool
    changes: list[dict[str, Any]]
    photos: list[dict[str, Any]]  # {url, status, image_id, error}
    queue_image_ids: list[int]  # photos to send to the matcher now
    queue_row_ids: list[int]  # their listing_images rows (already marked queued)


async def save_lot(
    conn: psycopg.AsyncConnection,
    *,
    source_id: int,
    crawl_id: int | None,
    item: dict[str, Any],
    photos: list[dict[str, Any]],
    force: bool = False,
) -> SavedLot:
    """Listing, photos and their queue marks in ONE transaction (one commit per lot).

    Five statements: the listing (select, then insert or update), all its image rows, all
    its photo rows, the queue mark. `photos` are the photo pipeline's results:
    `{url, stored: StoredImage}` or `{url, error}`. Photos are marked queued here, before
    the caller sends the task, so a crash between commit and send leaves them marked; the
    caller clears the mark when the send fails.
    """
    async with conn.transaction():
        listing_id, created, changes = await upsert_listing(
            conn, source_id, item["external_id"], normalise(item), item.get("data") or {},
            crawl_id, item.get("problems") or [],
        )
        stored = [photo["stored"] for photo in photos if photo.get("stored") is not None]
        ids: dict[str, int] = {}
        if stored:
            cur = await conn.execute(UPSERT_IMAGES, images_params(stored))
            ids = image_ids(await cur.fetchall())
        rows_in: list[dict[str, Any]] = []
        for photo in photos:
            if photo.get("stored") is not None:
                rows_in.append({"url": photo["url"], "status": "stored",
                                "image_id": ids[photo["stored"].sha256]})
            else:
                rows_in.append({"url": photo["url"], "status": "failed",
                                "error": str(photo.get("error"))[:500]})
        rows = await record_photos(conn, listing_id, rows_in)
        pending = [r for r in rows if r["status"] == "stored" and r["image_id"] is not None
                   and (r["queued_at"] is None or force)]
        if pending:
            await conn.execute(
                "UPDATE listing_images SET queued_at = now() WHERE id = ANY(%s)",
                ([int(r["id"]) for r in pending],),
            )
    for photo, row in zip(rows_in, rows, strict=True):
        photo["image_id"] = row["image_id"]
    return SavedLot(
        listing_id=listing_id,
        created=created,
        changes=changes,
        photos=rows_in,
        queue_image_ids=list(dict.fromkeys(int(r["image_id"]) for r in pending)),
        queue_row_ids=[int(r["id"]) for r in pending],
    )


async def unmark_queued(conn: psycopg.AsyncConnection, listing_image_ids: list[int]) -> None:
    """Clear the queue mark of photos whose task could not be sent (a later crawl sends)."""
    await conn.execute(
        "UPDATE listing_images SET queued_at = NULL WHERE id = ANY(%s)", (listing_image_ids,)
    )


def seen_urls(conn: psycopg.Connection, source_id: int, urls: list[str]) -> set[str]:
    """Which of these lot URLs the source already has (for incremental crawls)."""
    if not urls:
        return set()
    rows = conn.execute(
        "SELECT url FROM listings WHERE source_id = %s AND url = ANY(%s)", (source_id, urls)
    ).fetchall()
    return {r["url"] for r in rows}


def seen_external_ids(conn: psycopg.Connection, source_id: int, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    rows = conn.execute(
        "SELECT external_id FROM listings WHERE source_id = %s AND external_id = ANY(%s)",
        (source_id, ids),
    ).fetchall()
    return {r["external_id"] for r in rows}
