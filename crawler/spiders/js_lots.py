"""Sites that build their lot lists with JavaScript: rendered in Chromium via scrapy-playwright.

A plain HTTP fetch of these pages sees an empty container; the browser runs the page's
script, the spider waits until the list is filled, then reads the lots from the rendered
DOM. Photos are then fetched over plain HTTP by the photo pipeline (the browser is told
not to load images at all). Pages are closed after each response (scrapy-playwright does
that when the page is not handed to the callback) and contexts are bounded in settings.
"""

from typing import Any

from crawler.spiders.generic import GenericSpider

PLAYWRIGHT_HANDLERS = {
    "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
}


class JsLotsSpider(GenericSpider):
    name = "js_lots"
    custom_settings = {"DOWNLOAD_HANDLERS": PLAYWRIGHT_HANDLERS}
    default_selectors = {
        "json_ld": False,
        "list": {"cards": "article.lot", "next": "a.next::attr(href)"},
        "lot": {
            "external_id": "::attr(data-lot-id)",
            "url": "a.lot-link::attr(href)",
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

    @property
    def uses_browser(self) -> bool:
        return True

    def _meta(self) -> dict[str, Any]:
        from scrapy_playwright.page import PageMethod

        # Ready when the script filled the list, or at once when there is no list at all
        # (an error page such as a 429 must come back as a response, not a timeout).
        ready = self.settings_json.get(
            "ready_selector", "#lots[data-ready], body:not(:has(#lots))"
        )
        return {
            "playwright": True,
            "playwright_context": "lots",
            "playwright_page_methods": [PageMethod("wait_for_selector", ready)],
        }
