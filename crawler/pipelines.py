"""Item pipelines: validate -> fetch photos into the store -> record listing + photos -> queue.

Photos are fetched by a Scrapy media pipeline, so they share the crawl's politeness,
robots.txt, the URL guard and Retry-After, and one URL reached from several lots in a crawl
is downloaded once. Each photo goes into the content-addressed image store (one file and
one `images` row per sha256, however many listings show it), its `listing_images` row
records `stored` or `failed` with the reason, and photos not yet sent to the matcher go out
as one `matcher.match_images` task per listing carrying image ids.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.http import Response
from scrapy.pipelines.media import MediaPipeline
from twisted.python.failure import Failure

from artwatch.db.retry import async_db_retrying
from artwatch.images import ImageRejected, ImageStore, StoredImage
from artwatch.queue import MATCH_IMAGES
from artwatch.settings import get_settings
from artwatch.urlsafety import is_web_url
from crawler import problems
from crawler.items import LotItem
from crawler.listings import SavedLot, save_lot, unmark_queued
from crawler.photostore import PhotoWorkers
from crawler.prices import lot_prices

logger = logging.getLogger(__name__)
BROKER_PAUSE_S = 30.0  # after a failed send to the matcher queue, do not try again for this long


class PhotoFailed(Exception):
    """A photo that could not be stored; the message is recorded on its row."""


# Failures after which a photo's next candidate may do better: the URL is missing or
# answered with something other than a usable image. Not: limits (too large, too many
# pixels), refusals (unsafe URL, robots.txt) or a crashed decoder - a smaller size of a
# hostile or refused photo is still that photo.
_NEXT_CANDIDATE_AFTER = ("http_", "not_an_image", "format_not_allowed", "corrupt", "empty",
                         "download_error")


def _worth_another_candidate(error: str) -> bool:
    return error.startswith(_NEXT_CANDIDATE_AFTER)


def _spider(crawler: Crawler) -> Any:
    assert crawler.spider is not None
    return crawler.spider


def _refused_photo_key(url: str) -> str:
    """How a refused (non-http) photo URL is recorded: at most ~200 characters, still unique
    (a `data:` URL can be megabytes)."""
    if len(url) <= 200:
        return url
    return f"{url[:160]}…[{len(url)} chars, sha256 {hashlib.sha256(url.encode()).hexdigest()[:16]}]"


class ValidateItemPipeline:
    """Drop (and count) items without the fields a listing cannot exist without; read prices.

    Only http(s) URLs are kept as a lot's URL (the digest links to it); a lot whose URL is
    anything else is dropped and counted. A photo URL that is not http(s) (`data:`,
    `javascript:`) is not requested: it is recorded as a failed photo with the reason (its
    next http(s) candidate, if any, takes its place). Every spider's prices pass through here
    (`crawler.prices`), so `1.234,56 €` means the same from a CSS selector, a JSON-LD string
    or an API. A price that cannot be read unambiguously is stored empty and reported
    (`price_unparsed`), never stored wrong.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidateItemPipeline:
        return cls(crawler)

    def process_item(self, item: LotItem) -> LotItem:
        missing = [f for f in ("external_id", "url", "title") if not item.get(f)]
        url = str(item.get("url") or "")
        if url and not is_web_url(url):
            missing.append("url (not an http(s) URL)")
        if missing:
            self.stats.inc_value("artwatch/items_invalid")
            raise DropItem(f"invalid lot {url or '?'}: missing or bad {', '.join(missing)}")
        self._photos(item)
        self._prices(item)
        item["external_id"] = str(item["external_id"]).strip()
        item.setdefault("data", {})
        item.setdefault("problems", [])
        return item

    def _photos(self, item: LotItem) -> None:
        """Keep the photo links Scrapy can request; a refused or malformed one is recorded,
        and its next well-formed http(s) candidate (if any) takes its place."""
        photos: list[str] = []
        fallbacks: dict[str, list[str]] = {}
        bad: dict[str, str] = {}
        given = item.get("photo_fallbacks") or {}
        for photo in item.get("photo_urls") or []:
            if not isinstance(photo, str) or photo in photos or photo in bad:
                continue
            good: list[str] = []
            for candidate in [photo, *given.get(photo, [])]:
                if not isinstance(candidate, str):
                    continue
                if not is_web_url(candidate):
                    scheme = (candidate.partition(":")[0].strip().lower()[:20]
                              if ":" in candidate else "")
                    self.stats.inc_value("artwatch/photo_url_refused")
                    bad.setdefault(_refused_photo_key(photo), (
                        "malformed_url: not an absolute http(s) URL with a host"
                        if scheme in ("http", "https") else
                        f"not_http: only http(s) photo URLs are fetched, not "
                        f"{scheme or 'relative'}"
                    ))
                    continue
                try:
                    Request(candidate)
                except ValueError as exc:  # a link Scrapy cannot even parse: not fetched
                    bad.setdefault(_refused_photo_key(photo), f"malformed_url: {exc}")
                    continue
                good.append(candidate)
            if good:
                bad.pop(_refused_photo_key(photo), None)
                if good[0] not in photos:
                    photos.append(good[0])
                    if len(good) > 1:
                        fallbacks[good[0]] = good[1:]
        item["photo_urls"] = photos
        item["photo_fallbacks"] = fallbacks
        item["photo_errors"] = bad
        if not photos and not bad:
            problems.add(item, problems.NO_PHOTO, "no photo link found on the page")

    @staticmethod
    def _prices(item: LotItem) -> None:
        read = lot_prices(
            price=item.get("price"), estimate_low=item.get("estimate_low"),
            estimate_high=item.get("estimate_high"), estimate=item.get("estimate"),
            currency=item.get("currency"),
        )
        item["price"] = read.price
        item["estimate_low"] = read.estimate_low
        item["estimate_high"] = read.estimate_high
        item["currency"] = read.currency
        item.pop("estimate", None)
        if read.problems:
            problems.add(item, problems.PRICE_UNPARSED, "; ".join(read.problems))
        if read.currency_problems:
            problems.add(item, problems.CURRENCY_UNKNOWN, "; ".join(read.currency_problems))


