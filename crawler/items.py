"""The one item every spider yields: a lot as the site shows it."""

import scrapy


class LotItem(scrapy.Item):
    """A listing; `photo_urls` are absolute, in page order, without duplicates.

    Prices and estimates may arrive as the page wrote them (text or number);
    ValidateItemPipeline turns them into Decimals and an ISO currency code.
    """

    external_id = scrapy.Field()  # the site's lot id, or the canonical URL
    url = scrapy.Field()
    title = scrapy.Field()
    description = scrapy.Field()
    price = scrapy.Field()
    currency = scrapy.Field()
    estimate_low = scrapy.Field()
    estimate_high = scrapy.Field()
    estimate = scrapy.Field()  # an estimate range as one text, split by ValidateItemPipeline
    sale_date = scrapy.Field()  # ISO date string
    seller = scrapy.Field()
    lot_number = scrapy.Field()
    photo_urls = scrapy.Field()
    # {photo URL: [next candidates, best first]}: tried in turn when a photo's URL is missing
    # (404) or is not a usable image (srcset sizes, ImageObject contentUrl/thumbnailUrl).
    photo_fallbacks = scrapy.Field()
    photo_errors = scrapy.Field()  # {url: reason} for links that cannot even be requested
    problems = scrapy.Field()  # [{reason, detail}] (crawler.problems), stored on the listing
    data = scrapy.Field()  # anything else read (e.g. raw JSON-LD)
    # Filled by the pipelines.
    listing_id = scrapy.Field()
    listing_new = scrapy.Field()
    photos = scrapy.Field()  # [{url, status, image_id, error}]
    queued_image_ids = scrapy.Field()
