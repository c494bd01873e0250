"""The image store on hostile and awkward photos: each gets its documented outcome."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artwatch.images import ImageRejected, ImageStore
from artwatch.images.decode import hamming


def _photo(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _files(store: ImageStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_valid_photo_stored_once_when_given_twice(image_store: ImageStore, fmt: str) -> None:
    data = _encode(_photo(), fmt)
    first = image_store.put(data)
    second = image_store.put(data)
    assert first == second
    assert first.format == fmt and (first.width, first.height) == (64, 48)
    assert first.path.read_bytes() == data  # the original, byte for byte
    assert len(_files(image_store)) == 1


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("zero-byte", b"", "empty"),
        ("text named .jpg", b"this is a text file, not a photo\n" * 4, "not_an_image"),
        ("truncated jpeg", None, "corrupt"),
        ("bmp not allowed", None, "format_not_allowed"),
    ],
)
def test_bad_files_rejected_with_reason_and_nothing_written(
    image_store: ImageStore, name: str, data: bytes | None, reason: str
) -> None:
    if name == "truncated jpeg":
        data = _encode(_photo((256, 256)), "JPEG", quality=95)[:1500]
    elif name == "bmp not allowed":
        data = _encode(_photo(), "BMP")
    with pytest.raises(ImageRejected) as info:
        image_store.put(data)
    assert info.value.reason == reason
    assert _files(image_store) == []


def test_decompression_bomb_rejected_before_decoding(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_bytes=10_000_000, max_pixels=1_000_000)
    bomb = _encode(Image.new("L", (4000, 4000)), "PNG")  # tiny file, 16 Mpx
    assert len(bomb) < 100_000
    with pytest.raises(ImageRejected) as info:
        store.put(bomb)
    assert info.value.reason == "too_many_pixels"
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize("fmt", ["AVIF", "HEIF"])
def test_avif_and_heif_get_the_same_limits(tmp_path: Path, fmt: str) -> None:
    store = ImageStore(tmp_path, max_bytes=10_000_000, max_pixels=1_000_000)
    with pytest.raises(ImageRejected) as info:  # 16 Mpx in a small file: refused unread
        store.put(_encode(Image.new("L", (4000, 4000)), fmt))
    assert info.value.reason == "too_many_pixels"
    photo = _encode(_photo((256, 256)), fmt, quality=95)
    with pytest.raises(ImageRejected) as info:
        store.put(photo[: len(photo) // 2])
    assert info.value.reason in ("corrupt", "not_an_image")
    with pytest.raises(ImageRejected) as info:
        ImageStore(tmp_path, max_bytes=len(photo) - 1, max_pixels=10_000_000).put(photo)
    assert info.value.reason == "too_large"
    assert list(tmp_path.rglob("*")) == []
    # Upright like every other format (EXIF orientation 6: turned a quarter).
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = store.put(_encode(_photo((64, 48)), fmt, exif=exif.tobytes()))
    assert (stored.width, stored.height) == (48, 64)


def test_oversized_file_rejected(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, max_bytes=2000, max_pixels=10_000_000)
    with pytest.raises(ImageRejected) as info:
        store.put(_encode(_photo((256, 256)), "PNG"))
    assert info.value.reason == "too_large"


def test_photo_below_the_minimum_side_rejected(tmp_path: Path) -> None:
    from artwatch.settings import load_settings

    store = ImageStore.from_settings(load_settings(data_dir=tmp_path))
    assert store.min_side == 32  # ARTWATCH_MIN_IMAGE_SIDE's default
    for size in ((1, 1), (31, 400), (400, 31)):
        with pytest.raises(ImageRejected) as info:
            store.put(_encode(Image.new("RGB", size, (9, 9, 9)), "PNG"))
        assert info.value.reason == "too_small"
        assert f"{size[0]}x{size[1]} is below the 32-pixel minimum" in info.value.detail
    assert not any(p.is_file() for p in store.root.rglob("*"))  # no file kept
    assert store.put(_encode(_photo((32, 32)), "PNG")).width == 32
    assert len([p for p in store.root.rglob("*") if p.is_file()]) == 1
    narrow = ImageStore(tmp_path / "s", max_bytes=1 << 20, max_pixels=1 << 20, min_side=64)
    with pytest.raises(ImageRejected, match="64-pixel minimum"):
        narrow.put(_encode(_photo((63, 200)), "PNG"))


def test_cmyk_jpeg_converted_to_rgb(image_store: ImageStore) -> None:
    rgb = _photo()
    stored = image_store.put(_encode(rgb.convert("CMYK"), "JPEG", quality=95))
    out = image_store.open_rgb(stored.sha256)
    assert out.mode == "RGB" and out.size == (64, 48)
    diff = np.abs(np.asarray(out, float) - np.asarray(rgb, float)).mean()
    assert diff < 20  # same picture, not inverted or garbled


def test_16bit_png_converted_to_8bit_rgb(image_store: ImageStore) -> None:
    ramp = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    data = _encode(Image.fromarray(ramp), "PNG")
    stored = image_store.put(data)
    out = np.asarray(image_store.open_rgb(stored.sha256))
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255  # full range kept, not clipped


def test_palette_with_transparency_composited_on_white(image_store: ImageStore) -> None:
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (8, 8, 24, 24))
    stored = image_store.put(_encode(rgba, "PNG"))
    out = np.asarray(image_store.open_rgb(stored.sha256))
    assert tuple(out[0, 0]) == (255, 255, 255)  # transparent -> white
    assert tuple(out[16, 16]) == (0, 0, 255)


def test_animated_gif_uses_first_frame(image_store: ImageStore) -> None:
    frames = [Image.new("RGB", (40, 32), colour) for colour in ((200, 0, 0), (0, 200, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    stored = image_store.put(buf.getvalue())
    out = np.asarray(image_store.open_rgb(stored.sha256))
    assert stored.format == "GIF"
    assert out[15, 20, 0] > 150 and out[15, 20, 1] < 50  # red: the first frame


def test_exif_rotated_photo_is_turned_upright(image_store: ImageStore) -> None:
    upright = _photo((60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; viewers rotate 90 degrees clockwise
    data = _encode(upright.rotate(90, expand=True), "JPEG", quality=95, exif=exif)
    stored = image_store.put(data)
    assert (stored.width, stored.height) == (60, 40)
    out = image_store.open_rgb(stored.sha256)
    assert out.size == (60, 40)
    diff = np.abs(np.asarray(out, float) - np.asarray(upright, float)).mean()
    assert diff < 15


def test_perceptual_hash_survives_recompression(image_store: ImageStore) -> None:
    photo = _photo((256, 256), seed=3)
    a = image_store.put(_encode(photo, "PNG"))
    b = image_store.put(_encode(photo.resize((200, 200)), "JPEG", quality=70))
    c = image_store.put(_encode(_photo((256, 256), seed=4), "PNG"))
    assert a.sha256 != b.sha256
    assert hamming(a.phash, b.phash) <= 6
    assert hamming(a.phash, c.phash) > 12


def test_crash_during_write_leaves_no_partial_file(image_store: ImageStore,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        image_store.put(_encode(_photo(), "PNG"))
    assert _files(image_store) == []