class PhotoPipeline(MediaPipeline):
    """Download each lot's photos into the image store and hand new ones to the matcher."""

    LOG_FAILED_RESULTS = False  # failures are expected input; each is recorded on its row

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler=crawler)
        self.stats = crawler.stats
        self.store = ImageStore.from_settings()
        self.processes = crawler.settings.getint("ARTWATCH_PHOTO_PROCESSES", 1)
        self.workers: PhotoWorkers | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PhotoPipeline:
        return cls(crawler)

    def open_spider(self, spider: Any = None) -> None:
        super().open_spider()
        self.workers = PhotoWorkers(self.store, self.processes)
        self.workers.start()  # worker start-up overlaps the first list pages

    async def close_spider(self, spider: Any = None) -> None:
        if self.workers is not None:
            await self.workers.aclose()

    # MediaPipeline interface ----------------------------------------------------------------

    def get_media_requests(self, item: LotItem, info: Any) -> list[Request]:
        fallbacks = item.get("photo_fallbacks") or {}
        return [Request(url, meta={"artwatch_photo": True,
                                   "artwatch_fallbacks": fallbacks.get(url, [])})
                for url in item["photo_urls"]]

    def media_to_download(self, request: Request, info: Any, *, item: Any = None) -> None:
        return None  # always fetch: a site may change a photo under the same URL

    async def media_downloaded(
        self, response: Response, request: Request, info: Any, *, item: Any = None
    ) -> dict[str, Any]:
        """Store the photo, or try its next candidate when this one is missing or unusable.

        A bad answer is an expected outcome, returned (not raised) so it is recorded
        quietly. The result's `url` is the candidate whose bytes were stored; when every
        candidate failed, the first one's, with each candidate's failure in `error`.
        """
        result = await self._store(response, request.url)
        tried: list[str] = []
        for url in request.meta.get("artwatch_fallbacks") or []:
            if "error" not in result or not _worth_another_candidate(result["error"]):
                break
            tried.append(f"{result['url']}: {result['error']}")
            try:
                fallback = Request(url, meta={"artwatch_photo": True})
                result = await self._store(
                    await self.crawler.engine.download_async(fallback), url)
            except Exception as exc:  # refused or unreachable: recorded, next candidate
                result = {"url": url, "error": self._failure_reason(exc)}
        if tried and "stored" in result:
            self.stats.inc_value("artwatch/photo_fallbacks_used")
            logger.info("photo %s stored from its candidate %s (%s)", request.url,
                        result["url"], "; ".join(tried))
        elif tried:
            first = tried[0].split(": ", 1)[1]
            others = "; ".join([*tried[1:], f"{result['url']}: {result['error']}"])
            result = {"url": request.url, "error": f"{first} (other candidates: {others})"}
        return result

    async def _store(self, response: Response, url: str) -> dict[str, Any]:
        if response.status != 200:
            return {"url": url, "error": f"http_{response.status}"}
        try:
            assert self.workers is not None
            stored: StoredImage = await self.workers.put(response.body)
        except ImageRejected as exc:
            return {"url": url, "error": f"{exc.reason}: {exc.detail}"}
        return {"url": url, "stored": stored}

    @staticmethod
    def _failure_reason(error: BaseException) -> str:
        if isinstance(error, PhotoFailed):
            return str(error)
        if isinstance(error, IgnoreRequest):
            reason = str(error) or "ignored"
            if "robots.txt" in reason.lower() or "Forbidden by robots" in reason:
                reason = "robots_txt"
            return reason
        return f"download_error: {type(error).__name__}: {error}"

    def media_failed(self, failure: Failure, request: Request, info: Any) -> Failure:
        raise PhotoFailed(self._failure_reason(failure.value))

    def file_path(self, request: Request, response: Any = None, info: Any = None, *,
                  item: Any = None) -> str:
        return request.url  # unused: the image store names files by content

    def item_completed(self, results: list[Any], item: LotItem, info: Any) -> LotItem:
        """Attach each photo's outcome to the item; ListingPipeline records them."""
        photos: list[dict[str, Any]] = []
        for url, (ok, value) in zip(item["photo_urls"], results, strict=True):
            if ok:
                photos.append(value)
            else:
                error = value.value if isinstance(value, Failure) else value
                message = str(error) if isinstance(error, PhotoFailed) else repr(error)
                photos.append({"url": url, "error": message})
        for url, message in (item.get("photo_errors") or {}).items():
            photos.append({"url": url, "error": message})
        if photos and not any("stored" in photo for photo in photos):
            problems.add(item, problems.NO_PHOTO,
                         f"none of the lot's {len(photos)} photos could be stored "
                         "(see its photo rows)")
        for photo in photos:
            if "error" in photo:
                reason = re.split(r"[:\s(]", str(photo["error"]), maxsplit=1)[0][:40]
                self.stats.inc_value("artwatch/photos_failed")
                self.stats.inc_value(f"artwatch/photos_failed/{reason}")
                logger.warning("photo %s of %s failed: %s", photo["url"], item["url"],
                               photo["error"])
            else:
                self.stats.inc_value("artwatch/photos_stored")
        item["photos"] = photos
        return item


