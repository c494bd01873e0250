"""Single-page-app auction sites: a cursor-paginated JSON API (`/api/lots?cursor=...`).

The public lot URL (`/lots/<id>`) is an empty app shell; a resubmitted lot URL is mapped to
the API's lot endpoint with the source's `lot_url_regex` / `lot_api` settings.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import scrapy
from scrapy.http import Response

from crawler.items import LotItem
from crawler.spiders.base import SourceSpider


def with_query(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items()})
    return urlunsplit(parts._replace(query=urlencode(query)))


class ApiLotsSpider(SourceSpider):
    name = "api_lots"

    @property
    def page_size(self) -> int:
        return int(self.settings_json.get("page_size", 50))

    def list_request(self, url: str) -> scrapy.Request:
        return scrapy.Request(with_query(url, limit=self.page_size), callback=self.parse_page)

    def lot_requests(self, url: str) -> list[scrapy.Request]:
        pattern = self.settings_json.get("lot_url_regex", r"/lots/(?P<id>[^/?#]+)")
        match = re.search(pattern, urlsplit(url).path)
        if not match:
            self.logger.error("%s does not look like a lot URL of %s", url, self.source.name)
            return []
        api = self.settings_json.get("lot_api", "/api/lots/{id}").format(id=match["id"])
        return [scrapy.Request(urljoin(url, api), callback=self.parse_one, dont_filter=True)]

    def _json(self, response: Response) -> Any:
        try:
            return json.loads(response.text)
        except ValueError as exc:
            self.crawler.stats.inc_value("artwatch/bad_json")
            self.logger.error("not JSON at %s: %s", response.url, exc)
            return None

    def parse_page(self, response: Response) -> Any:
        data = self._json(response)
        if not isinstance(data, dict):
            return
        ids = []
        for lot in data.get("lots") or []:
            item = self.lot_item(lot, response)
            if item is not None:
                ids.append(item["external_id"])
                if self.mine(item["external_id"]):
                    yield item
        cursor = data.get("next_cursor")
        if cursor and self.keep_paging(external_ids=ids):
            yield scrapy.Request(with_query(response.url, cursor=cursor), callback=self.parse_page)

    def parse_one(self, response: Response) -> Any:
        data = self._json(response)
        item = self.lot_item(data, response) if isinstance(data, dict) else None
        if item is None:
            self.logger.error("no lot found at %s", response.url)
            return
        yield item

    def lot_item(self, lot: Any, response: Response) -> LotItem | None:
        if not isinstance(lot, dict) or not lot.get("id"):
            self.crawler.stats.inc_value("artwatch/items_invalid")
            return None
        estimate = lot.get("estimate") or {}
        sale = lot.get("sale") or {}
        photos = [p.get("url") if isinstance(p, dict) else p for p in lot.get("photos") or []]
        return LotItem(
            external_id=str(lot["id"]),
            url=response.urljoin(lot.get("url") or f"/lots/{lot['id']}"),
            title=lot.get("title"),
            description=lot.get("description"),
            price=lot.get("price"),
            currency=estimate.get("currency"),
            estimate_low=estimate.get("low"),
            estimate_high=estimate.get("high"),
            sale_date=sale.get("date"),
            seller=lot.get("seller"),
            lot_number=lot.get("number"),
            photo_urls=[response.urljoin(p) for p in photos if isinstance(p, str)],
            data={"sale_id": sale.get("id"), "lot_number": lot.get("number")},
        )
