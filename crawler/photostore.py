"""Photo checking (decode, perceptual hash, sha256, durable write) in worker processes.

Checking a photo costs about as much CPU as Scrapy spends fetching it, so it runs beside the
crawl in ARTWATCH_PHOTO_PROCESSES worker processes (default 1; 0 = in the crawl's threads).

The workers talk to the crawl over their stdin/stdout pipes, read and written by the crawl's
own asyncio event loop: no helper threads in the crawl process. (The previous
`ProcessPoolExecutor` moved every photo through two helper threads, and their hand-offs of
the interpreter lock cost ~190 futex calls and ~2.5 ms of the crawl process's CPU per photo
on a 2-core machine: strace and the crawl benchmark, see crawler/README.md.)

Each frame is a 4-byte big-endian length and a body: photo bytes to the worker, a pickled
`StoredImage` or `(reason, detail)` back. A worker answers in order. Workers share the
crawl's process group (the runner's timeout stops them too) and exit when their stdin
closes. A worker that dies on a hostile photo costs that photo (recorded as
`decoder_crashed`); the photos queued behind it go to a fresh worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import sys
from collections import deque
from typing import BinaryIO

from artwatch.images import ImageRejected, ImageStore, StoredImage

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
Answer = StoredImage | tuple[str, str]


def check_photo(store: ImageStore, data: bytes) -> Answer:
    """Store `data`; a rejection (or any other failure) comes back as (reason, detail)."""
    try:
        return store.put(data)
    except ImageRejected as exc:
        return (exc.reason, exc.detail)
    except Exception as exc:  # a disk or decoder error fails this photo, not the worker
        return ("store_error", f"{type(exc).__name__}: {exc}")


def _warm_up(store: ImageStore) -> None:
    """Decode and hash a tiny photo once, so the decoders' lazy imports (PIL's plugins and
    codecs) happen now, not while the first photos wait."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 64, 32)).save(out, "JPEG")
    try:
        store.decode(out.getvalue())
    except Exception:  # only a warm-up: the real photos report their own problems
        logger.debug("photo decoder warm-up failed", exc_info=True)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(location: str, max_bytes: int, max_pixels: int, min_side: int) -> None:
    """The worker: answer each photo frame on stdin with a result frame on stdout."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print() in a library must not corrupt the frames
    store = ImageStore(location, max_bytes=max_bytes, max_pixels=max_pixels, min_side=min_side)
    _warm_up(store)
    requests = sys.stdin.buffer
    while True:
        header = _read_exactly(requests, _HEADER.size)
        if header is None:
            return  # the crawl closed our stdin (or died): done
        data = _read_exactly(requests, _HEADER.unpack(header)[0])
        if data is None:
            return
        body = pickle.dumps(check_photo(store, data), protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(_HEADER.pack(len(body)) + body)
        replies.flush()


def _resolve(future: asyncio.Future[Answer], answer: Answer) -> None:
    if not future.done():
        future.set_result(answer)


class _Worker:
    """One worker process and the photos it has been sent, oldest first."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending: deque[tuple[bytes, asyncio.Future[Answer]]] = deque()
        self.reader: asyncio.Task[None] | None = None


class PhotoWorkers:
    """`await workers.put(data)` -> StoredImage, or ImageRejected with the reason.

    Worker processes start on `start()` (from inside the running event loop, so their
    start-up overlaps the first list pages) or on the first photo; `await aclose()` ends
    them. With `processes=0` photos are checked in the reactor's threads instead.
    """

    def __init__(self, store: ImageStore, processes: int) -> None:
        self.store = store
        self.processes = max(0, processes)
        self._workers: list[_Worker] = []
        self._spawning = asyncio.Lock()
        self._closing = False

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    def start(self) -> None:
        """Start the workers in the background (call from inside the running loop)."""
        if self.processes:
            task = asyncio.ensure_future(self._ensure_workers())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # put() reports

    async def _ensure_workers(self) -> None:
        async with self._spawning:
            while len(self._workers) < self.processes:
                self._workers.append(await self._spawn())

    async def _next_worker(self) -> _Worker:
        """The running worker with the fewest photos queued (starting workers as needed)."""
        if len(self._workers) < self.processes:
            try:
                await self._ensure_workers()
            except Exception as exc:  # e.g. out of memory: this photo fails, not the crawl
                if not self._workers:
                    raise ImageRejected(
                        "store_error", f"no photo worker could start: {exc}"
                    ) from exc
        return min(self._workers, key=lambda w: len(w.pending))

    async def _spawn(self) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler.photostore",
            self.store.location, str(self.store.max_bytes), str(self.store.max_pixels),
            str(self.store.min_side), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = _Worker(process)
        worker.reader = asyncio.ensure_future(self._read_answers(worker))
        return worker

    async def _read_answers(self, worker: _Worker) -> None:
        stdout = worker.process.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(_HEADER.size)
                body = await stdout.readexactly(_HEADER.unpack(header)[0])
                _, future = worker.pending.popleft()
                _resolve(future, pickle.loads(body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker exited or died
        except Exception:  # an answer we cannot read: treat the worker as broken
            logger.exception("unreadable answer from photo worker %s", worker.process.pid)
            worker.process.kill()
        if not self._closing:
            await self._replace(worker)

    async def _replace(self, dead: _Worker) -> None:
        """A worker died: fail the photo it was on, hand the rest to another worker."""
        if dead in self._workers:
            self._workers.remove(dead)
        queued = list(dead.pending)
        dead.pending.clear()
        if not queued:
            return  # the next photo starts a new worker
        logger.error("photo worker %s died; starting a new one", dead.process.pid)
        _, culprit = queued.pop(0)
        _resolve(culprit, ("decoder_crashed", "the photo's decoder process died"))
        for data, future in queued:
            try:
                worker = await self._next_worker()
            except ImageRejected as exc:
                _resolve(future, (exc.reason, exc.detail))
                continue
            self._send(worker, data, future)

    def _send(self, worker: _Worker, data: bytes, future: asyncio.Future[Answer]) -> None:
        worker.pending.append((data, future))
        stdin = worker.process.stdin
        assert stdin is not None
        stdin.write(_HEADER.pack(len(data)) + data)

    async def put(self, data: bytes) -> StoredImage:
        if not self.processes:
            # Imported here, not at the top: the worker processes import this module too,
            # and need neither Scrapy nor Twisted (~0.2 s of start-up each).
            from scrapy.utils.defer import maybe_deferred_to_future
            from twisted.internet.threads import deferToThread

            return await maybe_deferred_to_future(deferToThread(self.store.put, data))
        worker = await self._next_worker()
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._send(worker, data, future)
        stdin = worker.process.stdin
        assert stdin is not None
        with contextlib.suppress(ConnectionError):  # a dead worker's reader hands it on
            await stdin.drain()  # back-pressure: wait while the pipe's buffer is full
        result = await future
        if isinstance(result, tuple):
            raise ImageRejected(*result)
        return result

    async def aclose(self) -> None:
        """Let each worker finish what it was sent, then end it (EOF on its stdin)."""
        self._closing = True
        async with self._spawning:  # a start in progress finishes first
            pass
        for worker in self._workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), 10)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            if worker.reader is not None:
                await worker.reader
            for _, future in worker.pending:  # died while closing: nothing is left waiting
                _resolve(future, ("decoder_crashed", "the photo's decoder process died"))
        self._workers.clear()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
