"""Scrapy settings for artwatch's crawler (module named in scrapy.cfg).

Defaults are polite: robots.txt obeyed, AutoThrottle on, a small per-domain concurrency,
429 + Retry-After honoured, and a User-Agent that names artwatch with a contact URL.
Per-source overrides arrive as `-s` options from `crawler.runner`.
"""

from artwatch import __version__
from artwatch.browser import chromium_launch_options
from artwatch.settings import get_settings

_settings = get_settings()

BOT_NAME = "artwatch"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

USER_AGENT = f"artwatch/{__version__} (+{_settings.user_agent_contact})"
ROBOTSTXT_OBEY = True

# Politeness.
CONCURRENT_REQUESTS = 32
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.25
RANDOMIZE_DOWNLOAD_DELAY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_TIMEOUT = 30
# A response larger than the biggest photo we would store is cut off, not buffered.
DOWNLOAD_MAXSIZE = _settings.max_image_bytes
DOWNLOAD_WARNSIZE = 0

# Keep-alive connections instead of one new connection per few requests (crawler/handlers.py).
DOWNLOAD_HANDLERS = {
    "http": "crawler.handlers.PooledHTTP11DownloadHandler",
    "https": "crawler.handlers.PooledHTTP11DownloadHandler",
}

# Photos often redirect to a CDN; every hop is a new request, checked by the URL guard.
MEDIA_ALLOW_REDIRECTS = True

# 429 is handled by RetryAfterMiddleware, which waits as the site asks.
RETRY_ENABLED = True
RETRY_TIMES = 2
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408]
ARTWATCH_RETRY_AFTER_MAX = 120.0  # seconds; a longer ask gives up on the request
ARTWATCH_RETRY_AFTER_TIMES = 5

# Listing pages need no session, proxy or HTTP auth; each would cost work on every request.
COOKIES_ENABLED = False
HTTPPROXY_ENABLED = False
REACTOR_THREADPOOL_MAXSIZE = 6  # DNS look-ups; photo checks when ARTWATCH_PHOTO_PROCESSES = 0
ARTWATCH_PHOTO_PROCESSES = 1  # photo decoding processes beside the crawl (0: threads)

DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,
    # Before robots.txt and everything else, so no request to a refused address is ever sent.
    "crawler.middlewares.UrlSafetyMiddleware": 50,
    "crawler.middlewares.RetryAfterMiddleware": 540,
}

# Connection-time re-check of resolved addresses (see crawler/resolver.py).
DNS_RESOLVER = "crawler.resolver.GuardedResolver"

ITEM_PIPELINES = {
    "crawler.pipelines.ValidateItemPipeline": 100,
    "crawler.pipelines.PhotoPipeline": 200,
    "crawler.pipelines.ListingPipeline": 300,
}

EXTENSIONS = {
    "crawler.extensions.CrawlRecorder": 500,
    "crawler.extensions.GcTuning": 510,
}
ARTWATCH_GC_THRESHOLD = 50_000  # gen-0 GC threshold during a crawl (0: Python's default)

# Incremental crawls stop paging once a list page holds this many already-seen lots.
ARTWATCH_INCREMENTAL_STOP_AFTER = 3

# Playwright is installed for the JavaScript spider only (see its custom_settings), with the
# system Chromium; images, fonts and media are never loaded by the browser.
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = chromium_launch_options()
PLAYWRIGHT_MAX_CONTEXTS = 1
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000
PLAYWRIGHT_ABORT_REQUEST = "crawler.middlewares.playwright_abort_request"

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"
