"""Geometric verification of a candidate with local features: the evidence a reviewer can see.

A global embedding says "looks like"; matching local features and fitting a geometric model says
"these are the same physical surface", and it survives what global embeddings do not: a new
background, clutter around a small object, a printed object photographed with a phone.

Method (OpenCV 4): SIFT keypoints (Lowe, IJCV 2004) described as RootSIFT (Arandjelovic &
Zisserman, CVPR 2012: L1-normalise, square root, so Euclidean distance is the Hellinger kernel),
Lowe's ratio test (0.8) on the two nearest neighbours, then two robust fits with MAGSAC++
(Barath et al., CVPR 2020; `cv2.USAC_MAGSAC`):

* a homography: a flat object (coin, tablet face, print) or a re-used photo (crop, rescale);
* a fundamental matrix: a 3-D object seen from a moderately different angle.

Unrelated photos also reach a few inliers (repeated texture, a plain backdrop's corners,
symmetric shapes), so no count is a verdict: `Verification.features()` (inlier counts, inlier
ratio, spatial spread of the inliers) enters the calibrated score (`matcher.scoring`), which
learns from out-of-fold negatives what unrelated photos reach.

A look at colour goes with it (`colour_signature`, `colour_gap`): SIFT sees grey levels, and a
global embedding tuned to tell catalogued objects apart may not keep the hue that tells a red
bowl from the same bowl in blue (on COIL-100 a red and a blue torus were the uncatalogued
photos that set the 1% false-alert point). The signature is a saturation-weighted hue
histogram of the photo's chromatic pixels (circularly smoothed, so a white-balance shift moves
little mass); the gap is one minus the Bhattacharyya coefficient of two signatures, 0 when
either photo is achromatic (a grey object, a black-and-white archive photo: no evidence
either way). Like the inliers it is evidence the calibrated score weighs, never a verdict: a
listing's coloured background dilutes it, and the score learns by how much from the
out-of-fold listing views.

Catalogue photos are matched at `MAX_SIDE` pixels (longer side, enlarged or reduced), so
catalogue photos of any size give comparable counts. A listing photo larger than that keeps up
to `QUERY_SIDE` pixels (`query_side`): a coin or a print photographed small on a cluttered table
is a few dozen pixels at 480 and a hundred or two at 720, and its surface needs them (phone
photos of flat objects, `benchmarks/flat_objects.py`, 2026-11-30: VLAD's top-20 re-ranked by
inliers, top-1 0.52 -> 0.64, correct and accepted at 1% false alerts 0.49 -> 0.61; 960 pixels
added 0.03 at twice the cost). The homography threshold is in the reference photo's pixels, so
it means the same at any query size. `MAX_KEYPOINTS` and `QUERY_KEYPOINTS` bound the cost (~25
ms to extract a catalogue photo, ~80-120 ms a large listing photo, ~2-4 ms per pair to match,
on one core).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from PIL import Image

MAX_SIDE = 480  # catalogue photos' longer side when matched
MAX_KEYPOINTS = 500
QUERY_SIDE = 720  # at most, for listing photos larger than MAX_SIDE
QUERY_KEYPOINTS = 1000
RATIO = 0.8
MIN_MATCHES = 8  # fewer tentative matches than this: nothing to fit
HOMOGRAPHY_PX = 6.0  # MAGSAC++ threshold at MAX_SIDE
FUNDAMENTAL_PX = 3.0
FEATURE_NAMES = ("log_h_inliers", "log_f_inliers", "h_ratio", "h_spread", "colour_gap")
HUE_BINS = 18  # 20 degrees of hue each
COLOUR_SIDE = 96  # the signature is computed on a thumbnail this long
CHROMA_SATURATION = 60  # OpenCV 8-bit HSV: a pixel with S and V above these has a hue
CHROMA_VALUE = 50
MIN_CHROMATIC = 0.02  # share of chromatic pixels below which a photo has no colour signature

cv2.setNumThreads(1)  # callers parallelise over photos; nested pools only contend


def _no_colour() -> np.ndarray:
    return np.zeros(HUE_BINS, np.float32)


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (n x 2, at `size`), RootSIFT descriptors (n x 128 uint8), and the
    photo's colour signature (`HUE_BINS`,) summing to 1, all zero when achromatic."""

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]  # (width, height) the points refer to
    colour: np.ndarray = field(default_factory=_no_colour)

    def __len__(self) -> int:
        return int(len(self.points))

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "points": self.points.astype(np.float32),
            "descriptors": self.descriptors.astype(np.uint8),
            "size": np.asarray(self.size, np.int32),
            "colour": np.asarray(self.colour, np.float32),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LocalFeatures:
        """Raises KeyError for arrays written before colour signatures (extract again)."""
        size = tuple(int(v) for v in arrays["size"])
        return cls(arrays["points"], arrays["descriptors"], (size[0], size[1]),
                   np.asarray(arrays["colour"], np.float32))


EMPTY = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.uint8), (1, 1))


