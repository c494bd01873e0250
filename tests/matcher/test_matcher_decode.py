"""Decoding stored photos for the model: draft mode, the tensor (nvJPEG) path, memory, ids."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artwatch.images import ImageStore
from matcher.decode import (
    JpegTensorDecoder,
    Photo,
    PhotoDecoder,
    draft_request,
    model_pixels,
)
from matcher.evidence import ReferenceSet, candidate_evidence, nearest
from matcher.preprocess import Preprocess
from matcher.tasks import parse_arguments

REPO = Path(__file__).resolve().parents[2]
PRE = Preprocess(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _scene(width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo-like picture: smooth shapes and texture (skimage's coffee, resized)."""
    from skimage import data

    base = Image.fromarray(data.coffee() if seed % 2 == 0 else data.chelsea())
    return base.resize((width, height), Image.Resampling.BICUBIC)


def _encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _full_decode_pixels(data: bytes) -> np.ndarray:
    from artwatch.images import load_rgb

    return PRE.fit(load_rgb(data))


# --- strict ids --------------------------------------------------------------------------------


def test_ids_are_integers_only() -> None:
    assert parse_arguments([[1, 2]], {"listing_id": 7}) == ([1, 2], 7, "live")
    assert parse_arguments([], {"image_ids": [3], "listing_id": None}) == ([3], None, "live")
    assert parse_arguments([[4], 9], {}) == ([4], 9, "live")
    assert parse_arguments([[4]], {"listing_id": 9, "origin": "retro-hunt"}) == \
        ([4], 9, "retro-hunt")
    bad = [
        (["123"], {}),  # a string iterates to 1, 2, 3
        ([[True, False]], {}),  # bools are ints in Python
        ([[1.9]], {}),
        ([[1, float("inf")]], {}),
        ([[1, float("nan")]], {}),
        ([[2**63]], {}),  # beyond bigint
        ([[0]], {}),
        ([[-5]], {}),
        ([[1]], {"listing_id": "7"}),
        ([[1]], {"listing_id": 2.0}),
        ([[1]], {"listing": 7}),  # unknown argument
        ([[1]], {"image_ids": [2]}),  # given twice
        ([[1], 2, "live", 4], {}),
        ([[1]], {"origin": "backfill"}),  # not an origin
        ([], {}),
        ({"image_ids": [1]}, {}),
        ([{"1": 2}], {}),
    ]
    for args, kwargs in bad:
        with pytest.raises(ValueError):
            parse_arguments(args, kwargs)
    # What the JSON on the queue decodes to: Infinity and 1e400 are floats, not ids.
    for text in ('[[1, Infinity]]', '[[1e400]]', '[["5"]]'):
        with pytest.raises(ValueError):
            parse_arguments(json.loads(text), {})


# --- draft decoding ------------------------------------------------------------------------------


def test_draft_request_keeps_the_longer_side_at_least_the_resolution() -> None:
    for width, height in [(1600, 1200), (1024, 768), (4000, 1000), (300, 5000), (200, 100)]:
        w, h = draft_request(width, height, 224)
        assert max(w, h) >= min(224, max(width, height))
        assert w <= width and h <= height
        assert math.isclose(w / h, width / height, rel_tol=0.05)


@pytest.mark.parametrize("size", [(1024, 768), (1600, 1200)])
def test_draft_decode_matches_a_full_decode(size: tuple[int, int]) -> None:
    """Same picture, a fraction of the decoding: pixels within a few grey levels."""
    data = _encode(_scene(*size), quality=85)
    draft = model_pixels(data, PRE, 60_000_000).astype(np.float64)
    full = _full_decode_pixels(data).astype(np.float64)
    assert draft.shape == full.shape == (224, 224, 3)
    assert np.abs(draft - full).mean() < 3.0  # 0-255 scale
    assert np.corrcoef(draft.ravel(), full.ravel())[0, 1] > 0.99


