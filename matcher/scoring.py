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
  calibration applies exactly the same rule): a logistic model, or monotone boosted trees
  (`model`: "trees", `matcher.boosted`) where training found them better out of fold;
* `listing`: how photos add up. Photos of a listing that are the same picture (embedding cosine
  >= `duplicate_similarity` or pHash within `duplicate_phash` bits) count once; then for each
  object, with p_1 >= p_2 >= ... its probabilities over the distinct photos,
  `P(listing shows object) = sigmoid(a * logit(p_1) + b * support + c)`, `support =
  -sum_{i>=2} log(1 - p_i)` (the noisy-OR evidence of the other photos), `(a, b, c)` fitted on
  simulated listings of 1-8 photos.

* `look` (optional): a logistic model of "this photo looks like a catalogue photo" (plain
  museum studio shot, or a museum photo re-used) rather than a marketplace photo, on the
  photo's embedding. A listing whose decisive photo (the one showing its best object best)
  looks like a catalogue photo is in the `catalogue` cell, else in the `marketplace` cell:
  the two kinds of listing reach different scores when they show no
  catalogued object (a studio photo of a near-alike object scores higher than a dealer's
  snapshot of it), so each gets thresholds set on negatives of its own kind (Mondrian
  conformal prediction, Vovk et al. 2005), and a promise that holds for it.

Thresholds (`bundle.json["thresholds"]`) are per operating point and per calibration cell: the
listing's size bucket (`SIZE_BUCKETS`, distinct photos) and, when the score has a `look`, its
look cell (keys "1/marketplace", "3-4/catalogue", ...), each with the false-alert rate it
promises and that rate's interval; see `training.calibrate`. A catalogue of several
collections also has a cell per collection within each of those ("1/catalogue@Coins": the
listing's best candidate is in the collection "Coins"): a collection photographed unlike the
others has negatives unlike theirs, and its cut is never below the pooled cell's, so both the
pooled promise and the collection's hold (`cell_of`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matcher.boosted import apply_trees
from matcher.evidence import FEATURES, LOCAL_CANDIDATES, VERIFIED, local_nominated

SIZE_BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 10_000))
P_FLOOR = 1e-6  # an object that is no candidate of a photo: practically no evidence from it
VERIFY_FLOOR = 0.02
DUPLICATE_SIMILARITY = 0.97
DUPLICATE_PHASH = 4
LISTING_FEATURES = ("best_logit", "support")
LOOKS = ("catalogue", "marketplace")
COLLECTION_SEP = "@"  # "<size>[/<look>]@<collection>": a collection's own cell
LOOK_CUT = 0.5  # P(catalogue look) from a class-balanced model: the Bayes cut at equal priors
PHOTO_MODELS = ("logistic", "trees")  # the verified model's kinds (`apply_photo_model`)
# Features whose growth can only lower a verified probability (the trees' monotone rules);
# every other one can only raise it, except "verified", which is constant in those rows.
DECREASING = ("colour_gap",)


class ScoreSpecError(ValueError):
    """A bundle's score specification is missing or malformed."""


def bucket_of(n_photos: int, look: str | None = None) -> str:
    """The calibration cell key of a listing with n distinct photos: its size bucket ("1", "2",
    "3-4", "5-8", "9+"), followed by "/<look>" when the listing has a look cell."""
    n = max(1, int(n_photos))
    size = "1"
    for lo, hi in SIZE_BUCKETS:
        if lo <= n <= hi:
            size = str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10_000 else f"{lo}+")
            break
    return size if look is None else f"{size}/{look}"


def bucket_keys(look: str | None = None) -> list[str]:
    """Every size bucket's key (in the look cell `look`), smallest first."""
    return [bucket_of(lo, look) for lo, _ in SIZE_BUCKETS]


def collection_cell(cell: str, collection: str) -> str:
    """The key of `collection`'s own cell within the pooled cell `cell`."""
    return f"{cell}{COLLECTION_SEP}{collection}"


def split_cell(key: str) -> tuple[str, str | None, str | None]:
    """(size bucket, look or None, collection or None) of a cell key; inverse of `bucket_of`
    and `collection_cell` (a collection's name may hold any character, a size and look do
    not hold the separator)."""
    pooled, sep, collection = key.partition(COLLECTION_SEP)
    size, _, look = pooled.partition("/")
    return size, look or None, collection if sep else None


