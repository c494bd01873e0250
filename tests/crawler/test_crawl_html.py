"""End to end: crawl the server-rendered house, crawl it again, then after it changed.

One house and one source for the module; the tests run in order and build on each other
(first crawl -> second crawl -> changed house), as a site is crawled over time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from crawler_support import count, drop_queued, queued, register, rows
from dbreset import truncate_all

from artwatch.demo.auction_house import AuctionHouse, HouseConfig, is_good_photo
from artwatch.queue import MATCH_IMAGES
from crawler.runner import run_crawl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def house() -> Iterator[AuctionHouse]:
    truncate_all(os.environ["ARTWATCH_DATABASE_URL"])
    drop_queued(MATCH_IMAGES)
    house = AuctionHouse(HouseConfig(name="meridian", style="html", lots=24, per_page=6))
    house.start()
    register(house)
    yield house
    house.stop()


@pytest.fixture(scope="module")
def first(house: AuctionHouse) -> Any:
    return run_crawl("meridian", trigger="test", full=True, timeout=120)


def photo_sha(house: AuctionHouse, key: str) -> str:
    shows = house._photo_shows[key]
    return hashlib.sha256(house.photos.get(key, shows)).hexdigest()


def test_every_lot_found_once_with_its_fields(house: AuctionHouse, first: Any) -> None:
    assert first.status == "finished", first.error
    listings = {r["external_id"]: r for r in rows("SELECT * FROM listings")}
    lots = house.model.public_lots
    assert set(listings) == {lot.lot_id for lot in lots}
    assert first.stats["artwatch/listings_new"] == len(lots)
    for lot in lots:
        got = listings[lot.lot_id]
        assert got["title"] == lot.title
        if not lot.broken_markup:  # its unclosed tags run the description into what follows
            assert got["description"] == lot.description
        assert got["estimate_low"] == Decimal(lot.estimate_low)
        assert got["estimate_high"] == Decimal(lot.estimate_high)
        assert got["currency"] == lot.currency
        assert got["sale_date"] == lot.sale_date
        assert got["seller"] == lot.seller
        assert got["url"] == house.lot_url(lot)
        assert got["last_crawl_id"] == first.crawl_id


def test_broken_markup_lot_still_read(house: AuctionHouse, first: Any) -> None:
    broken = next(lot for lot in house.model.lots if lot.broken_markup)
    got = rows("SELECT * FROM listings WHERE external_id = %s", broken.lot_id)[0]
    assert got["title"] == broken.title and got["estimate_low"] == Decimal(broken.estimate_low)


def test_every_photo_stored_once_and_relist_linked_twice(house: AuctionHouse, first: Any) -> None:
    expected = {photo_sha(house, k) for k in house.model.photo_keys()}
    stored = {r["sha256"] for r in rows("SELECT sha256 FROM images")}
    assert stored == expected
    relist = next(lot for lot in house.model.public_lots if lot.relist_of)
    pairs = rows(
        "SELECT l.external_id, li.image_id FROM listing_images li "
        "JOIN listings l ON l.id = li.listing_id WHERE l.external_id = ANY(%s) "
        "AND li.status = 'stored'",
        [relist.lot_id, relist.relist_of],
    )
    by_lot: dict[str, set[int]] = {}
    for pair in pairs:
        by_lot.setdefault(pair["external_id"], set()).add(pair["image_id"])
    assert by_lot[relist.lot_id] == by_lot[relist.relist_of] and by_lot[relist.lot_id]


def test_bad_photos_recorded_as_failures(house: AuctionHouse, first: Any) -> None:
    failed = {r["url"]: r["error"] for r in rows(
        "SELECT url, error FROM listing_images WHERE status = 'failed'")}
    bad = {house.photo_url(k) for lot in house.model.public_lots for k in lot.photos
           if not is_good_photo(k)}
    assert set(failed) == bad
    reasons = {url.rsplit("/", 1)[-1]: error for url, error in failed.items()}
    assert reasons["notimage.jpg"].startswith("not_an_image")
    assert reasons["huge.jpg"].startswith("too_many_pixels")
    assert reasons["metadata.jpg"].startswith("unsafe_url:loopback")
    # A dead photo's smaller srcset candidate was tried too, and is named in the error.
    dead = next(e for u, e in reasons.items() if u.startswith("dead"))
    assert dead == "http_404" or (dead.startswith("http_404 (other candidates: ")
                                  and dead.endswith("?w=160: http_404)"))
    # A redirect is a new request: checked again, so a hop to our own machine is refused.
    assert reasons["redirect-unsafe.jpg"].startswith("unsafe_url:loopback")
    assert first.stats["artwatch/unsafe_url_refused"] == 2


def test_redirected_photo_followed_and_stored_once(house: AuctionHouse, first: Any) -> None:
    lot = next(lot for lot in house.model.public_lots
               if any(k.startswith("redirect-") and k != "redirect-unsafe" for k in lot.photos))
    photos = {r["url"]: r for r in rows(
        "SELECT li.* FROM listing_images li JOIN listings l ON l.id = li.listing_id "
        "WHERE l.external_id = %s", lot.lot_id)}
    direct, redirected = house.photo_url(lot.photos[0]), house.photo_url(lot.photos[1])
    assert photos[redirected]["status"] == "stored"
    assert photos[redirected]["image_id"] == photos[direct]["image_id"]


def test_robots_txt_obeyed(house: AuctionHouse, first: Any) -> None:
    assert "/robots.txt" in house.log
    assert not [p for p in house.log if p.startswith("/private/")]
    hidden = house.model.hidden_lots[0]
    assert not rows("SELECT 1 FROM listings WHERE external_id = %s", hidden.lot_id)


def test_429_waited_for_and_retried(house: AuctionHouse, first: Any) -> None:
    assert house.status_counts.get(429, 0) >= 1
    # Each sale's second page answered 429 with Retry-After: 1 on its first hit; each
    # retry came no sooner than the site asked.
    hits: dict[str, list[float]] = {}
    for path, when in zip(house.log, house.log_times, strict=True):
        if path.endswith("page=2"):
            hits.setdefault(path, []).append(when)
    assert hits and all(len(t) == 2 and t[1] - t[0] >= 0.95 for t in hits.values()), hits
    assert first.stats["artwatch/http_429"] >= 1
    assert first.stats.get("artwatch/http_429_gave_up", 0) == 0


def test_new_photos_queued_for_the_matcher(house: AuctionHouse, first: Any) -> None:
    messages = queued(MATCH_IMAGES)
    listing_ids = {r["id"] for r in rows("SELECT id FROM listings")}
    assert {kw["listing_id"] for _, kw in messages} <= listing_ids
    sent = sorted(i for args, _ in messages for i in args[0])
    linked = rows("SELECT DISTINCT listing_id, image_id FROM listing_images "
                  "WHERE status = 'stored' AND queued_at IS NOT NULL")
    assert sent == sorted(r["image_id"] for r in linked)
    assert not rows("SELECT 1 FROM listing_images WHERE status = 'stored' AND queued_at IS NULL")


def test_crawl_row_holds_scrapy_stats(first: Any) -> None:
    crawl = rows("SELECT * FROM crawls WHERE id = %s", first.crawl_id)[0]
    assert crawl["status"] == "finished" and crawl["finished_at"] is not None
    assert crawl["stats"]["item_scraped_count"] == first.stats["item_scraped_count"]
    assert crawl["stats"]["finish_reason"] == "finished"


def test_second_crawl_adds_no_rows_and_updates_last_seen(house: AuctionHouse, first: Any) -> None:
    before = {t: count(t) for t in ("listings", "listing_images", "images")}
    seen_before = {r["id"]: r["last_seen"] for r in rows("SELECT id, last_seen FROM listings")}
    drop_queued(MATCH_IMAGES)
    second = run_crawl("meridian", trigger="test", full=True, timeout=120)
    assert second.status == "finished", second.error
    assert {t: count(t) for t in before} == before
    after = {r["id"]: r for r in rows("SELECT * FROM listings")}
    assert all(after[i]["last_seen"] > seen_before[i] for i in seen_before)
    assert all(r["changes"] == [] for r in after.values())
    assert queued(MATCH_IMAGES) == []  # nothing new to match


def test_changed_lot_keeps_history_and_queues_only_new_photos(house: AuctionHouse) -> None:
    changing = house.model.lots[2]
    old_low = changing.estimate_low
    house.advance()
    changing = house.model.lots[2]
    drop_queued(MATCH_IMAGES)
    third = run_crawl("meridian", trigger="test", full=True, timeout=120)
    assert third.status == "finished", third.error
    listing = rows("SELECT * FROM listings WHERE external_id = %s", changing.lot_id)[0]
    # The JSON-LD offer price is the low estimate, so both changed.
    changes = {c["field"]: c for c in listing["changes"]}
    assert set(changes) == {"estimate_low", "price"}
    assert Decimal(changes["estimate_low"]["old"]) == old_low
    assert listing["estimate_low"] == Decimal(changing.estimate_low)
    messages = queued(MATCH_IMAGES)
    assert [kw["listing_id"] for _, kw in messages] == [listing["id"]]
    new_ids = {r["id"] for r in rows(
        "SELECT i.id FROM images i WHERE i.sha256 = ANY(%s)",
        [photo_sha(house, k) for k in changing.photos])}
    assert set(messages[0][0][0]) == new_ids
