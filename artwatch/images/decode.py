"""Turn untrusted image bytes into an RGB picture a model can use, or a reason why not.

Listing photos come from the open internet, so every limit is checked before pixels are
decoded: byte size, format allow-list, a minimum side (tracking pixels, spacers and icons
are not photos of an object), pixel count (decompression bombs). What passes is
normalised the same way for every consumer (EXIF orientation applied, first frame of an
animation, CMYK / palette / 16-bit / alpha converted to 8-bit RGB) so training, the matcher
and the perceptual hash all see the same picture.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

# AVIF is decoded by Pillow itself (libavif); HEIF/HEIC (iPhone photos) by the pillow-heif
# plugin (libheif), registered here so every process that decodes photos - the crawl's
# photo workers, the matcher, the catalogue import, thumbnails - reads them alike. Only the
# primary image is read: no thumbnails, depth maps or auxiliary images are decoded.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "TIFF", "MPO", "AVIF", "HEIF"})


class ImageRejected(ValueError):
    """A photo that is not stored; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    """A validated photo: normalised RGB pixels plus what the store records about it."""

    image: Image.Image  # RGB, EXIF-oriented, first frame
    format: str
    width: int
    height: int
    phash: int  # 64-bit perceptual hash as a signed integer (fits PostgreSQL bigint)
    phash_mirror: int = 0  # the same of the left-right mirror image (mirrored re-use)


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


def _dct_rows(n: int, size: int) -> np.ndarray:
    """The first `n` rows of the (unnormalised) DCT-II matrix of length `size`."""
    k = np.arange(n)[:, None]
    x = np.arange(size)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * x + 1) / (2 * size))


_PHASH_SIZE, _PHASH_BITS = 32, 8
_DCT = _dct_rows(_PHASH_BITS, _PHASH_SIZE)


def _phash_low(image: Image.Image) -> np.ndarray:
    grey = image.convert("L").resize(
        (_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0
    )
    pixels = np.asarray(grey, dtype=np.float64)
    return _DCT @ pixels @ _DCT.T  # == scipy.fftpack.dct(dct(p, axis=0), axis=1)[:8, :8]


def _bits_to_hash(low: np.ndarray) -> int:
    bits = (low > np.median(low)).flatten()
    return _signed64(int.from_bytes(np.packbits(bits).tobytes(), "big"))


# Mirroring a picture left-right multiplies its DCT coefficient of horizontal frequency k by
# (-1)^k, so the mirror image's hash comes from the same 8x8 block at no extra cost.
_MIRROR_SIGNS = np.where(np.arange(_PHASH_BITS) % 2 == 1, -1.0, 1.0)[None, :]


def perceptual_hash_pair(image: Image.Image) -> tuple[int, int]:
    """(pHash of the picture, pHash of its left-right mirror image): a mirrored re-use of a
    museum photo is found by comparing both with the catalogue's hashes."""
    low = _phash_low(image)
    return _bits_to_hash(low), _bits_to_hash(low * _MIRROR_SIGNS)


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit pHash of the picture (as a signed integer, for PostgreSQL's bigint).

    The classic pHash (imagehash's): grey, 32x32 Lanczos, DCT, the 8x8 lowest frequencies
    against their median. The shrink first box-reduces by an integer factor
    (`reducing_gap`): a Lanczos straight from a 640-pixel photo to 32 pixels was 70% of
    the cost of checking a photo, and the hash differs from imagehash's by at most 2 of 64
    bits (0.35 on average on generated listing photos, 0.17 on COIL-100) - far inside the 6-bit
    re-use distance, and the same function hashes catalogue and listing photos alike.
    """
    return _bits_to_hash(_phash_low(image))


def hamming(a: int, b: int) -> int:
    """Bits that differ between two perceptual hashes."""
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB, compositing any transparency onto white (how a web page shows it)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) or 1.0
        scale = 65535.0 if top > 255 else 255.0
        gray = np.clip(array / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = float(array.max() - array.min()) or 1.0
        gray = ((array - array.min()) / span * 255.0).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image


def open_image(data: bytes, *, max_pixels: int, min_side: int = 1) -> Image.Image:
    """Open `data` (headers only) within the accepted formats and sizes.

    The one place the store's and the matcher's limits live. Raises ImageRejected:
    `not_an_image`, `format_not_allowed`, `corrupt`, `too_small` (a side under `min_side`
    pixels), `too_many_pixels` (over `max_pixels`, or Pillow's decompression-bomb check).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "content is not a recognised image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", f"cannot open: {exc}") from None
    fmt = image.format or "?"
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected("format_not_allowed", f"{fmt} is not an accepted format")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt", "image has no pixels")
    if min(width, height) < min_side:
        raise ImageRejected(
            "too_small", f"{width}x{height} is below the {min_side}-pixel minimum width and height"
        )
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"{width}x{height} exceeds the {max_pixels}-pixel limit (possible decompression bomb)",
        )
    return image


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, min_side: int = 1
) -> DecodedImage:
    """Validate and normalise `data`; raise ImageRejected with the reason otherwise.

    `min_side`: the least width and height in pixels (reason `too_small` below it).
    """
    if not data:
        raise ImageRejected("empty", "zero-byte file")
    if len(data) > max_bytes:
        raise ImageRejected("too_large", f"{len(data)} bytes exceeds the {max_bytes} limit")
    image = open_image(data, max_pixels=max_pixels, min_side=min_side)
    fmt = image.format or "?"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)  # first frame of an animation
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected("corrupt", f"cannot decode: {exc}") from None
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not lose an otherwise good photo
        oriented = image
    rgb = to_rgb(oriented)
    plain, mirrored = perceptual_hash_pair(rgb)
    return DecodedImage(
        image=rgb,
        format="JPEG" if fmt == "MPO" else fmt,
        width=rgb.width,
        height=rgb.height,
        phash=plain,
        phash_mirror=mirrored,
    )


def load_rgb(data: bytes, *, max_bytes: int = 1 << 62, max_pixels: int = 1 << 40) -> Image.Image:
    """The normalised RGB picture of already-accepted bytes (what models should read)."""
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels).image
