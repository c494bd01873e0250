"""Content-addressed photo store shared by the catalogue and the crawler.

A photo's file is named by the sha256 of its original bytes, so the same photo reached
from two listings (or a relisted lot) is stored once. Originals are kept byte-for-byte:
they are evidence, and a model can always re-derive normalised pixels from them. Files
appear atomically (temp file, fsync, rename), so a reader never sees half a photo and a
crash leaves at most a stray temp file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from artwatch.files import write_atomic
from artwatch.images.decode import DecodedImage, decode_image, load_rgb
from artwatch.settings import Settings, get_settings


@dataclass(frozen=True)
class StoredImage:
    """A photo accepted into the store, with what the `images` table records."""

    sha256: str
    format: str
    width: int
    height: int
    size_bytes: int
    phash: int
    path: Path


DEFAULT_MIN_SIDE: int = Settings.model_fields["min_image_side"].default


class ImageStore:
    """Validate, normalise and keep photos under `root/ab/cd/<sha256>`."""

    def __init__(
        self, root: Path, *, max_bytes: int, max_pixels: int, min_side: int = DEFAULT_MIN_SIDE
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.min_side = min_side

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ImageStore:
        settings = settings or get_settings()
        return cls(
            settings.images_dir,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            min_side=settings.min_image_side,
        )

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def contains(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def decode(self, data: bytes) -> DecodedImage:
        """Check and normalise bytes under this store's limits (raises ImageRejected)."""
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels,
                            min_side=self.min_side)

    def put(self, data: bytes) -> StoredImage:
        """Store `data` if it is an acceptable photo; raise ImageRejected otherwise."""
        decoded = self.decode(data)
        sha = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha)
        if not path.is_file():
            write_atomic(path, data)
        return StoredImage(
            sha256=sha,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            size_bytes=len(data),
            phash=decoded.phash,
            path=path,
        )

    def read_bytes(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def open_rgb(self, sha256: str) -> Image.Image:
        """The normalised RGB picture of a stored photo."""
        return load_rgb(self.read_bytes(sha256))