def colour_signature(image: Image.Image) -> np.ndarray:
    """(HUE_BINS,) saturation-weighted hue histogram of the chromatic pixels, summing to 1;
    all zero when under MIN_CHROMATIC of the pixels have a hue (grey, black and white)."""
    thumb = image.convert("RGB")
    scale = COLOUR_SIDE / max(thumb.size)
    if scale < 1.0:
        thumb = thumb.resize((max(1, round(thumb.width * scale)),
                              max(1, round(thumb.height * scale))), Image.Resampling.BILINEAR)
    hsv = cv2.cvtColor(np.asarray(thumb, np.uint8), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    chroma = (hsv[:, 1] > CHROMA_SATURATION) & (hsv[:, 2] > CHROMA_VALUE)
    if chroma.mean() < MIN_CHROMATIC:
        return _no_colour()
    hist = np.bincount(hsv[chroma, 0].astype(np.int64) * HUE_BINS // 180,
                       weights=hsv[chroma, 1].astype(np.float64), minlength=HUE_BINS)
    hist = 0.5 * hist + 0.25 * (np.roll(hist, 1) + np.roll(hist, -1))  # hue is circular
    return (hist / hist.sum()).astype(np.float32)


def colour_gap(a: np.ndarray, b: np.ndarray) -> float:
    """1 - Bhattacharyya coefficient of two colour signatures, in [0, 1]; 0 (no evidence)
    when either is achromatic."""
    if not a.any() or not b.any():
        return 0.0
    return float(np.clip(1.0 - np.sqrt(np.asarray(a, np.float64) * b).sum(), 0.0, 1.0))


_sift: dict[int, cv2.SIFT] = {}


def _detector(keypoints: int) -> cv2.SIFT:
    if keypoints not in _sift:
        _sift[keypoints] = cv2.SIFT_create(nfeatures=keypoints)
    return _sift[keypoints]


def query_side(size: tuple[int, int], limit: int = QUERY_SIDE) -> int:
    """The longer side, in pixels, a listing photo of `size` (width, height) is matched at:
    its own between MAX_SIDE and `limit`, MAX_SIDE below (enlarged, as catalogue photos are),
    `limit` above. `limit` MAX_SIDE matches it as a catalogue photo (bundles calibrated before
    QUERY_SIDE existed)."""
    return min(limit, max(MAX_SIDE, max(size)))


def matching_info() -> dict[str, int]:
    """bundle.json's `local_matching`: the sizes a bundle's verification evidence was
    calibrated at (`Bundle.query_side` serves its queries at the same)."""
    return {"reference_side": MAX_SIDE, "reference_keypoints": MAX_KEYPOINTS,
            "query_side": QUERY_SIDE, "query_keypoints": QUERY_KEYPOINTS}


def extract_query(image: Image.Image, limit: int = QUERY_SIDE) -> LocalFeatures:
    """RootSIFT features of a listing (query) photo: at `query_side`, up to QUERY_KEYPOINTS."""
    side = query_side(image.size, limit)
    return extract(image, side=side,
                   keypoints=QUERY_KEYPOINTS if limit > MAX_SIDE else MAX_KEYPOINTS)


def _detect(image: Image.Image, side: int, keypoints: int, mirror: bool
            ) -> tuple[LocalFeatures, np.ndarray]:
    """`extract`'s features and their keypoints' detector responses (n,), strongest first."""
    colour = colour_signature(image)
    grey = image.convert("L")
    scale = side / max(grey.size)
    if abs(scale - 1.0) > 0.01:
        grey = grey.resize(
            (max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
            Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
    if mirror:
        grey = grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(grey, np.uint8)
    found, desc = _detector(keypoints).detectAndCompute(pixels, None)
    if desc is None or not found:
        return LocalFeatures(EMPTY.points, EMPTY.descriptors, grey.size, colour), np.zeros(0)
    points = np.array([k.pt for k in found], np.float32)
    response = np.array([k.response for k in found], np.float64)
    angle = np.array([k.angle for k in found], np.float64)
    # One order whatever the detector's internal sorting left: strongest first (then by
    # position and orientation: a keypoint with two orientations is two), so that the same
    # keypoints always meet verification's sampling in one order.
    order = np.lexsort((angle, points[:, 1], points[:, 0], -response))
    desc = desc[order].astype(np.float32)
    desc /= np.maximum(desc.sum(1, keepdims=True), 1e-7)  # L1
    root = np.sqrt(desc)  # unit L2 norm now; * 255 fits uint8 without loss that matters
    return LocalFeatures(points[order], np.clip(np.rint(root * 255.0), 0, 255).astype(np.uint8),
                         grey.size, colour), response[order]


def extract(image: Image.Image, *, side: int = MAX_SIDE, keypoints: int = MAX_KEYPOINTS,
            mirror: bool = False) -> LocalFeatures:
    """RootSIFT features of a photo, resized so that its longer side is `side` pixels (a
    catalogue photo: MAX_SIDE; a listing photo: `extract_query`), at most `keypoints` of them
    (OpenCV keeps the strongest by detector response), strongest first.

    Small photos are enlarged too: keypoint counts and the pixel thresholds of the robust fits
    then mean the same for a 128-pixel museum thumbnail and a 4000-pixel phone photo.
    """
    return _detect(image, side, keypoints, mirror)[0]


def extract_both(image: Image.Image) -> tuple[LocalFeatures, LocalFeatures]:
    """(`extract_query(image)`, `extract(image)`): a catalogue photo as training uses it, a
    query and a reference at once. A photo no longer than MAX_SIDE is matched at MAX_SIDE
    either way, and OpenCV's SIFT keeps the strongest keypoints of one detection (ties
    included), so the reference's are the query's strongest: one detection gives both."""
    if query_side(image.size) != MAX_SIDE:
        return extract_query(image), extract(image)
    query, response = _detect(image, MAX_SIDE, QUERY_KEYPOINTS, False)
    if len(response) <= MAX_KEYPOINTS:
        return query, query
    keep = int(np.count_nonzero(response >= response[MAX_KEYPOINTS - 1]))
    return query, LocalFeatures(query.points[:keep], query.descriptors[:keep], query.size,
                                query.colour)


@dataclass(frozen=True)
class Verification:
    """Outcome of matching a query photo against one reference photo."""

    tentative: int  # matches passing the ratio test
    h_inliers: int
    f_inliers: int
    spread: float  # inliers' bounding-box area / query photo area, 0..1
    homography: np.ndarray | None
    inlier_pairs: np.ndarray  # (k x 4): query x, y, reference x, y of the homography inliers
    colour_gap: float = 0.0  # `colour_gap` of the two photos' signatures

    def features(self) -> np.ndarray:
        """[log1p(H inliers), log1p(F inliers), H inliers / tentative, spread, colour gap]
        (float64), as FEATURE_NAMES."""
        ratio = self.h_inliers / self.tentative if self.tentative else 0.0
        return np.array([np.log1p(self.h_inliers), np.log1p(self.f_inliers), ratio,
                         self.spread, self.colour_gap], np.float64)


NOTHING = Verification(0, 0, 0, 0.0, None, np.zeros((0, 4), np.float32))
_matcher = cv2.BFMatcher(cv2.NORM_L2)


def _fit(method: str, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    try:
        if method == "H":
            model, mask = cv2.findHomography(
                src, dst, cv2.USAC_MAGSAC, HOMOGRAPHY_PX, maxIters=2000, confidence=0.999
            )
        else:
            model, mask = cv2.findFundamentalMat(
                src, dst, cv2.USAC_MAGSAC, FUNDAMENTAL_PX, 0.999, 2000
            )
    except cv2.error:
        return None, np.zeros(len(src), bool)
    if model is None or mask is None:
        return None, np.zeros(len(src), bool)
    return model, mask.ravel().astype(bool)


def verify(query: LocalFeatures, reference: LocalFeatures) -> Verification:
    """Ratio-test matches and MAGSAC++ homography / fundamental-matrix inliers, and the
    photos' colour gap."""
    gap = colour_gap(query.colour, reference.colour)
    if len(query) < 2 or len(reference) < 2:
        return replace(NOTHING, colour_gap=gap)
    pairs = _matcher.knnMatch(
        query.descriptors.astype(np.float32), reference.descriptors.astype(np.float32), k=2
    )
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < RATIO * n.distance]
    if len(good) < MIN_MATCHES:
        return Verification(len(good), 0, 0, 0.0, None, np.zeros((0, 4), np.float32), gap)
    src = np.float32([query.points[m.queryIdx] for m in good])
    dst = np.float32([reference.points[m.trainIdx] for m in good])
    homography, h_mask = _fit("H", src, dst)
    _, f_mask = _fit("F", src, dst)
    inliers = src[h_mask]
    spread = 0.0
    if len(inliers) >= 4:
        w, h = query.size
        lo, hi = inliers.min(0), inliers.max(0)
        spread = float(np.clip((hi - lo).prod() / max(1.0, w * h), 0.0, 1.0))
    return Verification(
        tentative=len(good),
        h_inliers=int(h_mask.sum()),
        f_inliers=int(f_mask.sum()),
        spread=spread,
        homography=homography,
        inlier_pairs=np.hstack([src[h_mask], dst[h_mask]]).astype(np.float32),
        colour_gap=gap,
    )


def best_verification(query: LocalFeatures, references: list[LocalFeatures]
                      ) -> tuple[int, Verification]:
    """(index, verification) of the reference photo with the most homography (then
    fundamental) inliers, the first on ties; (-1, NOTHING) without references."""
    best_index, best = -1, NOTHING
    for i, reference in enumerate(references):
        result = verify(query, reference)
        if best_index < 0 or (result.h_inliers, result.f_inliers) > (best.h_inliers,
                                                                      best.f_inliers):
            best_index, best = i, result
    return best_index, best