class ListingPipeline:
    """Record the lot, its photos and their queue marks in one transaction; send new photos.

    Everything runs on the crawl's event loop: PostgreSQL through psycopg's asyncio pool
    (a commit's wait never stalls the crawl, and several lots commit at once), and the
    Celery send right after the commit. No threads: with the database work in reactor
    threads, their hand-offs of the interpreter lock (~250 futex calls per lot, strace)
    cost more CPU than the work itself (crawler/README.md).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.pool: Any = None
        self.broker_down_until = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ListingPipeline:
        return cls(crawler)

    async def open_spider(self) -> None:
        from artwatch.db import open_async_pool
        from artwatch.queue import app

        self.pool = await open_async_pool()
        # Configure Celery now, on a shallow stack, rather than on the first send deep inside
        # the reactor's callbacks (and fail at start when the broker setting is wrong).
        self.broker = app.conf.broker_url

    async def close_spider(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    def _send(self, saved: SavedLot) -> str | None:
        """Queue the lot's new photos for the matcher; the error, if the send failed.

        No retries: with the broker down each lot would otherwise wait out the retry
        policy on the event loop. A failed send is counted and its photos unmarked; the
        matcher's sweeper (`matcher.sweeper`) queues them once Redis is back. After a failed
        send, sends are not tried for `BROKER_PAUSE_S`: even one attempt against a broker
        that is down blocks the event loop ~6 s (redis-py's reconnect back-off), which
        stalled the crawl for minutes.
        """
        from artwatch.queue import app

        if time.monotonic() < self.broker_down_until:
            return "broker unavailable (a recent send failed); left for the sweeper"
        try:
            app.send_task(MATCH_IMAGES, args=[saved.queue_image_ids],
                          kwargs={"listing_id": saved.listing_id}, retry=False)
        except Exception as exc:
            self.broker_down_until = time.monotonic() + BROKER_PAUSE_S
            return str(exc) or type(exc).__name__
        return None

    def _count_problems(self, item: LotItem) -> None:
        """Count the lot's problems in the crawl's stats and log each with the lot's URL."""
        found = item.get("problems") or []
        if not found:
            return
        self.stats.inc_value("artwatch/lots_with_problems")
        for reason in dict.fromkeys(p["reason"] for p in found):
            self.stats.inc_value(f"artwatch/lot_problems/{reason}")
        for problem in found:
            logger.warning("lot %s: %s: %s", item["url"], problem["reason"], problem["detail"])

    async def _save(self, item: LotItem) -> SavedLot:
        spider = _spider(self.crawler)
        async with self.pool.connection() as conn:
            return await save_lot(conn, source_id=spider.source.id, crawl_id=spider.crawl_id,
                                  item=item, photos=item.get("photos") or [],
                                  force=spider.force)

    async def _unmark(self, saved: SavedLot) -> None:
        async with self.pool.connection() as conn:
            await unmark_queued(conn, saved.queue_row_ids)

    async def process_item(self, item: LotItem) -> LotItem:
        # PostgreSQL restarting mid-crawl: the lot waits with back-off (on the event loop,
        # other lots go on) instead of being dropped; its transaction is all or nothing.
        retrying = async_db_retrying(get_settings().db_retry_s, f"lot {item.get('url')}")
        saved = await retrying(self._save, item)
        send_error = self._send(saved) if saved.queue_image_ids else None
        if send_error is not None:
            await retrying(self._unmark, saved)
        self._count_problems(item)
        item["listing_id"] = saved.listing_id
        item["listing_new"] = saved.created
        item["photos"] = saved.photos
        self.stats.inc_value("artwatch/listings_new" if saved.created else "artwatch/listings_seen")
        if saved.changes:
            self.stats.inc_value("artwatch/listings_changed")
        item["queued_image_ids"] = []
        if send_error is not None:
            self.stats.inc_value("artwatch/queue_failed")
            logger.error("could not queue photos of listing %s: %s", saved.listing_id,
                         send_error)
        elif saved.queue_image_ids:
            item["queued_image_ids"] = saved.queue_image_ids
            self.stats.inc_value("artwatch/images_queued", len(saved.queue_image_ids))
            self.stats.inc_value("artwatch/match_tasks_sent")
        return item
