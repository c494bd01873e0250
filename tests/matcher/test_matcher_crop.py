"""The object box from backbone activations (`matcher.crop`, SCDA)."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.crop import activation_mask, object_box


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
