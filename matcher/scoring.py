"""One calibrated score per (listing, object), and the listing-level alert decision.

Shared by training (which fits every parameter here on out-of-fold data and sets the
thresholds) and the matcher (which applies them), so the decision served is the decision
calibrated. The bundle's `score` (bundle.json) holds:

* `temperature`: of the retrieval softmax (`matcher.evidence`);
* `global`: a logistic model of "this photo shows this object" on the global evidence of a
  candidate (`matcher.evidence.GLOBAL_FEATURES`: similarity, distractor-normalised similarity,
  margin, softmax probability, photo-reuse hash closeness). It scores every candidate;
* `verified`: the same with the geometric-verification features, for the `VERIFIED` best
  candidates of a photo whose best global probability reaches `verify_floor` (local features
  cost ~50 ms of CPU per photo, so photos that no candidate makes plausible are not verified;
  calibration applies exactly the same rule);
* `listing`: how photos add up. Photos of a listing that are the same picture (embedding cosine
  >= `duplicate_similarity` or pHash within `duplicate_phash` bits) count once; then for each
  object, with p_1 >= p_2 >= ... its probabilities over the distinct photos,
  `P(listing shows object) = sigmoid(a * logit(p_1) + b * support + c)`, `support =
  -sum_{i>=2} log(1 - p_i)` (the noisy-OR evidence of the other photos), `(a, b, c)` fitted on
  simulated listings of 1-8 photos.

Thresholds (`bundle.json["thresholds"]`) are per operating point and per listing size bucket
(`SIZE_BUCKETS`, distinct photos), each with the false-alert rate it promises and that rate's
interval; see `training.calibrate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matcher.evidence import FEATURES, VERIFIED

SIZE_BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 10_000))
P_FLOOR = 1e-6  # an object that is no candidate of a photo: practically no evidence from it
VERIFY_FLOOR = 0.02
DUPLICATE_SIMILARITY = 0.97
DUPLICATE_PHASH = 4
LISTING_FEATURES = ("best_logit", "support")


class ScoreSpecError(ValueError):
    """A bundle's score specification is missing or malformed."""


def bucket_of(n_photos: int) -> str:
    """The size bucket key ("1", "2", "3-4", "5-8", "9+") of a listing with n distinct photos."""
    n = max(1, int(n_photos))
    for lo, hi in SIZE_BUCKETS:
        if lo <= n <= hi:
            return str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10_000 else f"{lo}+")
    return "1"


def bucket_keys() -> list[str]:
    return [bucket_of(lo) for lo, _ in SIZE_BUCKETS]


# --- logistic models ---------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), P_FLOOR, 1.0 - P_FLOOR)
    return np.log(q) - np.log1p(-q)


def fit_logistic(x: np.ndarray, y: np.ndarray, names: Sequence[str], *, c: float = 1.0
                 ) -> dict[str, Any]:
    """L2-regularised logistic regression (scikit-learn, lbfgs) on standardised features.

    Returns a JSON-safe spec for `apply_logistic`. Raises ScoreSpecError when `y` has one class.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.int64)
    if len(np.unique(y)) < 2:
        raise ScoreSpecError(f"cannot fit a score on {len(y)} rows of one class")
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-9] = 1.0
    model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return {
        "features": list(names),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }


def apply_logistic(spec: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Probabilities for feature rows `x` (... x len(spec["features"]))."""
    x = np.asarray(x, np.float64)
    z = ((x - np.asarray(spec["mean"])) / np.asarray(spec["scale"])) @ np.asarray(spec["coef"])
    return _sigmoid(z + float(spec["intercept"]))


def _columns(names: Sequence[str]) -> list[int]:
    return [FEATURES.index(n) for n in names]


# --- photos --------------------------------------------------------------------------------


