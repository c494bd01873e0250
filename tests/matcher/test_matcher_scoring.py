"""The calibrated decision's parts, by hand: whitening, fusion, duplicates, conformal
thresholds, operating points, mirror-aware photo hashes, geometric verification."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from artwatch.images.decode import hamming, perceptual_hash, perceptual_hash_pair
from matcher.scoring import (
    OperatingPointError,
    bucket_of,
    cell_of,
    duplicate_groups,
    fit_look,
    fuse_listing,
    listing_features,
    look_of,
    operating_point,
    photo_looks,
    split_cell,
    threshold_for,
)
from matcher.verify import extract, verify
from training.calibrate import conformal_threshold, promise
from training.whitening import fit_whitening


def test_whitening_suppresses_what_varies_within_an_object() -> None:
    """Objects differ a little in every direction; each photo varies a lot in a few nuisance
    directions (background, light). Raw cosine confuses them, the learned whitening does not."""
    rng = np.random.default_rng(0)
    d, objects, photos = 64, 30, 6
    centres = rng.normal(0, 1.0, (objects, d))
    nuisance = np.linalg.qr(rng.normal(size=(d, 6)))[0]  # 6 directions of large variation
    x, g = [], []
    for o in range(objects):
        for _ in range(photos):
            x.append(centres[o] + nuisance @ rng.normal(0, 6.0, 6) + rng.normal(0, 0.3, d))
            g.append(o)
    x, g = np.array(x), np.array(g)
    train = np.arange(len(x)) % photos < 4
    fit = fit_whitening(x[train], g[train], dim=29)
    assert fit.dim == 29  # between-object rank: objects - 1

    def nn_accuracy(emb: np.ndarray) -> float:
        q, r = emb[~train], emb[train]
        return float(np.mean(g[train][np.argmax(q @ r.T, 1)] == g[~train]))

    raw = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert nn_accuracy(raw) < 0.6
    assert nn_accuracy(fit.apply(x)) > 0.95
    with pytest.raises(ValueError, match="two objects"):
        fit_whitening(x[:5], np.zeros(5), dim=4)


def test_mirror_hash_is_the_hash_of_the_mirror_image() -> None:
    img = Image.new("RGB", (160, 120), (200, 190, 170))
    ImageDraw.Draw(img).ellipse((20, 30, 90, 110), fill=(90, 60, 30))
    plain, mirrored = perceptual_hash_pair(img)
    flipped = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert plain == perceptual_hash(img)
    assert mirrored == perceptual_hash(flipped)
    assert hamming(plain, perceptual_hash(flipped)) > 10  # the plain hash misses the mirror


SPEC = {"listing": {"features": ["best_logit", "support"], "mean": [0.0, 0.0],
                    "scale": [1.0, 1.0], "coef": [1.0, 1.5], "intercept": 0.0}}


def test_photos_that_agree_add_up_and_the_same_photo_twice_does_not() -> None:
    weak = [{7: 0.3, 8: 0.1}, {7: 0.35}, {7: 0.25, 9: 0.2}]
    alone = max(fuse_listing(SPEC, [w], [0])[7] for w in weak)
    together = fuse_listing(SPEC, weak, [0, 1, 2])
    assert together[7] > alone + 0.1
    assert together[7] > together[8] and together[7] > together[9]
    repeated = fuse_listing(SPEC, [weak[1]] * 3, [0, 0, 0])  # one picture three times
    assert repeated[7] == pytest.approx(fuse_listing(SPEC, [weak[1]], [0])[7])
    np.testing.assert_allclose(listing_features([0.5]), [0.0, 0.0], atol=1e-9)


def test_duplicate_groups_by_embedding_or_hash() -> None:
    e = np.eye(4, dtype=np.float32)
    e[1] = e[0] * 0.99 + e[1] * 0.1  # nearly the same embedding as photo 0
    e[1] /= np.linalg.norm(e[1])
    far = 0xFFFF0000FFFF0000
    groups = duplicate_groups(e, [0, (1 << 40) - 1, far, far ^ 1])  # 2 and 3: one bit apart
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]


def test_conformal_threshold_and_its_promise_by_hand() -> None:
    negatives = np.arange(1, 200) / 200.0  # 199 distinct scores
    cut, k = conformal_threshold(negatives, 0.05)
    # (k + 1) / (n + 1) <= 0.05 with n = 199 -> k = 9 negatives at or above the cut
    assert k == 9 and (k + 1) / 200 <= 0.05
    assert (negatives >= cut).sum() == 9
    p = promise(k, len(negatives))
    assert p["per_1000"] == pytest.approx(50.0)
    lo, hi = p["interval"]
    assert lo < 50.0 < hi and hi < 100.0
    cut, k = conformal_threshold(np.array([0.2, 0.4]), 0.001)  # too few for 1 in 1,000
    assert k == 0 and cut > 0.4
    assert promise(0, 2)["per_1000"] == pytest.approx(1000 / 3)


def test_operating_points_and_size_buckets() -> None:
    thresholds = {"operating_points": {
        "precision_0.95": {"buckets": {"1": 0.9, "2": 0.93, "3-4": 0.95, "5-8": 0.97}},
    }}
    with pytest.raises(OperatingPointError, match=r"precision_0\.9'.*valid: precision_0\.95"):
        operating_point(thresholds, "precision_0.9")
    point = operating_point(thresholds, "precision_0.95")
    assert [bucket_of(n) for n in (1, 2, 3, 4, 5, 8, 9)] == \
        ["1", "2", "3-4", "3-4", "5-8", "5-8", "9+"]
    assert threshold_for(point, 2) == 0.93
    assert threshold_for(point, 12) == 0.97  # beyond the calibrated sizes: the largest bucket
    assert threshold_for({"buckets": {}}, 1) == math.inf


def test_look_cells_choose_their_own_thresholds() -> None:
    # Catalogue-look photos sit apart from marketplace photos along a few embedding directions.
    rng = np.random.default_rng(3)
    catalogue = rng.normal(0, 1, (200, 8)) + np.r_[2.0, 0, 0, 0, 0, 0, 0, 0]
    marketplace = rng.normal(0, 1, (600, 8)) - np.r_[2.0, 0, 0, 0, 0, 0, 0, 0]
    spec = {"look": fit_look(catalogue, marketplace)}
    looks_c = photo_looks(spec, catalogue)
    looks_m = photo_looks(spec, marketplace)
    # Class-balanced: both kinds are recognised alike although marketplace photos outnumber
    assert np.mean(looks_c >= 0.5) > 0.9 and np.mean(looks_m < 0.5) > 0.9
    assert photo_looks({}, catalogue) is None and look_of(None) is None
    # The decisive photo's look is the listing's cell
    assert look_of(0.2) == "marketplace" and look_of(0.9) == "catalogue"
    assert bucket_of(3, "marketplace") == "3-4/marketplace"
    point = {"buckets": {"1/catalogue": 0.9, "1/marketplace": 0.6, "2/marketplace": 0.7}}
    assert threshold_for(point, 1, "catalogue") == 0.9
    assert threshold_for(point, 1, "marketplace") == 0.6
    # Larger than calibrated: the largest size of the same look, never the other look's
    assert threshold_for(point, 6, "marketplace") == 0.7
    assert threshold_for(point, 6, "catalogue") == 0.9
    assert cell_of(point, 6, "marketplace") == "2/marketplace"
    assert threshold_for({"buckets": {"1/catalogue": 0.9}}, 1, "marketplace") == math.inf
    # A collection's own cell where calibrated, within the cell the size and look choose; an
    # object from a collection calibration never saw is decided by the pooled cell
    point["buckets"]["2/marketplace@Coins"] = 0.8
    assert cell_of(point, 6, "marketplace", "Coins") == "2/marketplace@Coins"
    assert threshold_for(point, 2, "marketplace", "Coins") == 0.8
    assert threshold_for(point, 2, "marketplace", "Bronzes") == 0.7
    assert threshold_for(point, 1, "marketplace", "Coins") == 0.6
    assert split_cell("2/marketplace@Coins") == ("2", "marketplace", "Coins")
    assert split_cell("3-4") == ("3-4", None, None)
    assert split_cell("1@a@b") == ("1", None, "a@b")


def _textured(seed: int, size: int = 360) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (235, 232, 225))
    draw = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(4, 30))
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r, x + r // 2, y + r // 3), fill=colour)
    return img


def test_verification_finds_a_reused_photo_and_not_another() -> None:
    museum = _textured(1)
    crop = museum.crop((30, 20, 330, 320)).resize((500, 500))
    buf = io.BytesIO()
    crop.save(buf, "JPEG", quality=55)
    reused = Image.open(io.BytesIO(buf.getvalue()))
    same = verify(extract(reused), extract(museum))
    other = verify(extract(_textured(2)), extract(museum))
    assert same.h_inliers >= 40 and same.h_inliers > 5 * max(other.h_inliers, 1)
    assert same.features()[2] > 0.5  # inlier ratio
    mirrored = verify(extract(reused.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mirror=True),
                      extract(museum))
    assert mirrored.h_inliers >= 20  # matching the mirror image of a mirrored copy


def test_a_hash_near_every_catalogue_photo_adds_only_its_hash_candidates() -> None:
    """A blank picture's pHash is near every blank catalogue photo: the photo still gets its
    retrieval candidates plus PHASH_CANDIDATES hash-only ones (only the nearest rows are
    looked at: 256 such photos over a million-photo index took 57 s before)."""
    from matcher.evidence import CANDIDATES, PHASH_CANDIDATES, ReferenceSet, candidate_evidence

    rng = np.random.default_rng(0)
    n, q = 200_000, 4
    emb = rng.standard_normal((n, 32)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    refs = ReferenceSet(emb, np.arange(n) // 2, np.zeros(n, np.float32), np.zeros(n, np.uint64))
    zero = np.zeros(q, np.uint64)
    cands = candidate_evidence(emb[:q] + 0.01, refs, zero, zero, temperature=0.05)
    for row in cands.objects:
        chosen = row[row >= 0]
        assert len(chosen) == CANDIDATES + PHASH_CANDIDATES
        assert len(set(chosen.tolist())) == len(chosen)
    assert (cands.column("reuse")[cands.objects >= 0] == 1.0).all()  # every one is hash-near
