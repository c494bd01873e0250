"""Listing photos are matched at up to QUERY_SIDE pixels: a small flat object keeps its surface."""

from __future__ import annotations

import numpy as np
from PIL import Image

from matcher.verify import (
    MAX_KEYPOINTS,
    MAX_SIDE,
    QUERY_SIDE,
    extract,
    extract_both,
    extract_query,
    query_side,
    verify,
)


def test_the_query_side_keeps_a_large_photos_pixels_up_to_the_limit() -> None:
    assert query_side((128, 96)) == MAX_SIDE, "small photos are enlarged as catalogue photos are"
    assert query_side((600, 400)) == 600, "between the two sizes a photo keeps its own"
    assert query_side((4000, 3000)) == QUERY_SIDE
    assert query_side((4000, 3000), MAX_SIDE) == MAX_SIDE, "an older bundle's limit"
    assert max(extract_query(Image.new("RGB", (2000, 1000))).size) == QUERY_SIDE
    assert max(extract_query(Image.new("RGB", (2000, 1000)), MAX_SIDE).size) == MAX_SIDE


def _print(rng: np.random.Generator, side: int) -> Image.Image:
    """A flat printed object: blocky random texture (many corners), `side` pixels square."""
    cells = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((side, side), Image.Resampling.NEAREST)


def test_a_small_print_in_a_large_photo_is_verified_at_the_listing_size() -> None:
    rng = np.random.default_rng(3)
    catalogue = _print(rng, 480)
    clutter = Image.fromarray(rng.integers(90, 166, (96, 128, 3), dtype=np.uint8)).resize(
        (1600, 1200), Image.Resampling.BICUBIC)
    clutter.paste(catalogue.resize((150, 150), Image.Resampling.LANCZOS), (700, 500))
    reference = extract(catalogue)
    large = verify(extract_query(clutter), reference)
    small = verify(extract_query(clutter, MAX_SIDE), reference)
    assert large.h_inliers >= 12, large
    assert large.h_inliers > 2 * max(small.h_inliers, 1), (large.h_inliers, small.h_inliers)
    other = verify(extract_query(clutter), extract(_print(np.random.default_rng(4), 480)))
    assert other.h_inliers < large.h_inliers / 2, "another print does not match so"


def test_a_catalogue_photo_detected_once_gives_its_query_and_reference_features() -> None:
    """Training's `extract_both` is `extract_query` and `extract` exactly: keypoints, order,
    descriptors. A small photo (matched at MAX_SIDE both ways, more keypoints than a reference
    keeps: its strongest are the reference) is detected once; a large one twice."""
    rng = np.random.default_rng(5)
    for side in (300, 900):  # below MAX_SIDE; above it (query at its own size, reference at 480)
        cells = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)  # finer: many keypoints
        photo = Image.fromarray(cells).resize((side, side), Image.Resampling.NEAREST)
        query, reference = extract_both(photo)
        for got, want in ((query, extract_query(photo)), (reference, extract(photo))):
            assert got.size == want.size
            assert np.array_equal(got.points, want.points)
            assert np.array_equal(got.descriptors, want.descriptors)
        assert MAX_KEYPOINTS <= len(reference) < len(query), "the limits (and ties) differ"
