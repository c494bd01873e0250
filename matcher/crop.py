"""Where the object is in a photo, from the backbone's own activations: a crop to recognise.

A listing photo shows the object on a table, a carpet or a hand, often small; a catalogue photo
shows it filling a plain frame. Pooling the whole listing photo mixes the surroundings into the
embedding. The backbone already says where the object is: its last feature map is strong on
the object and weak on plain or blurred surroundings.

Method (SCDA: Wei, Luo, Wu & Zhou, "Selective Convolutional Descriptor Aggregation for
Fine-Grained Image Retrieval", IEEE TIP 2017): sum the last feature map over its channels,
keep the positions above the map's mean, take the largest 8-connected component and its
bounding box; here the box is grown by a margin and mapped back to the original photo's pixels
so the crop is re-embedded at full resolution (the object gets the model's whole input).

What it buys is measured, not assumed (`benchmarks/object_crop.py`, the recognition
benchmark's photos, pretrained kNN, 2026-11-30): every photo embedded from its crop reads
listing-style top-1 +3.5 / +2.0 points (COIL-100 / generated catalogue), phone photos of the
object small on a busy surface +8.5 / +12.5, studio photos +0.2 / +0.3; pooling the first
pass's map over the mask alone (no second pass) keeps under half of that.

Served for queries only (`cropped_features`): a listing photo whose box covers less than
`CROP_BELOW` of it is embedded from the crop; catalogue photos stay whole (cropping them too
added nothing through a trained bundle). The same function embeds the calibration's query
images in training (`training.views`) and listing photos in the matcher
(`matcher.inference`), so the calibrated score learns from what it is served. A bundle says
so in bundle.json (`query_crop`); bundles without it are served whole photos, as calibrated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from matcher.preprocess import Preprocess

MARGIN = 0.15  # of the box's width / height, on each side: context at the object's edge
# A box covering at least this share of the photo is the whole photo for recognition: the
# object already fills it (a studio or museum photo), and a second pass would embed nearly
# the same pixels again.
CROP_BELOW = 0.9


@dataclass(frozen=True)
class Box:
    """A crop in the original photo's pixels (left, top, right, bottom; right/bottom
    exclusive) and the share of the photo's area it covers."""

    left: int
    top: int
    right: int
    bottom: int
    area_share: float

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) as `PIL.Image.crop` takes it."""
        return self.left, self.top, self.right, self.bottom


def activation_energy(feature_map: np.ndarray) -> np.ndarray:
    """(h, w) float64: a (channels, h, w) feature map summed over its channels, what SCDA
    selects the object by (and what a reviewer's picture shows, `matcher.overlay`).
    Raises ValueError for a map of another shape."""
    if feature_map.ndim != 3:
        raise ValueError(f"feature map must be (channels, h, w), got shape {feature_map.shape}")
    return np.asarray(feature_map, dtype=np.float64).sum(axis=0)


def activation_mask(feature_map: np.ndarray) -> np.ndarray:
    """(h, w) bool: SCDA's selected positions of a (channels, h, w) feature map.

    The channel sum above its mean, then only the largest 8-connected component (small
    bright spots elsewhere are clutter). A flat map (no position above the mean) selects
    everything: no evidence of where the object is, so the whole photo.
    """
    energy = activation_energy(feature_map)
    mask = energy > energy.mean()
    if not mask.any():
        return np.ones_like(mask)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    return mask


def object_box(feature_map: np.ndarray, photo_size: tuple[int, int], input_size: int,
               fitted_size: tuple[int, int], margin: float = MARGIN) -> Box:
    """The object's box in the original photo, from the feature map of its model input.

    `feature_map`: (channels, h, w), the backbone's last map for the `input_size` square
    input the photo was fitted into (`matcher.preprocess.Preprocess.fit`: resized to
    `fitted_size` (width, height), centred, padded); `photo_size`: the original (width,
    height). The box is grown by `margin` of its size on each side and clipped to the photo.
    """
    mask = activation_mask(feature_map)
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    cell_x, cell_y = input_size / w, input_size / h
    x0, x1 = xs.min() * cell_x, (xs.max() + 1) * cell_x
    y0, y1 = ys.min() * cell_y, (ys.max() + 1) * cell_y
    grow_x, grow_y = margin * (x1 - x0), margin * (y1 - y0)
    fitted_w, fitted_h = fitted_size
    offset_x, offset_y = (input_size - fitted_w) / 2, (input_size - fitted_h) / 2
    width, height = photo_size
    scale = width / fitted_w
    left = int(np.clip(np.floor((x0 - grow_x - offset_x) * scale), 0, width - 1))
    top = int(np.clip(np.floor((y0 - grow_y - offset_y) * scale), 0, height - 1))
    right = int(np.clip(np.ceil((x1 + grow_x - offset_x) * scale), left + 1, width))
    bottom = int(np.clip(np.ceil((y1 + grow_y - offset_y) * scale), top + 1, height))
    return Box(left, top, right, bottom, (right - left) * (bottom - top) / (width * height))


def crop_info() -> dict[str, object]:
    """What a bundle records as `query_crop` when its queries are embedded from their crops."""
    return {"method": "SCDA", "margin": MARGIN, "crop_below": CROP_BELOW}


def query_box(feature_map: np.ndarray, photo_size: tuple[int, int],
              preprocess: Preprocess) -> Box | None:
    """The crop a query photo is recognised from, or None for the whole photo (the box covers
    `CROP_BELOW` of it or more). `feature_map` as in `object_box`, for the photo fitted by
    `preprocess`; `photo_size`: the photo's (width, height) in pixels."""
    box = object_box(feature_map, photo_size, preprocess.resolution,
                     preprocess.fitted_size(*photo_size))
    return box if box.area_share < CROP_BELOW else None


def cropped_features(
    pooled: np.ndarray,
    maps: np.ndarray,
    sizes: Sequence[tuple[int, int] | None],
    load: Callable[[int], Image.Image | None],
    preprocess: Preprocess,
    pool: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, list[Box | None]]:
    """Query photos' served pooled features: each photo's own, or its object crop's.

    `pooled` (n x d) and `maps` (n x c x h x w): the first pass over the photos' model inputs;
    `sizes[i]`: photo i's (width, height), None to keep it whole; `load(i)`: photo i at full
    resolution (None when it cannot be read now: kept whole); `pool`: model-input pixels
    (m x R x R x 3 uint8) -> pooled features (m x d), the same backbone and number format as
    the first pass. Returns (features n x d float32, boxes: each photo's crop in its full
    picture's pixels, None where whole). Training's views step and the matcher both call this,
    so calibration sees queries exactly as they are served.
    """
    out = np.array(pooled, dtype=np.float32, copy=True)
    boxes: list[Box | None] = [None] * len(out)
    rows, pixels = [], []
    for i, size in enumerate(sizes):
        box = None if size is None else query_box(maps[i], size, preprocess)
        if box is None:
            continue
        image = load(i)
        if image is None:
            continue
        if image.size != size:  # the box belongs to the size the pixels really have
            box = query_box(maps[i], image.size, preprocess)
            if box is None:
                continue
        rows.append(i)
        boxes[i] = box
        pixels.append(preprocess.fit(image.crop(box.as_tuple())))
    if rows:
        out[rows] = pool(np.stack(pixels))
    return out, boxes