# --- logistic models ---------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


def logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), P_FLOOR, 1.0 - P_FLOOR)
    return np.log(q) - np.log1p(-q)


def fit_logistic(x: np.ndarray, y: np.ndarray, names: Sequence[str], *, c: float = 1.0,
                 balanced: bool = False) -> dict[str, Any]:
    """L2-regularised logistic regression (scikit-learn, lbfgs) on standardised features;
    `balanced` weighs both classes equally (a probability at equal priors).

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
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None
                               ).fit((x - mean) / scale, y)
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


def monotone_rules(names: Sequence[str]) -> dict[str, int]:
    """Each feature's monotone rule for the verified trees (`matcher.boosted.fit_trees`): more
    similarity, margin, reuse or inliers never lowers the probability, a larger colour gap
    never raises it."""
    return {n: 0 if n == "verified" else (-1 if n in DECREASING else 1) for n in names}


def apply_photo_model(spec: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Probabilities of a photo model (`model`: "logistic", the default, or "trees") for
    feature rows `x` (... x len(spec["features"]))."""
    if spec.get("model", "logistic") == "trees":
        return apply_trees(spec, x)
    return apply_logistic(spec, x)


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
    model = spec.get("verified", {}).get("model", "logistic")
    if model not in PHOTO_MODELS:
        raise ScoreSpecError(f"the bundle's verified model is {model!r}, not one of "
                             f"{', '.join(PHOTO_MODELS)} (a newer artwatch trained it?)")
    return spec


