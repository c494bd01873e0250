"""Objects that are in no catalogue: the listings a correct system must *not* alert on.

Most real listings show objects no museum has lost. They are drawn here from the same
collections, styles and shape families as the catalogue (same seed, so the same invented
scripts and palettes), but from a separate index stream, so no distractor can coincide with a
catalogue object however many objects either side generates.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .artefacts import DISTRACTOR_STREAM, ObjectSpec, build_artefact, object_spec, random_view
from .marketplace import MarketplaceConfig, simulate_listing_photo
from .render import render


def distractor_spec(seed: int, index: int) -> ObjectSpec:
    """Spec of distractor `index` for a catalogue generated with `seed`."""
    return object_spec(seed, index, DISTRACTOR_STREAM)


def render_with_mask(
    spec: ObjectSpec, rng: np.random.Generator, size: int = 384
) -> tuple[Image.Image, Image.Image]:
    """A new photograph of a generated object from a random viewpoint, with its exact mask."""
    art = build_artefact(spec)
    return render(art, random_view(spec, rng), size, 2, return_mask=True)


def distractor_photos(
    count: int, seed: int = 0, size: int = 256, start: int = 0
) -> list[tuple[ObjectSpec, Image.Image]]:
    """Studio photographs of `count` uncatalogued objects (index start .. start+count-1)."""
    out = []
    for i in range(start, start + count):
        spec = distractor_spec(seed, i)
        rng = np.random.default_rng([seed, DISTRACTOR_STREAM, i, 17])
        img, _ = render_with_mask(spec, rng, size)
        out.append((spec, img))
    return out


def distractor_listing_photos(
    count: int, seed: int = 0, start: int = 0, config: MarketplaceConfig | None = None
) -> list[tuple[ObjectSpec, Image.Image]]:
    """Auction-listing photos of `count` uncatalogued objects."""
    out = []
    for i in range(start, start + count):
        spec = distractor_spec(seed, i)
        rng = np.random.default_rng([seed, DISTRACTOR_STREAM, i, 18])
        img, mask = render_with_mask(spec, rng)
        out.append((spec, simulate_listing_photo([img], rng, masks=[mask], config=config)))
    return out
