"""Photo bytes for the local auction house, made on first request and kept in memory.

Lots that show a catalogued object get a marketplace-style photo of it: the demo
package's simulator (`artwatch.demo.simulate_listing_photo`: new view, background, crop,
watermark) applied to the object's catalogue photos. Other lots get a procedural distractor.
Every photo is a pure function of its key, so two crawls (or a relisted lot) see the same
bytes, which is what lets the crawler's store deduplicate them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

PhotoMaker = Callable[[str, "str | None"], bytes]


def _rng_for(key: str) -> random.Random:
    return random.Random(hashlib.sha256(key.encode()).digest())


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def distractor_photo(key: str, size: tuple[int, int] = (320, 240)) -> bytes:
    """A procedural 'some other object' photo: a lit shape on a tabletop background."""
    rng = _rng_for(key)
    width, height = size
    bg = tuple(rng.randrange(150, 250) for _ in range(3))
    image = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, int(height * 0.7), width, height], fill=tuple(c - 40 for c in bg))
    colour = tuple(rng.randrange(20, 200) for _ in range(3))
    cx, cy = width // 2 + rng.randrange(-40, 40), height // 2 + rng.randrange(-20, 20)
    w, h = rng.randrange(40, width // 3), rng.randrange(40, height // 2)
    if rng.random() < 0.5:
        draw.ellipse([cx - w, cy - h, cx + w, cy + h], fill=colour)
    else:
        points = [(cx + rng.randrange(-w, w), cy + rng.randrange(-h, h)) for _ in range(6)]
        draw.polygon(points, fill=colour)
    for _ in range(rng.randrange(3, 9)):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(2, 12)
        shade = tuple(min(255, c + rng.randrange(0, 60)) for c in colour)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=shade)
    return _jpeg(image.filter(ImageFilter.GaussianBlur(0.6)))


class Catalogue:
    """A generated catalogue directory (`manifest.csv` + photos) the house draws lots from."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        manifest = self.directory / "manifest.csv"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest}: no catalogue manifest")
        self.images: dict[str, list[Path]] = {}
        with manifest.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                self.images.setdefault(row["object_id"], []).append(
                    self.directory / row["image"]
                )

    @property
    def accessions(self) -> list[str]:
        return sorted(self.images)

    def listing_photo(self, accession: str, key: str, size: tuple[int, int]) -> bytes:
        """A marketplace photo of a catalogued object (the demo simulator when present)."""
        rng = _rng_for(key)
        sources = [Image.open(p).convert("RGB") for p in self.images[accession]]
        try:
            import numpy as np

            from artwatch.demo import simulate_listing_photo  # type: ignore[attr-defined]
        except ImportError:
            simulate_listing_photo = None
        if simulate_listing_photo is not None:
            picture = simulate_listing_photo(
                sources, np.random.default_rng(rng.getrandbits(64)), output_size=max(size)
            )
            if not isinstance(picture, Image.Image):
                picture = Image.fromarray(np.asarray(picture))
        else:  # a plain re-photograph: another crop and size of one catalogue photo
            picture = rng.choice(sources)
            w, h = picture.size
            dx, dy = int(w * rng.uniform(0, 0.1)), int(h * rng.uniform(0, 0.1))
            picture = picture.crop((dx, dy, w - dx, h - dy))
        picture.thumbnail((max(size), max(size)))
        return _jpeg(picture, quality=rng.randrange(75, 92))


def rendered_distractor_photo(key: str, object_key: str, size: tuple[int, int]) -> bytes:
    """A listing photo of a generated object in no catalogue (the demo package's renderer).

    Photos of one lot (same `object_key`) show the same object from different viewpoints.
    """
    import numpy as np

    from artwatch.demo.distractors import distractor_spec, render_with_mask
    from artwatch.demo.marketplace import simulate_listing_photo

    index = int(hashlib.sha256(object_key.encode()).hexdigest()[:8], 16) % 1_000_000
    rng = np.random.default_rng(_rng_for(key).getrandbits(64))
    image, mask = render_with_mask(distractor_spec(0, index), rng)
    picture = simulate_listing_photo([image], rng, masks=[mask], output_size=max(size))
    picture.thumbnail((max(size), max(size)))
    return _jpeg(picture)


def huge_photo() -> bytes:
    """A small file that decodes to 100 megapixels (what a decompression bomb looks like)."""
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000), 0).save(out, "PNG", optimize=True)
    return out.getvalue()


class PhotoCache:
    """Thread-safe memo of photo bytes by key (the server answers from many threads)."""

    def __init__(
        self, catalogue: Catalogue | None, size: tuple[int, int],
        rendered_distractors: bool | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.size = size
        # Rendered 3-D distractors look real but take ~0.5 s each: the demo (which has a
        # catalogue) uses them, tests and benchmarks use the instant procedural ones.
        self.rendered_distractors = (
            catalogue is not None if rendered_distractors is None else rendered_distractors
        )
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str, shows: str | None) -> bytes:
        with self._lock:
            data = self._cache.get(key)
        if data is None:
            if key == "huge":
                data = huge_photo()
            elif shows and self.catalogue is not None and shows in self.catalogue.images:
                data = self.catalogue.listing_photo(shows, key, self.size)
            elif self.rendered_distractors:
                data = rendered_distractor_photo(key, key.rsplit("-", 1)[0], self.size)
            else:
                data = distractor_photo(key, self.size)
            with self._lock:
                self._cache[key] = data
        return data
