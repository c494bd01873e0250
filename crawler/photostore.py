"""Photo checking (decode, perceptual hash, sha256, write) in worker processes.

Decoding a photo costs about as much CPU as Scrapy spends fetching it, and in threads it
competes with the crawl for the one interpreter lock. A small pool of worker processes
(ARTWATCH_PHOTO_PROCESSES, default 1; 0 = threads) lets the crawl use a second core. Workers
are spawned (not forked from the running reactor), share the crawl's process group (the
runner's timeout stops them too), and a worker that dies on a hostile photo costs that
photo (recorded as `decoder_crashed`), not the crawl.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from artwatch.images import ImageRejected, ImageStore, StoredImage

logger = logging.getLogger(__name__)

_worker_store: ImageStore | None = None


def _init_worker(root: str, max_bytes: int, max_pixels: int) -> None:
    global _worker_store
    _worker_store = ImageStore(Path(root), max_bytes=max_bytes, max_pixels=max_pixels)
    _warm_up()


def _warm_up() -> None:
    """Decode and hash a tiny photo once, so the decoders' lazy imports (the perceptual
    hash's DCT pulls in scipy, ~0.3 s) happen now, not while the first photos wait."""
    import io

    from PIL import Image

    from artwatch.images import decode_image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 64, 32)).save(out, "JPEG")
    try:
        decode_image(out.getvalue(), max_bytes=1 << 20, max_pixels=1 << 20)
    except Exception:  # only a warm-up: the real photos report their own problems
        logger.debug("photo decoder warm-up failed", exc_info=True)


def _ready() -> bool:
    return True


def _put_in_worker(data: bytes) -> StoredImage | tuple[str, str]:
    """Store in a worker; a rejection comes back as (reason, detail) (picklable)."""
    assert _worker_store is not None
    try:
        return _worker_store.put(data)
    except ImageRejected as exc:
        return (exc.reason, exc.detail)


class PhotoWorkers:
    """`await workers.put(data)` -> StoredImage, or ImageRejected with the reason."""

    def __init__(self, store: ImageStore, processes: int) -> None:
        self.store = store
        self.processes = max(0, processes)
        self.pool: ProcessPoolExecutor | None = None
        if self.processes:
            self._start()
        else:  # decoders warm up in a thread while the first pages are fetched
            threading.Thread(target=_warm_up, name="photo-warm-up", daemon=True).start()

    def _start(self) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(str(self.store.root), self.store.max_bytes, self.store.max_pixels),
        )
        # Start the worker now (the pool spawns on first use): its imports and warm-up
        # (~1 s) overlap the first list pages instead of delaying the first photos.
        self.pool.submit(_ready)

    async def put(self, data: bytes) -> StoredImage:
        if self.pool is None:
            # Imported here, not at the top: the worker processes import this module too,
            # and need neither Scrapy nor Twisted (~0.2 s of start-up each).
            from scrapy.utils.defer import maybe_deferred_to_future
            from twisted.internet.threads import deferToThread

            return await maybe_deferred_to_future(deferToThread(self.store.put, data))
        try:
            result = await asyncio.wrap_future(self.pool.submit(_put_in_worker, data))
        except BrokenProcessPool:
            logger.error("a photo worker died; starting a new one")
            self.pool.shutdown(wait=False, cancel_futures=True)
            self._start()
            raise ImageRejected("decoder_crashed", "the photo's decoder process died") from None
        if isinstance(result, tuple):
            raise ImageRejected(*result)
        return result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
