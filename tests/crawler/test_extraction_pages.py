"""Lot pages as real sites write them, through the real crawl path (issue 12).

Each page in tests/crawler/lot_pages/ is one input (the comment at its top says which);
a loopback site serves them and their photos, and one `scrapy crawl generic` of a source
configured as a new user would (`json_ld` on, CSS selectors for the rest) reads them all.
Every case asserts the listing's fields, the bytes of every stored photo (sha256 of what
the site served at the URL that should have been chosen), and the problems recorded on the
listing; the crawl's stats must count each kind of problem. `artwatch submit URL` is
checked on two of the pages.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from crawler_support import FAST, drop_queued, rows
from dbreset import truncate_all
from fixture_site import PAGES, FixtureSite
from typer.testing import CliRunner

from artwatch.queue import MATCH_IMAGES
from crawler.runner import run_crawl

pytestmark = pytest.mark.slow

SOURCE = "fixtures"
SELECTORS = {
    "json_ld": True,
    "list": {"lots": "a.case::attr(href)"},
    "lot": {"external_id": "article::attr(data-id)", "title": "article h1",
            "price": ".price", "estimate_low": ".estimate .low",
            "estimate_high": ".estimate .high", "estimate": ".estimate-range",
            "currency": ".currency", "photos": ".gallery img"},
}

# Every photo the site has (path -> format); any other URL answers 404.
PHOTOS = {
    **{f"/media/{name}.jpg": "JPEG" for name in (
        "graph", "charset", "semicolon", "broken", "content", "base-ld", "base-img",
        "inkstone", "scroll", "earring", "earring-thumb", "censer", "panel-oil", "guardian",
        "leaf", "mirror", "stoneware", "teabowl", "brushpot", "dagger", "cicada")},
    **{f"/photos/{name}.jpg": "JPEG" for name in (
        "ewer", "jar", "panel", "bell", "head", "mask", "plain", "headdress", "clock")},
    "/upload/c_fill,w_1200/vase.jpg": "JPEG", "/upload/c_fill,w_600/vase.jpg": "JPEG",
    "/upload/c_fill,w_300/vase.jpg": "JPEG",
    "/photos/flask.avif": "AVIF", "/photos/cup.jpg": "AVIF", "/photos/lamp.heic": "HEIF",
    "/pic/urn-1600.avif": "AVIF", "/pic/urn-800.avif": "AVIF", "/pic/urn-1600.jpg": "JPEG",
    "/pic/urn-400.jpg": "JPEG",
    "/lazy/bowl-400.jpg": "JPEG", "/lazy/bowl-1000.jpg": "JPEG",
    "/lazy/bronze-mask.jpg": "JPEG",
    "/cdn/helmet-1000.jpg": "JPEG", "/cdn/helmet-500.jpg": "JPEG",
}


@dataclass(frozen=True)
class Case:
    """What the listing of one page must hold."""

    title: str
    photos: tuple[str, ...]  # paths whose bytes must be stored, as the listing's photos
    external_id: str | None = None  # default: the page's name (its structured id)
    price: str | None = None
    currency: str | None = None
    low: str | None = None
    high: str | None = None
    problems: frozenset[str] = frozenset()
    failed: tuple[str, ...] = ()  # photo paths recorded as failed
    formats: dict[str, str] = field(default_factory=dict)  # path -> images.format


CASES = {
    # The eight inputs of the issue.
    "graph": Case("Bronze ritual vessel", ("/media/graph.jpg",), price="2400", currency="EUR"),
    "charset-type": Case("Jade disc", ("/media/charset.jpg",), price="950", currency="GBP"),
    "stray-semicolon": Case("Lacquer box", ("/media/semicolon.jpg",), price="1200",
                            currency="EUR"),
    "broken-block": Case("Celadon bowl", ("/media/broken.jpg",), price="800", currency="EUR",
                         problems=frozenset({"structured_data_unreadable"})),
    "imageobject-contenturl": Case("Ivory figure", ("/media/content.jpg",)),
    "srcset-commas": Case("Famille rose vase", ("/upload/c_fill,w_1200/vase.jpg",)),
    "base-href": Case("Gilt mirror", ("/media/base-img.jpg", "/media/base-ld.jpg")),
    "price-eu": Case("Silver ewer", ("/photos/ewer.jpg",), price="1234.56", currency="EUR"),
    "estimate-spans": Case("Pottery jar", ("/photos/jar.jpg",), low="1200", high="1500",
                           currency="EUR"),
    "estimate-range": Case("Carved panel", ("/photos/panel.jpg",), low="1200", high="1500",
                           currency="EUR"),
    "price-nbsp": Case("Bronze bell", ("/photos/bell.jpg",), price="12340", currency="EUR"),
    "price-nnbsp": Case("Stone head", ("/photos/head.jpg",), price="12340", currency="EUR"),
    "avif": Case("Glass flask", ("/photos/flask.avif",),
                 formats={"/photos/flask.avif": "AVIF"}),
    "avif-as-jpg": Case("Enamel cup", ("/photos/cup.jpg",), formats={"/photos/cup.jpg": "AVIF"}),
    # The variants each kind implies.
    "heif": Case("Terracotta lamp", ("/photos/lamp.heic",), formats={"/photos/lamp.heic": "HEIF"}),
    "price-ambiguous": Case("Wooden mask", ("/photos/mask.jpg",),
                            problems=frozenset({"price_unparsed"})),
    "offers-list": Case("Ink stone", ("/media/inkstone.jpg",), price="700", currency="GBP"),
    "aggregate-offer": Case("Silk scroll", ("/media/scroll.jpg",), low="3000", high="5000",
                            currency="USD"),
    "picture": Case("Marble urn", ("/pic/urn-1600.avif",), formats={"/pic/urn-1600.avif": "AVIF"}),
    "lazy-data-srcset": Case("Porcelain bowl", ("/lazy/bowl-1000.jpg",)),
    "lazy-data-original": Case("Bronze mask", ("/lazy/bronze-mask.jpg",)),
    "fallback-404": Case("Iron helmet", ("/cdn/helmet-1000.jpg",)),
    "imageobject-url-404": Case("Gold earring", ("/media/earring.jpg",)),
    "product-subtype": Case("Cloisonné censer", ("/media/censer.jpg",), price="6500",
                            currency="CHF"),
    "multi-typed": Case("Oil on panel", ("/media/panel-oil.jpg",), price="15000",
                        currency="EUR"),
    "visual-artwork": Case("Temple guardian", ("/media/guardian.jpg",), low="20000",
                           high="30000", currency="EUR"),
    "creative-work-offer": Case("Illuminated leaf", ("/media/leaf.jpg",), price="4500",
                                currency="EUR"),
    "microdata": Case("Bronze mirror", ("/media/mirror.jpg",), price="1234.56", currency="EUR"),
    "rdfa": Case("Stoneware jar", ("/media/stoneware.jpg",), price="2500.00", currency="USD"),
    "nested-mainentity": Case("Tea bowl", ("/media/teabowl.jpg",), price="2200",
                              currency="JPY"),
    "id-references": Case("Brush pot", ("/media/brushpot.jpg",), price="480", currency="GBP"),
    "no-photo": Case("Lost lot", (), price="100", currency="EUR",
                     problems=frozenset({"no_photo"})),
    "no-product": Case("Plain lot", ("/photos/plain.jpg",), external_id="page-no-product",
                       price="350", currency="EUR", problems=frozenset({"no_product"})),
    "all-photos-404": Case("Vanished lot", (), failed=("/gone/a.jpg", "/gone/b.jpg"),
                           problems=frozenset({"no_photo"})),
    "jsonld-price-string-eu": Case("Bronze dagger", ("/media/dagger.jpg",), price="1234.56",
                                   currency="EUR"),
    "price-usd": Case("Feather headdress", ("/photos/headdress.jpg",), price="1234.56",
                      currency="USD"),
    "price-chf": Case("Clock", ("/photos/clock.jpg",), price="1200.50", currency="CHF"),
    "comment-wrapped": Case("Jade cicada", ("/media/cicada.jpg",)),
}


def test_every_fixture_page_has_a_case() -> None:
    assert set(CASES) == {p.stem for p in PAGES.glob("*.html")} and len(CASES) >= 25


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    truncate_all(os.environ["ARTWATCH_DATABASE_URL"])
    drop_queued(MATCH_IMAGES)
    from artwatch.db import connect
    from crawler.sources import add_source

    site = FixtureSite(PHOTOS).start()
    with connect(autocommit=True) as conn:
        add_source(conn, SOURCE, "generic", [site.url("/")], allow_private=True,
                   settings={**FAST, "selectors": SELECTORS})
    yield site
    site.stop()
    drop_queued(MATCH_IMAGES)


@pytest.fixture(scope="module")
def crawl(site: FixtureSite) -> Any:
    result = run_crawl(SOURCE, trigger="test", full=True, timeout=180)
    assert result.status == "finished", result.error
    return result


def _listing(name: str) -> dict[str, Any]:
    case = CASES[name]
    found = rows("SELECT * FROM listings WHERE external_id = %s", case.external_id or name)
    assert found, f"no listing {case.external_id or name}"
    return found[0]


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lot_page(site: FixtureSite, crawl: Any, name: str) -> None:
    case = CASES[name]
    listing = _listing(name)
    assert listing["url"] == site.url(f"/lot/{name}")
    assert listing["title"] == case.title
    assert (listing["price"], listing["currency"]) == (_dec(case.price), case.currency)
    assert (listing["estimate_low"], listing["estimate_high"]) == (_dec(case.low), _dec(case.high))
    assert {p["reason"] for p in listing["problems"]} == case.problems, listing["problems"]
    photos = rows(
        "SELECT li.url, li.status, li.error, i.sha256, i.format FROM listing_images li "
        "LEFT JOIN images i ON i.id = li.image_id WHERE li.listing_id = %s "
        "ORDER BY li.position", listing["id"])
    stored = [p for p in photos if p["status"] == "stored"]
    # The right candidate was chosen, and its bytes are what the store holds.
    assert [p["url"] for p in stored] == [site.url(path) for path in case.photos]
    assert [p["sha256"] for p in stored] == [site.sha256(path) for path in case.photos]
    for path, fmt in case.formats.items():
        assert next(p["format"] for p in stored if p["url"] == site.url(path)) == fmt
    failed = [p for p in photos if p["status"] == "failed"]
    assert [p["url"] for p in failed] == [site.url(path) for path in case.failed]
    assert all(p["error"].startswith("http_404") for p in failed)


def test_crawl_counts_every_problem_and_logs_it_with_the_url(site: FixtureSite,
                                                              crawl: Any) -> None:
    stats = crawl.stats
    assert stats["item_scraped_count"] == len(CASES)
    expected = Counter(reason for case in CASES.values() for reason in case.problems)
    counted = {key.rsplit("/", 1)[-1]: n for key, n in stats.items()
               if key.startswith("artwatch/lot_problems/")}
    assert counted == dict(expected)
    assert stats["artwatch/lots_with_problems"] == sum(1 for c in CASES.values() if c.problems)
    # The crawls row holds the same counts (what `artwatch crawl run` prints from).
    row = rows("SELECT stats FROM crawls WHERE id = %s", crawl.crawl_id)[0]["stats"]
    assert row["artwatch/lot_problems/no_photo"] == expected["no_photo"]
    log = crawl.log_path.read_text()
    for name, case in CASES.items():
        for reason in case.problems:
            assert f"lot {site.url('/lot/' + name)}: {reason}" in log
    # Fallbacks: a gone srcset size and an ImageObject url that 404s.
    assert stats["artwatch/photo_fallbacks_used"] == 2
    assert "/cdn/helmet-2000.jpg" in site.log and "/media/missing.jpg" in site.log
    # The ImageObject's thumbnail was never needed; the <picture>'s JPEG XL never tried.
    assert "/media/earring-thumb.jpg" not in site.log and "/pic/urn-3000.jxl" not in site.log


def test_a_second_crawl_keeps_the_lots_and_their_problems(site: FixtureSite,
                                                          crawl: Any) -> None:
    from artwatch.cli import app

    before = {r["external_id"]: r["problems"] for r in rows("SELECT * FROM listings")}
    again = CliRunner().invoke(app, ["crawl", "run", SOURCE, "--full"])
    assert again.exit_code == 0, again.output
    with_problems = sum(1 for c in CASES.values() if c.problems)
    assert f"lots with problems: {with_problems}" in again.output
    assert "no_photo 2" in again.output and "price_unparsed 1" in again.output
    after = {r["external_id"]: r for r in rows("SELECT * FROM listings")}
    assert {k: r["problems"] for k, r in after.items()} == before
    assert all(r["changes"] == [] for r in after.values())


def test_submit_shows_the_lot_its_photos_and_its_problems(site: FixtureSite,
                                                          crawl: Any) -> None:
    from artwatch.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["submit", site.url("/lot/graph"), "--wait", "0"])
    assert done.exit_code == 0, done.output
    assert "stored" in done.output and "problem" not in done.output
    listing = _listing("graph")
    assert f"listing {listing['id']} crawled" in done.output
    lost = runner.invoke(app, ["submit", site.url("/lot/no-photo"), "--wait", "0"])
    assert lost.exit_code == 0, lost.output
    assert "problem: no_photo" in lost.output and "no photo link" in lost.output
