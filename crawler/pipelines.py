"""Item pipelines: validate -> fetch photos into the store -> record listing + photos -> queue.

Photos are fetched by a Scrapy media pipeline, so they share the crawl's politeness,
robots.txt, the URL guard and Retry-After, and one URL reached from several lots in a crawl
is downloaded once. Each photo goes into the content-addressed image store (one file and
one `images` row per sha256, however many listings show it), its `listing_images` row
records `stored` or `failed` with the reason, and photos not yet sent to the matcher go out
as one `matcher.match_images` task per listing carrying image ids.
"""

from __future__ import annotations

import logging
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
from crawler.items import LotItem
from crawler.listings import SavedLot, save_lot, unmark_queued
from crawler.photostore import PhotoWorkers

logger = logging.getLogger(__name__)
BROKER_PAUSE_S = 30.0  # after a failed send to the matcher queue, do not try again for this long


class PhotoFailed(Exception):
    """A photo that could not be stored; the message is recorded on its row."""


def _spider(crawler: Crawler) -> Any:
    assert crawler.spider is not None
    return crawler.spider


class ValidateItemPipeline:
    """Drop (and count) items without the fields a listing cannot exist without."""

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidateItemPipeline:
        return cls(crawler)

    def process_item(self, item: LotItem) -> LotItem:
        problems = [f for f in ("external_id", "url", "title") if not item.get(f)]
        url = str(item.get("url") or "")
        if url and not url.startswith(("http://", "https://")):
            problems.append("url")
        if problems:
            self.stats.inc_value("artwatch/items_invalid")
            raise DropItem(f"invalid lot {url or '?'}: missing or bad {', '.join(problems)}")
        photos: list[str] = []
        bad: dict[str, str] = {}
        for photo in item.get("photo_urls") or []:
            if not isinstance(photo, str) or photo in photos or photo in bad:
                continue
            try:
                Request(photo)
            except ValueError as exc:  # a link Scrapy cannot even parse: recorded, not fetched
                bad[photo] = f"malformed_url: {exc}"
                continue
            photos.append(photo)
        item["photo_urls"] = photos
        item["photo_errors"] = bad
        item["external_id"] = str(item["external_id"]).strip()
        item.setdefault("data", {})
        return item


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
        return [Request(url, meta={"artwatch_photo": True}) for url in item["photo_urls"]]

    def media_to_download(self, request: Request, info: Any, *, item: Any = None) -> None:
        return None  # always fetch: a site may change a photo under the same URL

    async def media_downloaded(
        self, response: Response, request: Request, info: Any, *, item: Any = None
    ) -> dict[str, Any]:
        # A bad answer is an expected outcome, returned (not raised) so it is recorded quietly.
        if response.status != 200:
            return {"url": request.url, "error": f"http_{response.status}"}
        try:
            assert self.workers is not None
            stored: StoredImage = await self.workers.put(response.body)
        except ImageRejected as exc:
            return {"url": request.url, "error": f"{exc.reason}: {exc.detail}"}
        return {"url": request.url, "stored": stored}

    def media_failed(self, failure: Failure, request: Request, info: Any) -> Failure:
        error = failure.value
        if isinstance(error, PhotoFailed):
            raise error
        if isinstance(error, IgnoreRequest):
            reason = str(error) or "ignored"
            if "robots.txt" in reason.lower() or "Forbidden by robots" in reason:
                reason = "robots_txt"
            raise PhotoFailed(reason)
        raise PhotoFailed(f"download_error: {type(error).__name__}: {error}")

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
        for photo in photos:
            if "error" in photo:
                reason = str(photo["error"]).split(":")[0][:40]
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
