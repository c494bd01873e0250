"""Photos: validation and decoding of untrusted image bytes, and the content-addressed store."""

from artwatch.images.decode import DecodedImage, ImageRejected, decode_image, load_rgb
from artwatch.images.store import ImageStore, StoredImage

__all__ = [
    "DecodedImage",
    "ImageRejected",
    "ImageStore",
    "StoredImage",
    "decode_image",
    "load_rgb",
]
