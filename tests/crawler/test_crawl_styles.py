"""The JSON-API and JavaScript houses, the config-driven generic spider, incremental crawls."""

from __future__ import annotations

import os
import subprocess
from decimal import Decimal

import psutil
import pytest
from crawler_support import register, rows
from dbreset import truncate_all

from artwatch.demo.auction_house import AuctionHouse
from crawler.runner import run_crawl

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _empty_db() -> None:
    truncate_all(os.environ["ARTWATCH_DATABASE_URL"])


def assert_all_lots(house: AuctionHouse, source: str) -> None:
    listings = {r["external_id"]: r for r in rows(
        "SELECT l.* FROM listings l JOIN sources s ON s.id = l.source_id WHERE s.name = %s",
        source)}
    assert set(listings) == {lot.lot_id for lot in house.model.public_lots}
    for lot in house.model.public_lots:
        got = listings[lot.lot_id]
        assert (got["title"], got["estimate_low"], got["currency"], got["sale_date"]) == (
            lot.title, Decimal(lot.estimate_low), lot.currency, lot.sale_date)
    images = rows("SELECT count(DISTINCT image_id) AS n FROM listing_images li "
                  "JOIN listings l ON l.id = li.listing_id JOIN sources s ON s.id = l.source_id "
                  "WHERE s.name = %s AND li.status = 'stored'", source)[0]["n"]
    assert images == len(house.model.photo_keys())


def test_api_house_cursor_pagination(houses) -> None:
    house = houses("lotstream", style="api", lots=22, per_page=5)
    register(house, settings={"page_size": 5})
    result = run_crawl("lotstream", trigger="test", full=True, timeout=120)
    assert result.status == "finished", result.error
    assert_all_lots(house, "lotstream")
    assert result.stats["artwatch/http_429"] == 1  # the second page answered 429 once
    assert sum(1 for p in house.log if p.startswith("/api/lots?")) >= 5


def _chromium_children(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "chrom" in p.name().lower()]
    except psutil.NoSuchProcess:
        return []


def test_js_house_only_through_chromium(houses) -> None:
    house = houses("gavelscript", style="js", lots=22, per_page=8)
    register(house)
    seen_browser: list[int] = []

    def watch(process: subprocess.Popen) -> None:
        seen_browser.append(process.pid)

    result = run_crawl("gavelscript", trigger="test", full=True, timeout=180, on_start=watch)
    assert result.status == "finished", result.error
    assert_all_lots(house, "gavelscript")
    assert result.stats["playwright/page_count/closed"] == result.stats["playwright/page_count"]
    assert result.stats.get("playwright/context_count/max_concurrent", 1) <= 1
    # The data only ever came through the page's own script (the browser fetched it).
    assert any(p.startswith("/data/page/") for p in house.log)
    assert not _chromium_children(seen_browser[0])  # nothing left running


def test_js_crawl_without_chromium_fails_with_the_setting_named(houses, monkeypatch) -> None:
    house = houses("gavelscript", style="js", lots=6, per_page=6)
    register(house)
    monkeypatch.setenv("ARTWATCH_CHROMIUM_PATH", "/nonexistent/chromium")
    result = run_crawl("gavelscript", trigger="test", full=True, timeout=120)
    assert result.status == "failed"
    assert "browser_unavailable" in result.error and "ARTWATCH_CHROMIUM_PATH" in result.error
    assert not any(p.startswith("/catalogue") for p in house.log)  # no page was tried
    crawl = rows("SELECT status, error FROM crawls WHERE id = %s", result.crawl_id)[0]
    assert crawl["status"] == "failed" and "/nonexistent/chromium" in crawl["error"]


def test_js_house_without_browser_finds_nothing(houses) -> None:
    house = houses("gavelscript", style="js", lots=10, per_page=10)
    register(house, name="noscript", spider="generic", settings={"selectors": {
        "list": {"cards": "article.lot", "next": "a.next::attr(href)"},
        "lot": {"external_id": "::attr(data-lot-id)", "title": ".lot-title"}}})
    result = run_crawl("noscript", trigger="test", full=True, timeout=120)
    assert result.status == "finished", result.error
    assert rows("SELECT count(*) AS n FROM listings")[0]["n"] == 0