def check_spec(spec: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The bundle's score spec, or ScoreSpecError naming what is missing."""
    if not spec or spec.get("kind") != "calibrated-evidence":
        raise ScoreSpecError(
            "the bundle has no calibrated evidence score (train it again with this version)"
        )
    for key in ("temperature", "global", "listing"):
        if key not in spec:
            raise ScoreSpecError(f"the bundle's score lacks {key!r}")
    return spec


def global_probabilities(spec: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """(n x c) probabilities from the global evidence only."""
    g = spec["global"]
    return apply_logistic(g, features[..., _columns(g["features"])])


def verifiable(objects: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(n x c) candidates that may be verified: the VERIFIED most similar, and hash hits.

    Calibration computes local-feature evidence for exactly these, so the matcher never
    verifies a candidate of a kind the score was not fitted on.
    """
    columns = np.arange(objects.shape[1])[None, :] < VERIFIED
    hashed = features[..., FEATURES.index("reuse")] > 0
    return (objects >= 0) & (columns | hashed)


def verification_targets(
    spec: Mapping[str, Any], objects: np.ndarray, p_global: np.ndarray,
    eligible: np.ndarray | None = None,
) -> list[tuple[int, int]]:
    """(photo, candidate) pairs to verify: the best VERIFIED eligible candidates (by global
    probability) of photos whose best global probability reaches the floor. (Whether a
    verified model exists to use them is the caller's business: training asks before it has
    one.)"""
    floor = float(spec.get("verify_floor", VERIFY_FLOOR))
    if eligible is None:
        eligible = objects >= 0
    out = []
    for qi in range(len(objects)):
        valid = np.flatnonzero(eligible[qi])
        if len(valid) == 0 or p_global[qi, valid].max() < floor:
            continue
        order = valid[np.argsort(-p_global[qi, valid], kind="stable")]
        out += [(qi, int(ci)) for ci in order[:VERIFIED]]
    return out


def photo_probabilities(
    spec: Mapping[str, Any], features: np.ndarray, objects: np.ndarray
) -> np.ndarray:
    """(n x c) calibrated P(photo shows candidate): the verified model where verification ran."""
    p = global_probabilities(spec, features)
    verified = features[..., FEATURES.index("verified")] > 0
    if verified.any() and "verified" in spec:
        v = spec["verified"]
        p = np.where(verified, apply_logistic(v, features[..., _columns(v["features"])]), p)
    return np.where(objects >= 0, p, 0.0)


# --- listings ------------------------------------------------------------------------------


def duplicate_groups(
    embeddings: np.ndarray,
    phashes: Sequence[int],
    *,
    similarity: float = DUPLICATE_SIMILARITY,
    bits: int = DUPLICATE_PHASH,
) -> list[int]:
    """Group id per photo of one listing: photos that are the same picture share a group."""
    n = len(phashes)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    emb = np.asarray(embeddings, np.float32)
    sims = emb @ emb.T if n else np.zeros((0, 0))
    for i in range(n):
        for j in range(i + 1, n):
            close = ((int(phashes[i]) ^ int(phashes[j])) & ((1 << 64) - 1)).bit_count() <= bits
            if close or sims[i, j] >= similarity:
                parent[find(i)] = find(j)
    roots = {r: k for k, r in enumerate(dict.fromkeys(find(i) for i in range(n)))}
    return [roots[find(i)] for i in range(n)]


def listing_features(probabilities: Sequence[float]) -> np.ndarray:
    """[logit of the best photo's probability, noisy-OR support of the other photos]."""
    p = np.sort(np.clip(np.asarray(probabilities, np.float64), P_FLOOR, 1.0 - P_FLOOR))[::-1]
    if len(p) == 0:
        return np.array([logit(P_FLOOR), 0.0])
    return np.array([float(logit(p[0])), float(-np.log1p(-p[1:]).sum())])


def listing_probability(spec: Mapping[str, Any], probabilities: Sequence[float]) -> float:
    """P(listing shows the object) from its distinct photos' probabilities of that object."""
    return float(apply_logistic(spec["listing"], listing_features(probabilities)[None, :])[0])


def fuse_listing(
    spec: Mapping[str, Any], photo_scores: Sequence[Mapping[int, float]], groups: Sequence[int]
) -> dict[int, float]:
    """{object: listing probability} from per-photo {object: probability} and duplicate groups.

    A group (the same picture several times) contributes its best probability per object once.
    """
    per_group: dict[int, dict[int, float]] = {}
    for scores, g in zip(photo_scores, groups, strict=True):
        target = per_group.setdefault(g, {})
        for obj, p in scores.items():
            target[obj] = max(target.get(obj, 0.0), float(p))
    objects = {obj for scores in per_group.values() for obj in scores}
    return {
        obj: listing_probability(spec, [s.get(obj, P_FLOOR) for s in per_group.values()])
        for obj in objects
    }


# --- thresholds ----------------------------------------------------------------------------


class OperatingPointError(ValueError):
    """The configured operating point is not one the bundle calibrated."""


def operating_point(thresholds: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The calibrated point `name`; OperatingPointError lists the valid names."""
    points = thresholds.get("operating_points") or {}
    if name not in points:
        valid = ", ".join(sorted(points)) or "none"
        raise OperatingPointError(
            f"operating point {name!r} is not in the bundle (ARTWATCH_MATCH_OPERATING_POINT; "
            f"valid: {valid})"
        )
    return points[name]


def threshold_for(point: Mapping[str, Any], n_photos: int) -> float:
    """The point's listing-score threshold for a listing of `n_photos` distinct photos."""
    buckets = point.get("buckets") or {}
    value = buckets.get(bucket_of(n_photos))
    if value is None:  # the largest calibrated bucket covers bigger listings
        value = next((buckets[k] for k in reversed(bucket_keys()) if buckets.get(k) is not None),
                     None)
    return math.inf if value is None else float(value)