def global_probabilities(spec: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """(n x c) probabilities from the global evidence only."""
    g = spec["global"]
    return apply_logistic(g, features[..., _columns(g["features"])])


def verifiable(objects: np.ndarray, features: np.ndarray,
               nominated: np.ndarray | None = None) -> np.ndarray:
    """(n x c) candidates that may be verified: the VERIFIED most similar, hash hits and the
    local first stage's nominations (`local_nominated`, computed unless given).

    Calibration computes local-feature evidence for exactly these, so the matcher never
    verifies a candidate of a kind the score was not fitted on.
    """
    columns = np.arange(objects.shape[1])[None, :] < VERIFIED
    hashed = features[..., FEATURES.index("reuse")] > 0
    if nominated is None:
        nominated = local_nominated(objects, features)
    return (objects >= 0) & (columns | hashed | nominated)


def verification_targets(
    spec: Mapping[str, Any], objects: np.ndarray, p_global: np.ndarray,
    features: np.ndarray | None = None, local_candidates: int = LOCAL_CANDIDATES,
) -> list[tuple[int, int]]:
    """(photo, candidate) pairs to verify: the best VERIFIED eligible candidates (by global
    probability) of photos whose best global probability reaches the floor, and, whatever
    the global probability, the candidates the local first stage nominated (the object a
    global embedding misses is the one they exist for). `features` (n x c x len(FEATURES))
    decide eligibility (`verifiable`); without them every candidate is eligible.
    `local_candidates`: how many the local first stage nominated (a bundle's own,
    `Bundle.local_candidates`; training's is the default). (Whether a
    verified model exists to use them is the caller's business: training asks before it has
    one.)"""
    floor = float(spec.get("verify_floor", VERIFY_FLOOR))
    if features is None:
        eligible, nominated = objects >= 0, np.zeros(objects.shape, bool)
    else:
        nominated = local_nominated(objects, features, local_candidates)
        eligible = verifiable(objects, features, nominated)
    out = []
    for qi in range(len(objects)):
        valid = np.flatnonzero(eligible[qi])
        chosen: list[int] = []
        if len(valid) and p_global[qi, valid].max() >= floor:
            order = valid[np.argsort(-p_global[qi, valid], kind="stable")]
            chosen = [int(ci) for ci in order[:VERIFIED]]
        chosen += [int(ci) for ci in np.flatnonzero(nominated[qi]) if int(ci) not in chosen]
        out += [(qi, ci) for ci in chosen]
    return out


def photo_probabilities(
    spec: Mapping[str, Any], features: np.ndarray, objects: np.ndarray
) -> np.ndarray:
    """(n x c) calibrated P(photo shows candidate): the verified model where verification ran."""
    p = global_probabilities(spec, features)
    verified = features[..., FEATURES.index("verified")] > 0
    if verified.any() and "verified" in spec:
        v = spec["verified"]
        p[verified] = apply_photo_model(v, features[verified][:, _columns(v["features"])])
    return np.where(objects >= 0, p, 0.0)


# --- look cells ----------------------------------------------------------------------------


def look_features(dim: int) -> list[str]:
    """Feature names of the look model: the embedding's coordinates."""
    return [f"e{i}" for i in range(dim)]


def fit_look(catalogue_like: np.ndarray, marketplace: np.ndarray) -> dict[str, Any]:
    """The look model on embeddings (n x dim) of catalogue photos and of marketplace photos
    (synthetic listing views, ordinary listings); class-balanced."""
    x = np.concatenate([catalogue_like, marketplace])
    y = np.r_[np.ones(len(catalogue_like), np.int64), np.zeros(len(marketplace), np.int64)]
    return fit_logistic(x, y, look_features(x.shape[1]), balanced=True)


def photo_looks(spec: Mapping[str, Any], embeddings: np.ndarray) -> np.ndarray | None:
    """(n,) P(catalogue look) per photo embedding, or None when the score has no look model."""
    look = spec.get("look")
    if not look:
        return None
    return apply_logistic(look, np.asarray(embeddings, np.float64).reshape(
        -1, len(look["features"])))


def look_of(look: float | None) -> str | None:
    """The look cell of a listing from P(catalogue look) of its *decisive* photo (the one that
    shows the listing's best object best: the photo its score stands on); None without a look
    model. One photo decides, so a listing's many photos do not multiply the look model's
    errors."""
    if look is None:
        return None
    return LOOKS[0] if float(look) >= LOOK_CUT else LOOKS[1]


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


def target_not_reached(name: str, point: Mapping[str, Any]) -> str | None:
    """A sentence for the operator when `point`'s precision target was not reached in
    calibration (`training.calibrate.operating_points`: it serves the strictest cuts, so it
    alerts less than the target would allow; every cell's promise still holds); else None."""
    if point.get("reached") is not False:
        return None
    expected = (point.get("calibration") or {}).get("expected_precision")
    shown = f"{expected:.3f}" if isinstance(expected, float) else "unknown"
    return (f"operating point {name}: its calibration cannot certify precision "
            f"{point.get('value')} (at best {shown} with the promised false alerts), so it "
            "serves the strictest cuts; more catalogue objects (more negatives to certify "
            "with) or another point (ARTWATCH_MATCH_OPERATING_POINT) changes that")


def cell_of(point: Mapping[str, Any], n_photos: int, look: str | None = None,
            collection: str | None = None) -> str | None:
    """The calibrated cell whose threshold decides a listing of `n_photos` distinct photos in
    look cell `look` whose best candidate is in `collection`: the pooled cell of its size,
    else the largest calibrated size of its look (bigger listings than any calibrated); then
    that cell's own for `collection` where calibration had negatives of it (an object added
    from a new collection after training is decided by the pooled cell). None when the point
    has nothing for that look."""
    buckets = point.get("buckets") or {}
    pooled = bucket_of(n_photos, look)
    if buckets.get(pooled) is None:
        pooled = next((key for key in reversed(bucket_keys(look))
                       if buckets.get(key) is not None), None)
    if pooled is None:
        return None
    if collection is not None and buckets.get(collection_cell(pooled, collection)) is not None:
        return collection_cell(pooled, collection)
    return pooled


def threshold_for(point: Mapping[str, Any], n_photos: int, look: str | None = None,
                  collection: str | None = None) -> float:
    """The point's listing-score threshold for a listing of `n_photos` distinct photos in look
    cell `look` (None for a score without look cells) whose best candidate is in `collection`
    (`cell_of`); inf when nothing is calibrated."""
    cell = cell_of(point, n_photos, look, collection)
    return math.inf if cell is None else float(point["buckets"][cell])
