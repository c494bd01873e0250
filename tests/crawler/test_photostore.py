"""Photo decoding in a worker process: stored photos, rejections with their reason."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from artwatch.images import ImageRejected
from crawler.photostore import PhotoWorkers


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def test_worker_process_stores_and_rejects(image_store) -> None:
    workers = PhotoWorkers(image_store, processes=1)

    async def run() -> None:
        stored = await workers.put(jpeg())
        assert image_store.contains(stored.sha256) and (stored.width, stored.height) == (64, 48)
        with pytest.raises(ImageRejected) as err:
            await workers.put(b"<html>not a photo</html>")
        assert err.value.reason == "not_an_image"

    try:
        asyncio.run(run())
    finally:
        workers.close()
