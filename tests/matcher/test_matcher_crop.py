"""The object box from backbone activations (`matcher.crop`, SCDA)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from matcher.crop import CROP_BELOW, activation_mask, cropped_features, object_box, query_box
from matcher.overlay import BOX_COLOUR, HEIGHT, activation_overlay
from matcher.preprocess import Preprocess

PRE = Preprocess(224, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def _map_with_object() -> np.ndarray:
    """(8, 7, 7): an object at rows 1-3, columns 4-6, and one bright clutter cell apart."""
    fmap = np.full((8, 7, 7), 0.1)
    fmap[:, 1:4, 4:7] = 2.0
    fmap[:, 6, 0] = 3.0
    return fmap


def test_the_mask_keeps_only_the_largest_component_above_the_mean() -> None:
    mask = activation_mask(_map_with_object())
    expected = np.zeros((7, 7), bool)
    expected[1:4, 4:7] = True
    assert (mask == expected).all()


def test_the_box_is_mapped_back_through_the_padding_to_the_original_photo() -> None:
    # A 448 x 224 photo fitted into 224: 224 x 112, padded 56 pixels above and below.
    box = object_box(_map_with_object(), (448, 224), 224, (224, 112), margin=0.0)
    # Columns 4-6 of 7 (input x 128-224) -> photo x 256-448; rows 1-3 (input y 32-128) ->
    # photo y (32-56)*2 < 0, clipped to 0, to (128-56)*2 = 144.
    assert box.as_tuple() == (256, 0, 448, 144)
    assert box.area_share == pytest.approx(192 * 144 / (448 * 224))
    grown = object_box(_map_with_object(), (448, 224), 224, (224, 112))
    assert grown.left < 256 and grown.bottom > 144 and grown.right == 448


def test_a_flat_map_is_no_evidence_and_keeps_the_whole_photo() -> None:
    box = object_box(np.ones((4, 7, 7)), (300, 200), 224, (224, 149), margin=0.0)
    assert box.as_tuple() == (0, 0, 300, 200) and box.area_share == 1.0


def test_a_map_of_the_wrong_shape_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="channels, h, w"):
        activation_mask(np.ones((7, 7)))


def test_a_box_covering_nearly_all_the_photo_is_the_whole_photo() -> None:
    assert query_box(np.ones((4, 7, 7)), (300, 200), PRE) is None  # share 1.0
    box = query_box(_map_with_object(), (224, 224), PRE)
    assert box is not None and box.area_share < CROP_BELOW


def test_cropped_features_embed_the_crop_cut_from_the_full_photo() -> None:
    """Photo 0 has an object top right (a red square on grey), photo 1 a flat map (whole),
    photo 2 a box but no picture now (whole): only photo 0's row is replaced, by the pooled
    features of pixels cut from its full-size picture."""
    photo = Image.new("RGB", (448, 448), (128, 128, 128))
    photo.paste((255, 0, 0), (256, 32, 448, 128))
    maps = np.stack([_map_with_object(), np.ones((8, 7, 7)), _map_with_object()])
    pooled = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    seen: list[np.ndarray] = []

    def pool(pixels: np.ndarray) -> np.ndarray:
        seen.append(pixels)
        return np.full((len(pixels), 4), -1.0, np.float32)

    feats, boxes = cropped_features(pooled, maps, [(448, 448), (448, 448), (448, 448)],
                                    lambda i: photo if i == 0 else None, PRE, pool)
    assert boxes[0] is not None and boxes[1:] == [None, None]
    # rows 1-3, columns 4-6 of 7 at 224 (y 32-128, x 128-224), grown 15% and clipped, in
    # the 448-pixel photo: the top right
    assert boxes[0].as_tuple() == (227, 35, 448, 285)
    assert (feats[0] == -1.0).all() and (feats[1:] == pooled[1:]).all()
    (crop,) = seen[0]
    assert crop.shape == (224, 224, 3)
    red = (crop[..., 0] > 200) & (crop[..., 1] < 50)
    assert red.mean() > 0.25  # the red object fills much of the crop, a small part of the photo
    assert pooled[0, 0] == 0.0  # the caller's array is not written to


def test_the_activation_picture_shows_where_the_model_looked_and_the_box_it_used() -> None:
    """The reviewer's picture: heat over the object's cells, the recognition box in green."""
    photo = Image.new("RGB", (448, 448), (128, 128, 128))
    png = activation_overlay(photo, _map_with_object(), PRE, (256, 32, 448, 224), True)
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int32)
    assert shown.shape == (HEIGHT, HEIGHT, 3)
    s = HEIGHT / 448

    def at(x: int, y: int) -> np.ndarray:  # a pixel of the photo, in the picture
        return shown[round(y * s), round(x * s)]

    hot, cold = at(352, 128), at(64, 352)  # inside the object's cells; plain surroundings
    assert hot[0] - hot[2] > 80  # red-yellow heat over the object
    assert abs(int(cold[0]) - 128) < 12 and abs(int(cold[2]) - 128) < 12  # the photo, untinted
    edge = shown[round(128 * s), round(256 * s) + 1]  # the box's left edge
    assert tuple(edge) == BOX_COLOUR


def test_the_activation_picture_says_when_the_whole_photo_was_recognised() -> None:
    photo = Image.new("RGB", (300, 200), (200, 200, 200))
    whole = activation_overlay(photo, _map_with_object(), PRE, None, False)
    unknown = activation_overlay(photo, _map_with_object(), PRE, None, None)
    assert Image.open(io.BytesIO(whole)).size == (HEIGHT * 3 // 2, HEIGHT)
    assert whole != unknown  # a different label: the reviewer is not told what is not known
    green = np.all(np.asarray(Image.open(io.BytesIO(whole)).convert("RGB")) == BOX_COLOUR, -1)
    assert not green.any()  # no box drawn
    with pytest.raises(ValueError, match="channels, h, w"):
        activation_overlay(photo, np.zeros((7, 7)), PRE, None, None)
