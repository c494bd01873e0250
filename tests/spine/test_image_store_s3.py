"""The S3-compatible image store against a real S3 API server on loopback (moto's standalone
server: no MinIO server is packaged for these machines).

The same checks as the local store: sha256-named, stored once, limits enforced before any
write, hostile bytes never written; and the crawler's photo worker processes, the matcher's
reads and the digest thumbnails all work from the bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from artwatch.images import ImageRejected, ImageStore
from artwatch.images.backends import S3Backend, backend_for
from artwatch.settings import load_settings

BUCKET = "artwatch-photos"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials and endpoint in the environment, as the photo worker processes read them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "artwatch-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "artwatch-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("ARTWATCH_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("ARTWATCH_IMAGE_STORE", f"s3://{BUCKET}/photos")
    backend = S3Backend(BUCKET, endpoint_url=s3_endpoint, region="us-east-1")
    existing = [b["Name"] for b in backend.client.list_buckets()["Buckets"]]
    if BUCKET not in existing:
        backend.client.create_bucket(Bucket=BUCKET)
    else:  # each test starts from an empty bucket
        for obj in backend.client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            backend.client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    return s3_endpoint


@pytest.fixture
def s3_store(s3_env: str) -> ImageStore:
    settings = load_settings()
    assert settings.image_store == f"s3://{BUCKET}/photos"
    return ImageStore(settings.image_store, max_bytes=2 * 1024 * 1024, max_pixels=4_000_000,
                      backend=backend_for(settings.image_store, settings))


def _objects(store: ImageStore) -> dict[str, int]:
    backend = store.backend
    assert isinstance(backend, S3Backend)
    listing = backend.client.list_objects_v2(Bucket=backend.bucket)
    return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}


def _jpeg(seed: int = 0, size: tuple[int, int] = (96, 64)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_photo_stored_once_under_its_sha256(s3_store: ImageStore) -> None:
    data = _jpeg()
    first = s3_store.put(data)
    second = s3_store.put(data)
    assert first == second and first.path is None
    sha = hashlib.sha256(data).hexdigest()
    assert first.sha256 == sha
    assert _objects(s3_store) == {f"photos/{sha[:2]}/{sha[2:4]}/{sha}": len(data)}
    assert s3_store.contains(sha)
    assert s3_store.read_bytes(sha) == data  # the original, byte for byte
    assert s3_store.open_rgb(sha).size == (96, 64)


def test_limits_and_hostile_bytes_checked_before_any_write(s3_store: ImageStore) -> None:
    with pytest.raises(ImageRejected) as info:
        s3_store.put(b"not a photo at all\n" * 20)
    assert info.value.reason == "not_an_image"
    with pytest.raises(ImageRejected) as info:
        s3_store.put(_jpeg(size=(2400, 2000)))  # 4.8 Mpx over the 4 Mpx limit
    assert info.value.reason in ("too_many_pixels", "too_large")
    with pytest.raises(ImageRejected):
        s3_store.put(_jpeg()[:700])  # truncated
    assert _objects(s3_store) == {}


def test_missing_photo_is_file_not_found(s3_store: ImageStore) -> None:
    with pytest.raises(FileNotFoundError):
        s3_store.read_bytes("0" * 64)
    assert not s3_store.contains("0" * 64)


def test_crawler_photo_workers_store_into_the_bucket(s3_store: ImageStore) -> None:
    """The crawl's photo worker processes get the location and find the bucket's settings."""
    from crawler.photostore import PhotoWorkers

    photos = [_jpeg(seed) for seed in range(3)]

    async def crawl() -> list[object]:
        workers = PhotoWorkers(s3_store, processes=1)
        try:
            results = []
            for data in [*photos, b"<html>a dead link's error page</html>"]:
                try:
                    results.append(await workers.put(data))
                except ImageRejected as exc:
                    results.append(exc.reason)
            return results
        finally:
            await workers.aclose()

    results = asyncio.run(crawl())
    assert results[-1] == "not_an_image"
    stored = {hashlib.sha256(p).hexdigest() for p in photos}
    assert {r.sha256 for r in results[:3]} == stored  # type: ignore[union-attr]
    assert {key.rsplit("/", 1)[1] for key in _objects(s3_store)} == stored


def test_thumbnails_read_from_the_bucket(s3_store: ImageStore, tmp_path) -> None:
    from alerts.thumbs import Thumbnailer

    stored = s3_store.put(_jpeg(seed=5, size=(400, 300)))
    thumbs = Thumbnailer(s3_store, tmp_path / "thumbs")
    data = thumbs.thumbnail(stored.sha256, 96)
    assert data is not None
    assert max(Image.open(io.BytesIO(data)).size) == 96
    assert thumbs.thumbnail("f" * 64, 96) is None  # missing: a placeholder, not a crash
