"""A lot's transaction (crawler.listings.save_lot) on the asyncio connection the crawl uses."""

from __future__ import annotations

import asyncio
import io

import psycopg
from PIL import Image
from psycopg.rows import dict_row

from crawler.listings import save_lot


def _photo(image_store, colour: tuple[int, int, int]):
    out = io.BytesIO()
    Image.new("RGB", (40, 32), colour).save(out, "PNG")
    return image_store.put(out.getvalue())


def test_save_lot_records_changes_photos_and_queue_marks(clean_db, conn, image_store) -> None:
    source_id = conn.execute(
        "INSERT INTO sources (name, spider, start_urls) VALUES ('s', 'html_lots', '{}') "
        "RETURNING id").fetchone()["id"]
    conn.commit()
    red, blue = _photo(image_store, (200, 0, 0)), _photo(image_store, (0, 0, 200))
    item = {"external_id": "L1", "url": "http://h.example/lot/L1", "title": "Jar",
            "estimate_low": "100", "currency": "eur", "data": {"lot_number": "7"}}
    photos = [{"url": "http://h.example/1.jpg", "stored": red},
              {"url": "http://h.example/2.jpg", "stored": red},  # same bytes, second URL
              {"url": "http://h.example/3.jpg", "error": "http_404"},
              {"url": "http://h.example/1.jpg", "stored": red}]  # same URL twice

    async def run():
        async with await psycopg.AsyncConnection.connect(clean_db, row_factory=dict_row) as a:
            first = await save_lot(a, source_id=source_id, crawl_id=None, item=item,
                                   photos=photos)
            again = await save_lot(a, source_id=source_id, crawl_id=None, item=item,
                                   photos=photos)
            changed = await save_lot(
                a, source_id=source_id, crawl_id=None, item={**item, "title": "Jar, bronze"},
                photos=[{"url": "http://h.example/3.jpg", "stored": blue}])
            return first, again, changed

    first, again, changed = asyncio.run(run())
    assert first.created and not again.created and not changed.created
    assert first.listing_id == again.listing_id == changed.listing_id
    # One images row for the shared bytes, sent to the matcher once, on the first save.
    assert first.queue_image_ids == [first.photos[0]["image_id"]]
    assert first.photos[0]["image_id"] == first.photos[1]["image_id"]
    assert [p["status"] for p in first.photos] == ["stored", "stored", "failed", "stored"]
    assert again.queue_image_ids == [] and again.changes == []
    assert [c["field"] for c in changed.changes] == ["title"]
    rows = conn.execute("SELECT url, status, error, position, queued_at IS NOT NULL AS q "
                        "FROM listing_images ORDER BY url").fetchall()
    assert [(r["url"][-5:], r["status"], r["position"]) for r in rows] == [
        ("1.jpg", "stored", 0), ("2.jpg", "stored", 1), ("3.jpg", "stored", 0)]
    assert rows[2]["error"] is None and rows[2]["q"]  # a failed photo later stored and queued
    listing = conn.execute("SELECT title, currency, changes FROM listings").fetchone()
    assert listing["title"] == "Jar, bronze" and listing["currency"] == "EUR"
    assert listing["changes"][0]["old"] == "Jar"
    assert conn.execute("SELECT count(*) AS n FROM images").fetchone()["n"] == 2