def test_exif_rotation_and_non_jpeg_formats(tmp_path: Path) -> None:
    wide = _scene(800, 400)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    rotated = model_pixels(_encode(wide, exif=exif), PRE, 60_000_000)
    # shown as 400 wide x 800 high: padding left and right, not top and bottom
    fill = np.array(PRE.fill)
    assert (np.abs(rotated[:, :20].astype(int) - fill) <= 2).all()
    assert not (np.abs(rotated[:20, :].astype(int) - fill) <= 2).all()
    png = model_pixels(_encode(wide, "PNG"), PRE, 60_000_000)
    assert (np.abs(png[:20, :].astype(int) - fill) <= 2).all()  # landscape: bars top/bottom


def test_undecodable_and_missing_photos_have_a_reason(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_bytes=1 << 26, max_pixels=60_000_000)
    good = store.put(_encode(_scene(320, 240)))
    broken = store.put(_encode(_scene(330, 240), quality=90))
    data = store.path_for(broken.sha256).read_bytes()
    store.path_for(broken.sha256).write_bytes(data[: len(data) // 3])  # truncated on disk
    gone = store.put(_encode(_scene(340, 240)))
    store.path_for(gone.sha256).unlink()
    decoder = PhotoDecoder(store, PRE, threads=2)
    photos = [Photo(1, good.sha256), Photo(2, broken.sha256), Photo(3, gone.sha256)]
    chunks = list(decoder.chunks(photos, 2))
    decoder.close()
    assert [c.ids for c in chunks] == [[1], []]
    assert chunks[0].pixels.shape == (1, 224, 224, 3)
    unreadable = {k: v for c in chunks for k, v in c.unreadable.items()}
    assert unreadable[2].reason == "corrupt" and unreadable[3].reason == "missing_file"


def test_tensor_decoder_agrees_with_pillow_and_routes_the_rest(tmp_path: Path) -> None:
    """The CUDA path's code on the CPU: torchvision decode + antialiased bicubic + pad."""
    store = ImageStore(tmp_path, max_bytes=1 << 26, max_pixels=60_000_000)
    plain = store.put(_encode(_scene(1024, 768), quality=85))
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = store.put(_encode(_scene(800, 400, 1), exif=exif))
    png = store.put(_encode(_scene(500, 300), "PNG"))
    cmyk = store.put(_encode(_scene(400, 300).convert("CMYK")))
    cpu = PhotoDecoder(store, PRE, threads=2)
    tensor = JpegTensorDecoder(cpu, "cpu")
    assert tensor.tensor_ready(store.read_bytes(plain.sha256))
    for other in (rotated, png, cmyk):
        assert not tensor.tensor_ready(store.read_bytes(other.sha256))
    photos = [Photo(i, s.sha256) for i, s in enumerate([plain, rotated, png, cmyk], 1)]
    (chunk,) = list(tensor.chunks(photos, 8))
    (reference,) = list(cpu.chunks(photos, 8))
    cpu.close()
    assert chunk.ids == reference.ids == [1, 2, 3, 4]
    assert chunk.pixels.dtype == torch.uint8 and chunk.pixels.shape == (4, 224, 224, 3)
    full = torch.from_numpy(_full_decode_pixels(store.read_bytes(plain.sha256)))
    diff = (chunk.pixels[0].int() - full.int()).abs().float()
    assert diff.mean() < 2.0  # the same filter, libjpeg-turbo vs Pillow rounding
    assert torch.equal(chunk.pixels[1:], reference.pixels[1:])  # the CPU pool's own output


def test_memory_of_a_batch_of_large_photos_is_bounded(tmp_path: Path) -> None:
    """24 photos of 3000 x 2000 (18 MB each decoded, 430 MB together) stay under 160 MB."""
    script = textwrap.dedent(f"""
        import io, resource, sys
        from pathlib import Path
        from PIL import Image
        from artwatch.images import ImageStore
        from matcher.decode import Photo, PhotoDecoder
        from matcher.preprocess import Preprocess
        store = ImageStore(Path({str(tmp_path)!r}), max_bytes=1 << 28, max_pixels=60_000_000)
        photos = []
        for i, fmt in enumerate(["JPEG", "PNG"] * 12):
            im = Image.new("RGB", (3000, 2000), (i * 9 % 255, 80, 160))
            buf = io.BytesIO(); im.save(buf, format=fmt); del im
            photos.append(Photo(i, store.put(buf.getvalue()).sha256))
        decoder = PhotoDecoder(store, Preprocess(224, (0.5,) * 3, (0.5,) * 3), threads=2)
        list(decoder.chunks(photos[:2], 2))  # warm up: imports, thread pool
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kept = [c.pixels for c in decoder.chunks(photos, 8)]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(sum(len(p) for p in kept), (peak - base) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    decoded, grown_mb = map(int, out.stdout.split())
    assert decoded == 24
    assert grown_mb < 160, f"peak memory grew {grown_mb} MB"


# --- retrieval --------------------------------------------------------------------------------


def test_chunked_retrieval_gives_the_unchunked_answer() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((1000, 32)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    object_ids = rng.integers(1, 60, size=1000)
    queries = matrix[[3, 500, 999]] + 0.05 * rng.standard_normal((3, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    sims_w, rows_w = nearest(queries, matrix, 40, chunk=10**6)
    sims_p, rows_p = nearest(queries, torch.from_numpy(matrix), 40, chunk=97)
    assert rows_w.tolist() == rows_p.tolist()
    np.testing.assert_allclose(sims_w, sims_p, atol=1e-6)  # up to float rounding
    assert rows_w[:, 0].tolist() == [3, 500, 999]
    exact = np.sort(queries @ matrix.T, axis=1)[:, ::-1][:, :40]
    np.testing.assert_allclose(sims_w, exact, atol=1e-6)
    half, _ = nearest(queries, torch.from_numpy(matrix).bfloat16(), 40, chunk=97)
    np.testing.assert_allclose(half, exact, atol=2e-2)
    # chunks smaller than the depth (rows collected over several before any is skipped)
    small_s, small_r = nearest(queries, matrix, 40, chunk=7)
    assert small_r.tolist() == rows_w.tolist()
    np.testing.assert_allclose(small_s, exact, atol=1e-6)

    def candidates(chunk: int) -> np.ndarray:
        refs = ReferenceSet(matrix, object_ids, np.zeros(1000, np.float32),
                            np.zeros(1000, np.uint64), chunk=chunk)
        out = candidate_evidence(queries, refs, np.ones(3, np.uint64), np.ones(3, np.uint64),
                                 temperature=0.05)
        return out.objects

    assert candidates(10**6).tolist() == candidates(97).tolist()


# --- worker configuration ----------------------------------------------------------------------


def test_matcher_workers_prefetch_two_batches_from_settings() -> None:
    from celery.concurrency.prefork import TaskPool
    from celery.concurrency.solo import TaskPool as SoloPool

    from artwatch.queue import _worker_prefetch, _worker_settings, app
    from artwatch.settings import get_settings

    batch = get_settings().matcher_batch_size
    conf = app.conf
    before = (conf.worker_prefetch_multiplier, dict(conf.broker_transport_options))
    try:
        _worker_settings(conf=conf, options={"queues": ["matcher"], "pool_cls": SoloPool,
                                             "concurrency": 4})
        assert conf.worker_prefetch_multiplier == 2 * batch
        worker = type("Worker", (), {"prefetch_multiplier": 1})()  # `celery worker`'s default
        _worker_prefetch(sender=worker)
        assert worker.prefetch_multiplier == 2 * batch
        options = conf.broker_transport_options
        assert options["unacked_key"] == "matcher.unacked"
        assert options["visibility_timeout"] == get_settings().matcher_visibility_timeout_s
        conf.broker_transport_options = before[1]
        _worker_settings(conf=conf, options={"queues": "matcher,artwatch",
                                             "pool_cls": TaskPool, "concurrency": 2})
        assert conf.worker_prefetch_multiplier == batch  # 2 batches over 2 processes
        assert "unacked_key" not in conf.broker_transport_options  # crawls keep 6 h
        conf.worker_prefetch_multiplier = 1
        _worker_settings(conf=conf, options={"queues": ["artwatch"], "pool_cls": TaskPool})
        assert conf.worker_prefetch_multiplier == 1
        worker = type("Worker", (), {"prefetch_multiplier": 1})()
        _worker_prefetch(sender=worker)
        assert worker.prefetch_multiplier == 1  # crawl workers keep one task each
    finally:
        conf.worker_prefetch_multiplier, conf.broker_transport_options = before
