"""Photo checking in worker processes: stored photos, rejections with their reason, and a
worker that dies costing only the photo it was on."""

from __future__ import annotations

import asyncio
import io
import os
import signal

import pytest
from PIL import Image

from artwatch.images import ImageRejected
from crawler.photostore import PhotoWorkers


def jpeg(colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()


def test_worker_process_stores_and_rejects(image_store) -> None:
    async def run() -> None:
        workers = PhotoWorkers(image_store, processes=2)
        try:
            stored = await workers.put(jpeg())
            assert image_store.contains(stored.sha256)
            assert (stored.width, stored.height) == (64, 48)
            with pytest.raises(ImageRejected) as err:
                await workers.put(b"<html>not a photo</html>")
            assert err.value.reason == "not_an_image"
            # Many at once, answered in order, spread over both workers.
            photos = [jpeg((i, 255 - i, 7)) for i in range(0, 240, 8)]
            results = await asyncio.gather(*(workers.put(p) for p in photos))
            assert [r.size_bytes for r in results] == [len(p) for p in photos]
            assert len(set(workers.pids)) == 2
        finally:
            await workers.aclose()
        assert workers.pids == []

    asyncio.run(run())


def test_a_dead_worker_costs_one_photo_and_is_replaced(image_store) -> None:
    async def run() -> None:
        workers = PhotoWorkers(image_store, processes=1)
        try:
            await workers.put(jpeg())  # started and warm
            (pid,) = workers.pids
            os.kill(pid, signal.SIGSTOP)  # frozen mid-queue: these three wait behind it
            waiting = [asyncio.ensure_future(workers.put(jpeg((9, i, 9)))) for i in range(3)]
            await asyncio.sleep(0.2)
            os.kill(pid, signal.SIGKILL)
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
            crashed = [o for o in outcomes if isinstance(o, ImageRejected)]
            assert [c.reason for c in crashed] == ["decoder_crashed"]
            stored = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(stored) == 2 and all(image_store.contains(s.sha256) for s in stored)
            assert workers.pids and workers.pids != [pid]
            assert (await workers.put(jpeg((1, 2, 3)))).width == 64
        finally:
            await workers.aclose()

    asyncio.run(run())


def test_no_worker_can_start_fails_the_photo_not_the_crawl(image_store, monkeypatch) -> None:
    monkeypatch.setattr("crawler.photostore.sys.executable", "/nonexistent/python")

    async def run() -> None:
        workers = PhotoWorkers(image_store, processes=1)
        workers.start()
        try:
            with pytest.raises(ImageRejected) as err:
                await workers.put(jpeg())
            assert err.value.reason == "store_error"
            assert "no photo worker could start" in err.value.detail
        finally:
            await workers.aclose()

    asyncio.run(run())
