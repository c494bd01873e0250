"""The colour gap: a colour variant of a catalogued shape is evidence against the match, the
same object in another light and on another background is not, and a grey photo says
nothing (`matcher.verify.colour_signature`, `colour_gap`)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from artwatch.demo.marketplace import colour_variant, simulate_listing_photo
from matcher.catalogue_index import cached_local_features, local_cache_path
from matcher.verify import FEATURE_NAMES, colour_gap, colour_signature, extract, verify


def _bowl(colour: tuple[int, int, int], size: int = 320) -> Image.Image:
    """A studio photo: a glazed ring-shaped bowl on a grey sweep, with a highlight."""
    img = Image.new("RGB", (size, size), (128, 128, 130))
    draw = ImageDraw.Draw(img)
    draw.ellipse((50, 90, 270, 230), fill=colour)
    draw.ellipse((120, 135, 200, 185), fill=(128, 128, 130))
    draw.ellipse((80, 100, 130, 125), fill=tuple(min(255, c + 90) for c in colour))
    return img


def test_a_colour_variant_has_a_large_gap_the_same_object_listed_a_small_one() -> None:
    red, blue = _bowl((190, 40, 30)), _bowl((40, 60, 185))
    assert colour_gap(colour_signature(red), colour_signature(blue)) > 0.9
    listed = [simulate_listing_photo([red], np.random.default_rng(seed)) for seed in range(6)]
    gaps = [colour_gap(colour_signature(red), colour_signature(p)) for p in listed]
    assert np.median(gaps) < 0.3 and max(gaps) < 0.6, gaps
    blue_listed = [colour_gap(colour_signature(red), colour_signature(
        simulate_listing_photo([blue], np.random.default_rng(seed)))) for seed in range(6)]
    # A listing's coloured background dilutes the signature (one of these six reads ~0.4):
    # evidence for the calibrated score to weigh, not a verdict.
    assert np.median(blue_listed) > 0.7 > np.median(gaps), (blue_listed, gaps)


def test_a_made_colour_variant_is_another_colour_on_the_same_grey_backdrop() -> None:
    """`colour_variant` (the negative example training shows the photo score): the object in
    another hue, far in colour, the backdrop and a grey photo untouched; `training.views`
    keeps a photo's variant as a negative only where it differs in colour."""
    from training.views import variant_view

    red = _bowl((190, 40, 30))
    for seed in range(4):
        turned = colour_variant(red, np.random.default_rng(seed))
        assert colour_gap(colour_signature(red), colour_signature(turned)) > 0.9
        backdrop = np.subtract(turned.getpixel((5, 5)), red.getpixel((5, 5)))
        assert np.abs(backdrop).max() <= 3, "a grey backdrop stays grey"
        assert variant_view(red, np.random.default_rng(seed), 160)[1]
    grey = _bowl((90, 90, 90)).convert("L").convert("RGB")
    assert np.array_equal(np.asarray(colour_variant(grey, np.random.default_rng(0))),
                          np.asarray(grey))
    assert not variant_view(grey, np.random.default_rng(0), 160)[1]


def test_a_grey_photo_has_no_colour_signature_and_no_gap() -> None:
    grey = _bowl((90, 90, 90)).convert("L").convert("RGB")  # a black-and-white archive photo
    assert not colour_signature(grey).any()
    assert colour_gap(colour_signature(grey), colour_signature(_bowl((190, 40, 30)))) == 0.0
    signature = colour_signature(_bowl((190, 40, 30)))
    assert abs(float(signature.sum()) - 1.0) < 1e-5


def test_verification_reports_the_colour_gap_even_without_keypoints() -> None:
    """Plain surfaces give SIFT nothing; the colour gap still counts."""
    red = Image.new("RGB", (200, 200), (200, 30, 30))
    blue = Image.new("RGB", (200, 200), (30, 30, 200))
    result = verify(extract(red), extract(blue))
    assert result.h_inliers == 0
    assert result.features()[FEATURE_NAMES.index("colour_gap")] > 0.9
    assert verify(extract(red), extract(red)).colour_gap == 0.0


def test_a_cached_file_from_before_colour_signatures_is_extracted_again(tmp_path) -> None:  # noqa: ANN001
    """Local features cached by an earlier version lack the signature: they are extracted
    again (and the cache rewritten), never served with a made-up colour."""
    photo = _bowl((190, 40, 30))
    old = extract(photo).to_arrays()
    del old["colour"]
    path = local_cache_path(tmp_path, "ab" * 32)
    np.savez(path, **old)
    features = cached_local_features(tmp_path, "ab" * 32, lambda: photo)
    assert features is not None and features.colour.any()
    with np.load(path) as data:
        assert "colour" in data.files
    assert cached_local_features(tmp_path, "ab" * 32, None).colour.any()  # now from the cache
