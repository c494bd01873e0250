"""Content-addressed photo store shared by the catalogue, the crawler and the matchers.

A photo's file is named by the sha256 of its original bytes, so the same photo reached
from two listings (or a relisted lot) is stored once. Originals are kept byte-for-byte:
they are evidence, and a model can always re-derive normalised pixels from them. Every
write is checked first (`decode_image` under the size and pixel limits) and appears
atomically, so a reader never sees half a photo.

Two backends, chosen by `ARTWATCH_IMAGE_STORE` (`artwatch.images.backends`):

- a local directory (the default, `DATA_DIR/images/ab/cd/<sha256>`): temp file, fsync,
  rename; a crash leaves at most a stray temp file;
- an S3-compatible bucket (`s3://bucket/prefix`, e.g. MinIO), so matcher workers on other
  machines read what the crawler stored: one PUT per photo (S3 makes an object visible whole
  or not at all), with the sha256 checksum the server verifies before it accepts the bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from artwatch.images.backends import Backend, LocalBackend, backend_for
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
    path: Path | None  # the file, for the local backend; None in a bucket
    phash_mirror: int = 0  # pHash of the mirror image (`perceptual_hash_pair`)


def store_location(settings: Settings) -> str:
    """Where this configuration keeps photos: `s3://...` or a directory."""
    return settings.image_store or str(settings.images_dir)


DEFAULT_MIN_SIDE: int = Settings.model_fields["min_image_side"].default


class ImageStore:
    """Validate, normalise and keep photos under `<location>/ab/cd/<sha256>`."""

    def __init__(self, location: Path | str, *, max_bytes: int, max_pixels: int,
                 min_side: int = DEFAULT_MIN_SIDE, backend: Backend | None = None) -> None:
        self.backend = backend or backend_for(str(location))
        self.location = self.backend.location
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.min_side = min_side

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ImageStore:
        settings = settings or get_settings()
        return cls(
            store_location(settings),
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            min_side=settings.min_image_side,
            backend=backend_for(store_location(settings), settings),
        )

    @property
    def root(self) -> Path:
        """The directory of a local store (tests, tools); a bucket has none."""
        if not isinstance(self.backend, LocalBackend):
            raise TypeError(f"{self.location} is not a local directory")
        return self.backend.root

    @staticmethod
    def key_for(sha256: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path_for(self, sha256: str) -> Path:
        """The file of a photo in a local store."""
        return self.root / self.key_for(sha256)

    def contains(self, sha256: str) -> bool:
        return self.backend.exists(self.key_for(sha256))

    def decode(self, data: bytes) -> DecodedImage:
        """Check and normalise bytes under this store's limits (raises ImageRejected)."""
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels,
                            min_side=self.min_side)

    def put(self, data: bytes) -> StoredImage:
        """Store `data` if it is an acceptable photo; raise ImageRejected otherwise."""
        decoded = self.decode(data)
        sha = hashlib.sha256(data).hexdigest()
        key = self.key_for(sha)
        if not self.backend.exists(key):
            self.backend.write(key, data, sha)
        return StoredImage(
            sha256=sha,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            size_bytes=len(data),
            phash=decoded.phash,
            path=self.backend.local_path(key),
            phash_mirror=decoded.phash_mirror,
        )

    def read_bytes(self, sha256: str) -> bytes:
        """The original bytes; FileNotFoundError when the store has no such photo."""
        return self.backend.read(self.key_for(sha256))

    def open_rgb(self, sha256: str) -> Image.Image:
        """The normalised RGB picture of a stored photo."""
        return load_rgb(self.read_bytes(sha256))
