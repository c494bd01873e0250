"""Photos -> model inputs for training and evaluation.

Without augmentation (the paper's setting) each photo is decoded and resized once and kept as a
small uint8 array, so epochs cost only the network. With `--augment marketplace` the project's
marketplace photo simulator (artwatch.demo) re-renders the original photo every time it is
drawn, then the same preprocessing applies; validation and test photos are never augmented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from matcher.preprocess import Preprocess
from training.catalogue import Photo

Augment = Callable[[Image.Image, np.random.Generator], Image.Image]


def marketplace_augment(output_size: int | None = None) -> Augment:
    """The demo package's marketplace photo simulator as a per-photo augmentation.

    `output_size` caps the simulated photo (square, pixels) so augmentation costs little more
    than the network; the model's preprocessing then resizes it like any listing photo.
    """
    try:
        from artwatch.demo import simulate_listing_photo
    except ImportError as exc:
        raise RuntimeError(
            "--augment marketplace needs artwatch.demo.simulate_listing_photo, "
            "which this installation lacks"
        ) from exc

    def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        result = simulate_listing_photo([image], rng, output_size=output_size)
        return result.convert("RGB") if result.mode != "RGB" else result

    return augment


def get_augment(name: str, resolution: int | None = None) -> Augment | None:
    """`none` (the paper's setting) or `marketplace` (listing-photo simulation)."""
    if name == "none":
        return None
    if name == "marketplace":
        return marketplace_augment(2 * resolution if resolution else None)
    raise ValueError(f"unknown augmentation {name!r} (none, marketplace)")


class PixelCache:
    """Resized, padded uint8 pixels of photos, computed once per photo."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.preprocess = preprocess
        self._cache: dict[str, np.ndarray] = {}

    def get(self, photo: Photo) -> np.ndarray:
        pixels = self._cache.get(photo.key)
        if pixels is None:
            pixels = self.preprocess.fit(photo.load())
            self._cache[photo.key] = pixels
        return pixels

    def stack(self, photos: Sequence[Photo]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.get(p) for p in photos]))


def iterate_batches(
    photos: Sequence[Photo],
    batch_size: int,
    cache: PixelCache,
    *,
    order: Sequence[int] | None = None,
    augment: Augment | None = None,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(indices, normalised float batch) in `order`, augmenting originals when asked."""
    indices = list(order) if order is not None else list(range(len(photos)))
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        if augment is None:
            pixels = cache.stack([photos[i] for i in chunk])
        else:
            assert rng is not None
            pixels = torch.from_numpy(
                np.stack([cache.preprocess.fit(augment(photos[i].load(), rng)) for i in chunk])
            )
        yield chunk, cache.preprocess.normalise(pixels)
