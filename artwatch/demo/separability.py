"""How hard is a catalogue? Colour-histogram nearest-neighbour identification as a yardstick.

A generated catalogue is only a useful test bed if a trivial method can neither fail nor
succeed completely: views of one object should be nearer each other than other objects are,
yet objects of one collection (same ware, same palette) should not be told apart by colour
alone. Leave-one-out 1-NN over joint RGB histograms measures both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image


def colour_histogram(image: Image.Image, bins: int = 8) -> np.ndarray:
    """Joint RGB histogram of the whole photo (bins^3 cells), summing to 1."""
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8).reshape(-1, 3).astype(np.int64)
    q = arr * bins // 256
    idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    h = np.bincount(idx, minlength=bins**3).astype(np.float64)
    return h / h.sum()


@dataclass(frozen=True)
class Separability:
    """Leave-one-out 1-NN results over photos (L1 distance between colour histograms)."""

    photos: int
    objects: int
    nn_accuracy: float  # nearest other photo (any collection) shows the same object
    within_collection_accuracy: float  # nearest other photo of the same collection
    chance_within_collection: float  # expected accuracy of a random same-collection guess
    mean_same_object: float  # mean distance between two views of one object
    mean_same_collection: float  # ... between photos of different objects, same collection
    mean_other: float  # ... between photos of different objects, any collection


def histogram_separability(
    hists: np.ndarray, object_ids: Sequence[str], collections: Sequence[str]
) -> Separability:
    """Measure identification by colour histogram; objects need at least two photos."""
    h = np.asarray(hists, dtype=np.float64)
    obj = np.asarray(object_ids)
    col = np.asarray(collections)
    d = np.abs(h[:, None, :] - h[None, :, :]).sum(axis=-1)
    n = len(h)
    np.fill_diagonal(d, np.inf)
    same_obj = obj[:, None] == obj[None, :]
    same_col = col[:, None] == col[None, :]
    off = ~np.eye(n, dtype=bool)
    nn = np.argmin(d, axis=1)
    acc = float(np.mean(obj[nn] == obj))
    d_col = np.where(same_col, d, np.inf)
    nn_col = np.argmin(d_col, axis=1)
    acc_col = float(np.mean(obj[nn_col] == obj))
    # Chance: other views of the query's object among all other photos of its collection.
    chance = float(np.mean((same_obj & off).sum(1) / np.maximum((same_col & off).sum(1), 1)))
    finite = np.isfinite(d)
    return Separability(
        photos=n,
        objects=len(set(obj.tolist())),
        nn_accuracy=acc,
        within_collection_accuracy=acc_col,
        chance_within_collection=chance,
        mean_same_object=float(d[same_obj & off & finite].mean()),
        mean_same_collection=float(d[same_col & ~same_obj & finite].mean()),
        mean_other=float(d[~same_obj & finite].mean()),
    )


def catalogue_separability(
    rows: Sequence[dict[str, str]], root: str, bins: int = 8
) -> Separability:
    """Separability of a catalogue directory from its manifest rows (dicts)."""
    from pathlib import Path

    hists = np.stack([colour_histogram(Image.open(Path(root) / r["image"]), bins) for r in rows])
    return histogram_separability(
        hists, [r["object_id"] for r in rows], [r["collection"] for r in rows]
    )
