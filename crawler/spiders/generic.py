"""The generic spider: a new auction house needs configuration, not code.

Selectors live in the source's settings:

    {"selectors": {
        "list": {"follow": ["a.sale::attr(href)"],       # other list pages (sales, ...)
                 "lots": "a.lot-link::attr(href)",        # links to lot pages, or
                 "cards": "article.lot",                  # lots shown whole on the list page
                 "next": "a[rel=next]::attr(href)"},
        "lot": {"external_id": "article::attr(data-lot-id)", "title": "h1", ...,
                "photos": ".gallery img"},                # <img> elements
        "json_ld": true},                                 # schema.org Product first
     "playwright": false, "ready_selector": "#lots[data-ready]"}

Field selectors are CSS (`::text` / `::attr()` allowed); `estimate` may select one text holding
a range (`Estimate 1.200 – 1.500 €`) instead of `estimate_low` / `estimate_high`; `photos`
selects `<img>` or `<picture>` elements. Structured data (`crawler.structured`: JSON-LD,
microdata, RDFa) wins where present, so a site with good JSON-LD needs only the list
selectors; a lot page without it is still read, and its listing records `no_product`.
"""

from __future__ import annotations

from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.utils.response import get_base_url

from crawler import problems
from crawler.extract import css_value, lot_fields, photo_candidates
from crawler.items import LotItem
from crawler.spiders.base import SourceSpider
from crawler.structured import structured_lot


class GenericSpider(SourceSpider):
    name = "generic"
    default_selectors: dict[str, Any] = {}

    @property
    def selectors(self) -> dict[str, Any]:
        configured = self.settings_json.get("selectors") or {}
        merged = {**self.default_selectors, **configured}
        for part in ("list", "lot"):
            merged[part] = {**self.default_selectors.get(part, {}), **configured.get(part, {})}
        return merged

    @property
    def uses_browser(self) -> bool:
        return bool(self.settings_json.get("playwright", False))

    def _meta(self) -> dict[str, Any]:
        if not self.uses_browser:
            return {}
        from scrapy_playwright.page import PageMethod

        ready = self.settings_json.get("ready_selector")
        methods = [PageMethod("wait_for_selector", ready)] if ready else []
        return {"playwright": True, "playwright_page_methods": methods}

    def list_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse_list, meta=self._meta())

    def lot_requests(self, url: str) -> list[scrapy.Request]:
        if self.selectors["list"].get("cards"):
            # Sites that show lots whole on list pages show a lot page the same way.
            return [scrapy.Request(url, callback=self.parse_list, meta=self._meta(),
                                   dont_filter=True)]
        return [scrapy.Request(url, callback=self.parse_lot, meta=self._meta(), dont_filter=True)]

    def parse_list(self, response: Response) -> Any:
        sel = self.selectors["list"]
        for follow in sel.get("follow", []):
            for href in response.css(follow).getall():
                yield response.follow(href, callback=self.parse_list, meta=self._meta())
        lot_urls = [response.urljoin(h) for h in response.css(sel["lots"]).getall()] \
            if sel.get("lots") else []
        for url in lot_urls:
            if self.mine(url):
                yield scrapy.Request(url, callback=self.parse_lot, meta=self._meta())
        card_ids: list[str] = []
        if sel.get("cards"):
            for card in response.css(sel["cards"]):
                item = self.lot_item(card, response, from_card=True)
                if item is not None:
                    card_ids.append(item["external_id"])
                    if self.mine(item["external_id"]):
                        yield item
            if self.lot_url and not card_ids:
                self.logger.error("no lot found at %s", response.url)
        if self.lot_url:
            return
        if sel.get("next") and self.keep_paging(lot_urls, card_ids):
            for href in response.css(sel["next"]).getall()[:1]:
                yield response.follow(href, callback=self.parse_list, meta=self._meta())

    def parse_lot(self, response: Response) -> Any:
        item = self.lot_item(response.selector, response, from_card=False)
        if item is None:
            self.crawler.stats.inc_value("artwatch/lot_pages_without_lot")
            self.logger.error("no lot found at %s", response.url)
            return
        yield item

    def lot_item(self, scope: Any, response: Response, *, from_card: bool) -> LotItem | None:
        """A lot from structured data (lot pages) and the source's CSS selectors."""
        lot_sel = self.selectors["lot"]
        base_url = get_base_url(response)  # honours <base href>
        found: dict[str, Any] = {}
        structured = None
        if not from_card and self.selectors.get("json_ld", True):
            structured = structured_lot(response.selector, base_url, lambda: response.text)
            found = {k: v for k, v in structured.fields.items() if v not in (None, "")}
        # Selectors only for what structured data left out (each is a CSS query).
        missing = {k: v for k, v in lot_sel.items() if k != "photos" and not found.get(k)}
        for name, value in lot_fields(scope, missing).items():
            if value is not None:
                found[name] = value
        url = found.get("url")
        url = response.urljoin(url) if url else response.url
        photos = photo_candidates(scope.css(lot_sel.get("photos", "img")), base_url,
                                  structured.photos if structured else ())
        if not found.get("title"):
            return None
        data = {"lot_number": found.get("lot_number"), "page": response.url}
        item = LotItem(
            external_id=found.get("external_id") or url,
            url=url,
            title=found.get("title"),
            description=found.get("description"),
            price=found.get("price"),
            currency=found.get("currency"),
            estimate_low=found.get("estimate_low"),
            estimate_high=found.get("estimate_high"),
            estimate=found.get("estimate"),
            sale_date=found.get("sale_date"),
            seller=found.get("seller"),
            lot_number=found.get("lot_number"),
            photo_urls=[candidates[0] for candidates in photos],
            photo_fallbacks={c[0]: c[1:] for c in photos if len(c) > 1},
            data={k: v for k, v in data.items() if v},
        )
        if structured is not None:
            for reason, detail in structured.problems:
                problems.add(item, reason, detail)
            if not structured.found:
                problems.add(item, problems.NO_PRODUCT,
                             "no schema.org Product or artwork in the page's JSON-LD, "
                             "microdata or RDFa; fields from the CSS selectors")
        return item


__all__ = ["GenericSpider", "css_value"]
