"""The reading functions on their own: srcset, photo candidates, structured data, prices.

Every kind of input here also goes through a real crawl in test_extraction_pages.py; these
pin the edge cases of each function quickly.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from parsel import Selector

from crawler.extract import photo_candidates
from crawler.prices import lot_prices, parse_amount
from crawler.srcset import Candidate, largest_first, parse_srcset
from crawler.structured import load_json_ld, structured_lot


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.jpg 160w, b.jpg 1280w, c.jpg 640w", ["b.jpg", "c.jpg", "a.jpg"]),
        ("a.jpg 1x, b.jpg 2x", ["b.jpg", "a.jpg"]),
        ("a.jpg, b.jpg 2x", ["b.jpg", "a.jpg"]),  # no descriptor = 1x
        # Commas inside URLs (image CDNs) do not split candidates.
        ("/upload/c_fill,w_1200/v.jpg 1200w, /upload/c_fill,w_600/v.jpg 600w",
         ["/upload/c_fill,w_1200/v.jpg", "/upload/c_fill,w_600/v.jpg"]),
        ("a.jpg 100w,b.jpg 200w", ["b.jpg", "a.jpg"]),  # no space after the comma
        ("data:image/png;base64,iVBO 1x, big.png 2x", ["big.png", "data:image/png;base64,iVBO"]),
        ("a.jpg,", ["a.jpg"]),  # a comma glued to the URL ends the candidate
        ("  \n a.jpg   300w  ,  b.jpg 100w ", ["a.jpg", "b.jpg"]),
        ("a.jpg 0w, b.jpg 100w", ["b.jpg"]),  # invalid candidates are dropped
        ("a.jpg 100w 2x, b.jpg 50w", ["b.jpg"]),
        ("a.jpg 100h, b.jpg 100w 80h", ["b.jpg"]),  # h needs w
        ("a.jpg -1x, b.jpg 1.5x", ["b.jpg"]),
        ("a.jpg foo(1, 2) 10w, b.jpg 5w", ["b.jpg"]),  # parentheses keep their comma
        ("", []),
        (" , , ", []),
    ],
)
def test_srcset_parsed_as_browsers_do(srcset: str, expected: list[str]) -> None:
    assert largest_first(parse_srcset(srcset)) == expected


def test_srcset_candidates_keep_their_descriptors() -> None:
    assert parse_srcset("a.jpg 320w, b.jpg 1.5x") == [
        Candidate("a.jpg", width=320), Candidate("b.jpg", density=1.5)]


def test_photo_candidates_of_pictures_and_lazy_images() -> None:
    html = """<base href="/media/">
    <img src="/one.jpg"><img src="/s.jpg?w=160" srcset="/s.jpg?w=160 160w, /two.jpg 1280w">
    <img src="data:image/gif;base64,R0lG" data-src="three.jpg"><img src="/one.jpg">
    <img src="javascript:void(0)">
    <picture><source type="image/jxl" srcset="/p.jxl 3000w">
      <source type="image/avif" srcset="/p-1600.avif 1600w, /p-800.avif 800w">
      <img src="/p-400.jpg" data-zoom-image="/p-zoom.jpg"></picture>"""
    page = Selector(html)
    base = "http://h.example/media/"
    assert photo_candidates(page.css("img"), base, [["/two.jpg"], ["/four.jpg"]]) == [
        ["http://h.example/one.jpg"],
        ["http://h.example/two.jpg", "http://h.example/s.jpg?w=160"],
        ["http://h.example/media/three.jpg"],
        ["http://h.example/p-zoom.jpg", "http://h.example/p-1600.avif",
         "http://h.example/p-800.avif", "http://h.example/p-400.jpg"],
        ["http://h.example/four.jpg"],
    ]
    # A <picture> selected itself gives the same photo.
    assert photo_candidates(page.css("picture"), base)[0][1] == "http://h.example/p-1600.avif"


def test_json_ld_blocks_read_leniently() -> None:
    assert load_json_ld('{"a": 1};') == [{"a": 1}]
    assert load_json_ld('<!-- {"a": 1} -->') == [{"a": 1}]
    assert load_json_ld('//<![CDATA[\n{"a": "x -->"}\n//]]>') == [{"a": "x -->"}]
    assert load_json_ld('{"a": 1}{"b": 2}') == [{"a": 1}, {"b": 2}]
    assert load_json_ld('{"a": [1, 2,], // note\n "b": "x\ny"}') == [{"a": [1, 2], "b": "x\ny"}]
    with pytest.raises(ValueError):
        load_json_ld('{"@type": "Product", "name": ')


def test_structured_lot_from_a_graph_with_references() -> None:
    html = """<html><head><script type="application/ld+json">
    {"@context": "https://schema.org", "@graph": [
      {"@type": "WebPage", "@id": "#page", "name": "Page", "image": "/page.jpg"},
      {"@type": ["Product", "VisualArtwork"], "@id": "#lot", "name": "Jar",
       "identifier": {"@type": "PropertyValue", "value": "L9"},
       "image": [{"@id": "#img"}, ["/b.jpg"]], "offers": {"@id": "#offer"}},
      {"@type": "ImageObject", "@id": "#img", "thumbnailUrl": "/a-t.jpg", "contentUrl": "/a.jpg"},
      {"@type": "AggregateOffer", "@id": "#offer", "lowPrice": "1.200", "highPrice": 1500,
       "priceCurrency": "EUR", "seller": {"@type": "Organization", "name": "X"}}]}
    </script></head><body></body></html>"""
    found = structured_lot(Selector(html), "http://h.example/lot/9")
    assert found.syntax == "json-ld" and not found.problems
    assert found.fields["external_id"] == "L9" and found.fields["title"] == "Jar"
    assert (found.fields["estimate_low"], found.fields["estimate_high"]) == ("1.200", 1500)
    assert found.fields["seller"] == "X"
    assert found.photos == [["http://h.example/a.jpg", "http://h.example/a-t.jpg"],
                            ["http://h.example/b.jpg"]]


def test_broken_json_ld_is_reported_not_raised() -> None:
    html = '<html><head><script type="application/ld+json">{"@type": "Product", "name": '
    found = structured_lot(Selector(html), "http://h.example/")
    assert not found.found and found.problems[0][0] == "structured_data_unreadable"


@pytest.mark.parametrize(
    ("text", "hint", "low", "high", "currency"),
    [
        ("1.234,56 €", None, "1234.56", "1234.56", "EUR"),
        ("1.200 – 1.500 €", None, "1200", "1500", "EUR"),
        ("12\u00a0340 EUR", None, "12340", "12340", "EUR"),
        ("12\u202f340 EUR", None, "12340", "12340", "EUR"),
        ("$1,234.56", "USD", "1234.56", "1234.56", "USD"),
        ("CHF 1'200.50", None, "1200.50", "1200.50", "CHF"),
        ("€ 1.200,-", None, "1200", "1200", "EUR"),
        ("£1,200–£1,500", None, "1200", "1500", "GBP"),
        ("800 to 1,200 USD", None, "800", "1200", "USD"),
        ("Lot 12: 1.200 €", None, "1200", "1200", "EUR"),
        ("Zuschlag 1.200 € (inkl. 25 % Aufgeld)", None, "1200", "1200", "EUR"),
        ("2.500 bis 3.000 Euro", None, "2500", "3000", "EUR"),
        (1200.5, None, "1200.5", "1200.5", None),
    ],
)
def test_prices_in_every_locale(text, hint, low, high, currency) -> None:
    amount = parse_amount(text, hint)
    assert (amount.low, amount.high, amount.currency, amount.problem) == (
        Decimal(low), Decimal(high), currency, None)


@pytest.mark.parametrize(
    "text",
    ["1.200 or 1.500 €", "1 200 € / 1 500 €", "£ 5k", "1,5 Mio. €", "0.500", "-5",
     "1234.567", "Lot 5", "£1,200 - $1,500"],
)
def test_ambiguous_prices_give_none_and_a_reason(text: str) -> None:
    amount = parse_amount(text)
    assert amount.low is None and amount.high is None and amount.problem


def test_three_decimal_currency_is_ambiguous_but_a_hinted_dollar_is_not() -> None:
    assert parse_amount("1.234", "KWD").problem
    assert parse_amount("$1,200").currency_problem and parse_amount("$1,200").low == 1200
    assert parse_amount("Price on request") == parse_amount(None)


def test_lot_prices_fill_the_estimate_from_a_range() -> None:
    read = lot_prices(price="1.200 – 1.500 €")
    assert (read.price, read.estimate_low, read.estimate_high, read.currency) == (
        None, 1200, 1500, "EUR")
    read = lot_prices(estimate_low="1.200 – 1.500 €", estimate_high="1.200 – 1.500 €")
    assert (read.estimate_low, read.estimate_high) == (1200, 1500)
    read = lot_prices(price="€1,200", currency="GBP")
    assert read.price is None and "GBP" in read.problems[0]