def test_generic_spider_from_selectors_only(houses) -> None:
    house = houses("meridian", style="html", lots=16, per_page=6)
    register(house, name="configured", spider="generic", settings={"selectors": {
        "json_ld": False,
        "list": {"follow": ["a.sale::attr(href)"], "lots": "a.lot-link::attr(href)",
                 "next": "a[rel=next]::attr(href)"},
        "lot": {"external_id": "article.lot::attr(data-lot-id)", "title": "h1.lot-title",
                "description": ".description", "estimate_low": ".estimate::attr(data-low)",
                "estimate_high": ".estimate::attr(data-high)",
                "currency": ".estimate::attr(data-currency)",
                "sale_date": "time.sale-date::attr(datetime)", "seller": ".seller",
                "photos": ".gallery img"}}})
    result = run_crawl("configured", trigger="test", full=True, timeout=120)
    assert result.status == "finished", result.error
    assert_all_lots(house, "configured")


def test_incremental_crawl_stops_at_seen_lots(houses) -> None:
    house = houses("lotstream", style="api", lots=30, per_page=5, first_hit_429=False,
                   new_lots_per_generation=2)
    register(house, settings={"page_size": 5, "incremental_stop_after": 3})
    assert run_crawl("lotstream", trigger="test", timeout=120).status == "finished"
    house.advance()  # two new lots appear at the top of the list
    pages_before = sum(1 for p in house.log if p.startswith("/api/lots?"))
    result = run_crawl("lotstream", trigger="test", timeout=120)
    pages = sum(1 for p in house.log if p.startswith("/api/lots?")) - pages_before
    assert result.status == "finished", result.error
    assert result.stats["artwatch/incremental_stops"] == 1
    assert result.stats["artwatch/listings_new"] == 2 and pages == 1
    ids = {r["external_id"] for r in rows("SELECT external_id FROM listings")}
    assert ids == {lot.lot_id for lot in house.model.public_lots}


def test_rate_limited_house_crawled_completely_with_back_off(houses) -> None:
    house = houses("lotstream", style="api", lots=14, per_page=4, first_hit_429=False,
                   rate_limit=12)
    register(house, settings={"page_size": 4, "politeness": {
        "download_delay": 0, "autothrottle": False, "concurrency": 8}})
    result = run_crawl("lotstream", trigger="test", full=True, timeout=120)
    assert result.status == "finished", result.error
    assert house.status_counts.get(429, 0) >= 1
    assert result.stats["artwatch/http_429"] == house.status_counts[429]
    assert result.stats.get("artwatch/http_429_gave_up", 0) == 0
    assert_all_lots(house, "lotstream")


def test_crawl_split_over_two_processes(houses) -> None:
    from crawler.runner import merge_stats

    house = houses("meridian", style="html", lots=20, per_page=5, first_hit_429=False)
    register(house)
    result = run_crawl("meridian", trigger="test", full=True, timeout=120, processes=2)
    assert result.status == "finished", result.error
    assert_all_lots(house, "meridian")  # each lot once: the shards split, never overlap
    shards = result.stats["shards"]
    assert sorted(shards) == ["0", "1"] and all(s["item_scraped_count"] for s in shards.values())
    assert result.stats["item_scraped_count"] == len(house.model.public_lots)
    lot_pages = [p for p in house.log if p.startswith("/lot/")]
    assert len(lot_pages) == len(set(lot_pages))  # no lot page fetched twice
    merged = merge_stats([{"item_scraped_count": 2, "elapsed_time_seconds": 3.0,
                           "finish_reason": "finished", "start_time": "2026-01-01T00:00:01",
                           "responses_per_minute": None, "a/b": 1.5},
                          {"item_scraped_count": 5, "elapsed_time_seconds": 4.0,
                           "finish_reason": "shutdown", "start_time": "2026-01-01T00:00:00",
                           "responses_per_minute": 30.0, "a/b": None}])
    assert merged["item_scraped_count"] == 7 and merged["elapsed_time_seconds"] == 4.0
    # A figure one shard left as None (too short a run) does not break the sum.
    assert merged["responses_per_minute"] == 30.0 and merged["a/b"] == 1.5
    assert merged["finish_reason"] == "shutdown" and merged["start_time"].endswith("00:00")
