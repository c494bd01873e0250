"""Generated museum catalogue, marketplace photo simulator and distractors.

Tests must pass on a fresh clone with no outside data, and the demo must run on a machine with
no museum photos. This package makes both possible: procedurally generated museum objects
(vessels, plates, figurines, coins, tablets) rendered like museum photography, the same objects
dressed up as auction-listing photos, and objects in no catalogue that must not raise alerts.
Everything is deterministic from a seed.

Main entry points (see each module for details):

* `generate_catalogue(out_dir, n_objects, seed)` -> manifest rows (catalogue.py)
* `object_spec(seed, i)`, `build_artefact(spec)`, `plan_views(spec)` (artefacts.py)
* `render_object_view(spec, view, size)` -> PIL image (render.py)
* `simulate_listing_photo(images, rng)`, `MarketplaceTransform(seed)`, `reuse_copy(image, rng)`,
  `hash_twin(layout, detail)`, `colour_variant(image, rng)` (marketplace.py)
* `distractor_photos(count, seed)`, `distractor_listing_photos(count, seed)` (distractors.py)
* `generate_listings(out_dir, catalogue_dir, count, seed)` (listings.py)
* `make_contact_sheet(out_png, seed)` (contact_sheet.py)
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy exports: importing a sibling package (e.g. artwatch.demo.auction_house) or the CLI must
# not pay for numpy/scipy/Pillow imports it does not use.
_EXPORTS = {
    "CATALOGUE_STREAM": "artefacts",
    "COLLECTIONS": "artefacts",
    "DISTRACTOR_STREAM": "artefacts",
    "ObjectSpec": "artefacts",
    "View": "artefacts",
    "build_artefact": "artefacts",
    "object_spec": "artefacts",
    "photo_count": "artefacts",
    "plan_views": "artefacts",
    "CatalogueRow": "catalogue",
    "generate_catalogue": "catalogue",
    "object_photos": "catalogue",
    "read_manifest": "catalogue",
    "distractor_listing_photos": "distractors",
    "distractor_photos": "distractors",
    "distractor_spec": "distractors",
    "ListingRow": "listings",
    "generate_listings": "listings",
    "MarketplaceConfig": "marketplace",
    "MarketplaceTransform": "marketplace",
    "colour_variant": "marketplace",
    "hash_twin": "marketplace",
    "reuse_copy": "marketplace",
    "segment_object": "marketplace",
    "simulate_listing": "marketplace",
    "simulate_listing_photo": "marketplace",
    "render_object_view": "render",
    "make_contact_sheet": "contact_sheet",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
