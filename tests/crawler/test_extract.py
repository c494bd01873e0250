"""Field and photo extraction: srcset, lazy images, JSON-LD via extruct, broken markup."""

from __future__ import annotations

from parsel import Selector

from crawler.extract import largest_from_srcset, photo_urls, structured_product


def test_srcset_largest_and_lazy_images() -> None:
    assert largest_from_srcset("a.jpg 160w, b.jpg 1280w, c.jpg 640w") == "b.jpg"
    assert largest_from_srcset("a.jpg 1x, b.jpg 2x") == "b.jpg"
    html = (
        '<img src="/one.jpg"><img src="/s.jpg?w=160" srcset="/s.jpg?w=160 160w, /two.jpg 1280w">'
        '<img src="data:image/gif;base64,R0lG" data-src="/three.jpg"><img src="/one.jpg">'
        '<img src="javascript:void(0)">'
    )
    urls = photo_urls(Selector(html).css("img"), "http://h.example/lot/1")
    assert urls == [
        "http://h.example/one.jpg", "http://h.example/two.jpg", "http://h.example/three.jpg"
    ]


def test_json_ld_product_offer() -> None:
    html = """<html><head><script type="application/ld+json">
    {"@context": "https://schema.org", "@type": "Product", "sku": "L1", "name": "Jar",
     "image": ["/p/1.jpg"], "offers": {"@type": "Offer", "price": 100, "priceCurrency": "EUR",
     "availabilityStarts": "2026-12-01", "seller": {"@type": "Organization", "name": "X"},
     "priceSpecification": {"minPrice": 100, "maxPrice": 200}}}
    </script></head><body></body></html>"""
    found = structured_product(html, "http://h.example/lot/L1")
    assert found["external_id"] == "L1" and found["title"] == "Jar"
    assert (found["estimate_low"], found["estimate_high"], found["currency"]) == (100, 200, "EUR")
    assert found["sale_date"] == "2026-12-01" and found["seller"] == "X"
    assert found["photo_urls"] == ["http://h.example/p/1.jpg"]
    # The spider passes the page's Selector (no second parse): same answer.
    assert structured_product(Selector(html), "http://h.example/lot/L1") == found


def test_microdata_product_from_a_parsed_page() -> None:
    html = """<html><body><div itemscope itemtype="https://schema.org/Product">
    <span itemprop="sku">M7</span><h1 itemprop="name">Bronze mirror</h1>
    <div itemprop="offers" itemscope itemtype="https://schema.org/Offer">
    <meta itemprop="priceCurrency" content="USD"><span itemprop="price">900</span></div>
    </div></body></html>"""
    found = structured_product(Selector(html), "http://h.example/lot/M7")
    assert (found["external_id"], found["title"]) == ("M7", "Bronze mirror")
    assert (found["price"], found["currency"]) == ("900", "USD")
    assert structured_product(html, "http://h.example/lot/M7") == found


def test_broken_json_ld_gives_nothing_not_an_error() -> None:
    html = '<html><head><script type="application/ld+json">{"@type": "Product", "name": '
    assert structured_product(html, "http://h.example/") == {}
