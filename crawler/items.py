"""The one item every spider yields: a lot as the site shows it."""

import scrapy


class LotItem(scrapy.Item):
    """A listing; `photo_urls` are absolute, in page order, without duplicates."""

    external_id = scrapy.Field()  # the site's lot id, or the canonical URL
    url = scrapy.Field()
    title = scrapy.Field()
    description = scrapy.Field()
    price = scrapy.Field()
    currency = scrapy.Field()
    estimate_low = scrapy.Field()
    estimate_high = scrapy.Field()
    sale_date = scrapy.Field()  # ISO date string
    seller = scrapy.Field()
    lot_number = scrapy.Field()
    photo_urls = scrapy.Field()
    photo_errors = scrapy.Field()  # {url: reason} for links that cannot even be requested
    data = scrapy.Field()  # anything else read (e.g. raw JSON-LD)
    # Filled by the pipelines.
    listing_id = scrapy.Field()
    listing_new = scrapy.Field()
    photos = scrapy.Field()  # [{url, status, image_id, error}]
    queued_image_ids = scrapy.Field()
