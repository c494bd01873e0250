"""Simulated auction listings for a catalogue: photos of catalogued objects and of distractors.

For a generated catalogue the object is re-photographed from a new viewpoint (it was never
photographed that way by the museum) and then dressed as a dealer's photo; for any other
catalogue (e.g. real COIL-100 photos) one of its catalogue photos is used as the source.
`listings.csv` says which object each photo shows, or "none" for objects in no catalogue.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .artefacts import DISTRACTOR_STREAM, object_spec
from .catalogue import pool_context, read_manifest, worker_init
from .distractors import distractor_spec, render_with_mask
from .marketplace import MarketplaceConfig, simulate_listing

NONE = "none"
LISTING_FIELDS = (
    "image",
    "object_id",
    "source",
    "collection",
    "source_image",
    "n_objects",
    "background",
    "effects",
)
_STREAM = 7  # generator stream for listing choices (independent of objects and views)


@dataclass(frozen=True)
class ListingRow:
    """One simulated listing photo and the truth about it."""

    image: str  # relative to the listings directory
    object_id: str  # catalogued object shown, or "none"
    source: str  # "catalogue-render", "catalogue-photo" or "distractor"
    collection: str
    source_image: str  # the catalogue photo used, when one was
    n_objects: int
    background: str
    effects: str


@lru_cache(maxsize=4)
def _catalogue_objects(catalogue_dir: Path) -> tuple[list[str], dict[str, list[dict[str, str]]]]:
    """Objects of a catalogue (read once per worker process)."""
    rows = read_manifest(catalogue_dir / "manifest.csv")
    by_obj: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_obj[r["object_id"]].append(r)
    return sorted(by_obj), by_obj


def _catalogue_seed(by_obj: dict[str, list[dict[str, str]]]) -> int | None:
    for rows in by_obj.values():
        if rows[0].get("gen_seed", "") != "":
            return int(rows[0]["gen_seed"])
    return None


def _make_one(args: tuple) -> ListingRow:
    """Worker task: listing photo `i` (all choices from generator (seed, stream, i))."""
    i, seed, catalogue_dir, out_dir, distractor_share, rerender, quality = args
    cat = Path(catalogue_dir)
    ids, by_obj = _catalogue_objects(cat)
    rng = np.random.default_rng([seed, _STREAM, i])
    gen_seed = _catalogue_seed(by_obj)
    dseed = gen_seed if gen_seed is not None else seed
    cfg = MarketplaceConfig()
    images: list[Image.Image] = []
    masks: list[Image.Image | None] = []
    others: list[Image.Image] = []
    other_masks: list[Image.Image | None] = []
    source_image = ""
    if rng.random() < distractor_share or not ids:
        spec = distractor_spec(dseed, i)
        img, mask = render_with_mask(spec, rng)
        images.append(img)
        masks.append(mask)
        object_id, source, collection = NONE, "distractor", spec.collection
    else:
        object_id = ids[int(rng.integers(0, len(ids)))]
        rows = by_obj[object_id]
        first = rows[0]
        collection = first.get("collection", "")
        if rerender and first.get("gen_seed", "") != "":
            spec = object_spec(
                int(first["gen_seed"]),
                int(first["gen_index"]),
                int(first.get("gen_stream", 0) or 0),
            )
            if spec.object_id != object_id:
                raise ValueError(
                    f"manifest row for {object_id} does not match generator ({spec.object_id})"
                )
            img, mask = render_with_mask(spec, rng)
            images.append(img)
            masks.append(mask)
            source = "catalogue-render"
        else:
            pick = rows[int(rng.integers(0, len(rows)))]
            source_image = pick["image"]
            images.append(Image.open(cat / pick["image"]).convert("RGB"))
            masks.append(None)
            source = "catalogue-photo"
    if rng.random() < cfg.p_multi:  # other, uncatalogued objects in the same photo
        for k in range(int(rng.integers(1, 3))):
            other = distractor_spec(dseed, 1_000_000 + i * 4 + k)
            img, mask = render_with_mask(other, rng)
            others.append(img)
            other_masks.append(mask)
    photo = simulate_listing(
        images, rng, masks=masks, config=cfg, others=others, other_masks=other_masks
    )
    name = f"images/L{i:05d}.jpg"
    photo.image.save(Path(out_dir) / name, "JPEG", quality=quality)
    return ListingRow(
        name,
        object_id,
        source,
        collection,
        source_image,
        photo.n_objects,
        photo.background,
        ";".join(photo.effects),
    )


def generate_listings(
    out_dir: str | Path,
    catalogue_dir: str | Path,
    count: int,
    seed: int = 0,
    distractor_share: float = 0.5,
    rerender: bool = True,
    workers: int = 2,
    quality: int = 90,
    progress: Callable[[int, int], None] | None = None,
) -> list[ListingRow]:
    """Write `count` listing photos and `listings.csv` into `out_dir`.

    `distractor_share` of them show objects in no catalogue ("none"). With `rerender`, objects
    of a generated catalogue are photographed anew; otherwise catalogue photos are reused.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    cat = Path(catalogue_dir)
    if not (cat / "manifest.csv").exists():
        raise FileNotFoundError(f"no manifest.csv in {cat}")
    tasks = [
        (i, seed, str(cat), str(out), distractor_share, rerender, quality) for i in range(count)
    ]
    rows: list[ListingRow] = []
    if workers <= 1 or count <= 1:
        for i, t in enumerate(tasks):
            rows.append(_make_one(t))
            if progress:
                progress(i + 1, count)
    else:
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=pool_context(), initializer=worker_init
        ) as pool:
            for i, row in enumerate(pool.map(_make_one, tasks, chunksize=1)):
                rows.append(row)
                if progress:
                    progress(i + 1, count)
    with open(out / "listings.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=LISTING_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: str(v) for k, v in asdict(r).items()})
    return rows


__all__ = ["DISTRACTOR_STREAM", "LISTING_FIELDS", "NONE", "ListingRow", "generate_listings"]
