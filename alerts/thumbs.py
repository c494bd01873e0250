"""Small JPEG thumbnails of stored photos, for e-mails and the review pages.

A digest shows hundreds of photos; sending the originals would make a 100 MB e-mail and
re-decoding them for every digest would be slow, so each (photo, size) is reduced once and
kept under `data_dir/thumbs/`. A photo that is missing or unreadable yields None and the
page shows a placeholder: one broken file must not stop a digest.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image, ImageOps

from artwatch.files import write_atomic
from artwatch.images import ImageStore
from artwatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

SIZES = (96, 160, 240, 480)  # the only sizes served, so the cache cannot be filled at will
DEFAULT_SIZE = 160


def clamp_size(size: int) -> int:
    """The smallest allowed size at least `size` (the largest if none is)."""
    for allowed in SIZES:
        if size <= allowed:
            return allowed
    return SIZES[-1]


class Thumbnailer:
    """Make and cache thumbnails of ImageStore photos."""

    def __init__(self, store: ImageStore, cache_dir: Path) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Thumbnailer:
        settings = settings or get_settings()
        return cls(ImageStore.from_settings(settings), settings.data_dir / "thumbs")

    def _cache_path(self, sha256: str, size: int) -> Path:
        return self.cache_dir / str(size) / sha256[:2] / f"{sha256}.jpg"

    def thumbnail(self, sha256: str, size: int = DEFAULT_SIZE) -> bytes | None:
        """JPEG bytes at most `size` pixels on the long side, or None if unavailable."""
        size = clamp_size(size)
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            return None
        cached = self._cache_path(sha256, size)
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            pass
        try:
            data = self._render(sha256, size)
        except Exception as exc:  # missing file, corrupt photo: a placeholder, not a crash
            log.warning("thumbnail of %s unavailable: %s", sha256, exc)
            return None
        write_atomic(cached, data, durable=False)  # a cache: rebuilt if lost
        return data

    def _render(self, sha256: str, size: int) -> bytes:
        with Image.open(io.BytesIO(self.store.read_bytes(sha256))) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at reduced scale, much faster
            image.seek(0)
            picture = (ImageOps.exif_transpose(image) or image).convert("RGB")
        picture.thumbnail((size, size), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=80, optimize=False)
        return out.getvalue()
