"""Server-rendered auction sites: sale pages -> paginated lot lists -> lot pages.

Lot fields come from the page's schema.org structured data (`crawler.structured`: JSON-LD,
microdata or RDFa), with CSS selectors as the fallback for pages whose structured data is
missing or broken (such a lot's listing records the problem).
"""

from crawler.spiders.generic import GenericSpider


class HtmlLotsSpider(GenericSpider):
    name = "html_lots"
    # Scrapy starts CONCURRENT_ITEMS (default 100) asyncio tasks for EVERY response to work
    # through its output; a lot page yields one item and a list page only requests, so 100
    # tasks per response were ~20% of the crawl's CPU (py-spy). Items of different pages
    # still run in parallel, one set per response.
    custom_settings = {"CONCURRENT_ITEMS": 8}
    default_selectors = {
        "json_ld": True,
        "list": {
            "follow": ["a.sale::attr(href)"],
            "lots": "a.lot-link::attr(href)",
            "next": "a[rel=next]::attr(href)",
        },
        "lot": {
            "external_id": "article.lot::attr(data-lot-id)",
            "title": ".lot-title",
            "description": ".description",
            "estimate_low": ".estimate::attr(data-low)",
            "estimate_high": ".estimate::attr(data-high)",
            "currency": ".estimate::attr(data-currency)",
            "sale_date": "time.sale-date::attr(datetime)",
            "seller": ".seller",
            "lot_number": ".lot-number",
            "photos": ".gallery img",
        },
    }
