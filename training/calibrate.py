"""From out-of-fold evidence rows to a calibrated score and listing-level thresholds.

1. Photo scores (`matcher.scoring`): logistic models of "this photo shows this candidate" on
   the global evidence and on global + verification evidence. They are cross-fitted over
   groups of query objects, so every row also gets a probability from a model that never saw
   its object; the models stored in the bundle are then fitted on all rows.
2. Listings: out-of-fold query images are grouped into simulated listings of 1-8 photos
   (photos of one catalogued object as positives; photos of objects the world left out and
   ordinary-listing distractors as negatives; the synthetic hash twins, which teach the photo
   score what a hash collision looks like, stay out of the promise). A first set fits how
   photos add up (the listing model); a second, independent draw sets and reports the
   thresholds.
3. Thresholds: per calibration cell (listing-size bucket and, with a look model, look cell:
   `matcher.scoring`), a conformal order statistic of the negative listings'
   scores (Vovk et al., "Algorithmic Learning in a Random World"; split conformal) with the
   object as the exchangeable unit (`object_weights`): with m objects' negative listings,
   each object's listings weighing 1 in all, and weight k at or above the threshold, a new
   object's negative listing alerts with probability (k + 1) / (m + 1) at most on average,
   and the realised rate of this threshold is Beta(k + 1, m - k) distributed, whose
   2.5-97.5% quantiles are the promise's interval. Listings of one object are not
   independent draws (a look-alike alerts in most of its listings or in none), so a promise
   counted over listings (until stop 37) claimed 1/92 from 91 listings of 26 objects, and
   new coins broke it. Negative listings are drawn
   from one stream of photos each: museum pictures (studio photos, re-used copies) or
   marketplace pictures (synthetic listing views, ordinary listings), as a dealer's listing is
   one or the other; the look model then puts each in its cell as the matcher would. A
   precision target is met by the largest false-alert rate whose thresholds keep the
   precision expected from the promises at the target: the calibration's positive listings
   alerted against the false alerts the cells promise on its negative listings, per pooled
   cell the smaller of the pooled and the collections' expectation (`expected_false_alerts`,
   `evaluate_point`'s `expected_precision`). The negatives' own count at or above a cut set
   on them is low by construction; held to it, a 0.95 target reached 0.93 on new listings
   (tests/training/test_training_calibrate.py), and an honest promise (more negatives
   at a cut: objects counted) bought a looser cut.
4. Collections: in a catalogue of several collections, each pooled cell also gets a cut per
   collection of the listing's best candidate (`1/catalogue@Coins`). A collection
   photographed unlike the rest (another museum's studio, another kind of object) has
   negatives that reach other scores than the majority's, which dominate the pooled cells;
   with its own cuts its promise holds for it, and the pooled promise still holds over all
   listings. Its cuts sit at one depth into every pooled cell's tail (`collection_level`: a
   conformal p-value within the pooled cell, thresholded on the collection's negatives of
   every size and look, Mondrian conformal by collection), never below the pooled cut, and its
   promise counts all its negatives. A collection needs `MIN_COLLECTION_OBJECTS` objects
   among its negative listings for cuts of its own; with fewer, its cut would rest on the
   highest of a handful of objects' scores, whose realised rate is anywhere in Beta(1, m),
   and the precision targets' search would trade it for looser pooled cuts (measured on the
   test suite's 27-object catalogue: a collection cell set on 8 negatives alerted 3 of 8 new
   ones), so it keeps the pooled cuts and their promise.
   (Cuts per cell, each set on the collection's negatives in that cell alone, left a
   collection of 37 objects with under 20 in every cell, on the pooled cuts: in a
   museum-sized COIL-100 run, one-photo listings decided by pooled cells alerted 323 per
   1,000 against 66 promised; docs/recognition.md.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import beta
from sklearn.model_selection import GroupKFold

from matcher.boosted import fit_trees
from matcher.evidence import FEATURES, GLOBAL_FEATURES, VERIFY_FEATURES
from matcher.scoring import (
    LOOKS,
    PHOTO_MODELS,
    VERIFY_FLOOR,
    apply_logistic,
    apply_photo_model,
    bucket_keys,
    bucket_of,
    collection_cell,
    fit_logistic,
    listing_features,
    look_of,
    monotone_rules,
    verification_targets,
)
from training.crossfit import QuerySet
from training.views import PHONE, REUSE, STUDIO, TWIN, VARIANT

MAX_LISTING = 8
MIN_COLLECTION_OBJECTS = 20  # cuts of its own can at least promise 1/21, under 5%
INTERVAL = (0.025, 0.975)


@dataclass
class PhotoScores:
    """Fitted photo models and the out-of-fold probabilities of every candidate row."""

    spec: dict  # "global", "verified", "verify_floor"
    probabilities: np.ndarray  # (queries x candidates), out-of-fold
    verified: np.ndarray  # (queries x candidates) bool: the gate let verification count


def _rows(qs: QuerySet, names: Sequence[str], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols = [FEATURES.index(n) for n in names]
    x = qs.candidates.features[..., cols][mask]
    y = (qs.candidates.objects == qs.label[:, None])[mask].astype(np.int64)
    return x, y


def _groups(qs: QuerySet) -> np.ndarray:
    """Cross-fitting groups: the query's object (every distractor its own group)."""
    return np.where(qs.label >= 0, qs.label, -1 - np.arange(len(qs.label)))


def fit_photo_scores(qs: QuerySet, *, folds: int = 5, verify_floor: float = VERIFY_FLOOR,
                     use_local: bool = True,
                     features: Sequence[str] = GLOBAL_FEATURES,
                     verification: Sequence[str] = VERIFY_FEATURES,
                     verified_model: str = "logistic",
                     monotone: bool = True) -> PhotoScores:
    """Cross-fitted photo probabilities plus the models fitted on every row.

    `features`: the global evidence the models use, `verification` the verification evidence
    the verified model adds (all of `GLOBAL_FEATURES` and `VERIFY_FEATURES` for a bundle;
    fewer to measure what one kind of evidence buys, `training.ablation`). `verified_model`:
    "logistic" or "trees" (`matcher.boosted`; `training.ablation.photo_scores_chosen` picks
    one out of fold). `monotone`: the trees keep `monotone_rules` (a bundle's always do;
    False frees every feature, to measure what the rules cost or save,
    `benchmarks/photo_score_models.py`). Raises ValueError for another model name.

    Colour variants (`training.views.VARIANT`) teach only a verified model that sees the
    colour gap: to the global model, or to one without the gap, a variant is its object's own
    photo labelled wrong, and learning from it would only lower every close match. They are
    still scored.
    """
    if verified_model not in PHOTO_MODELS:
        raise ValueError(f"verified model {verified_model!r}: expected one of {PHOTO_MODELS}")
    valid = qs.candidates.objects >= 0
    teaching = valid & (qs.kind != VARIANT)[:, None]  # the global model's rows
    # the verified model's: rows with verification, variants too where it sees the colour gap
    verified_rows = (valid if use_local and "colour_gap" in verification else teaching) & (
        qs.candidates.features[..., FEATURES.index("verified")] > 0)
    names_v = [*features, "verified", *verification]
    groups = _groups(qs)
    n_groups = len(np.unique(groups))
    k = max(2, min(folds, n_groups))
    p_oof = np.zeros(valid.shape)
    v_oof = np.zeros(valid.shape, bool)
    splitter = GroupKFold(n_splits=k)
    for train, _ in splitter.split(np.zeros(len(groups)), groups=groups):
        tr = np.zeros(len(groups), bool)
        tr[train] = True
        spec = _fit_models(qs, teaching & tr[:, None], verified_rows & tr[:, None], features,
                           names_v, verify_floor, use_local, verified_model, monotone)
        p, v = _score(spec, qs, np.flatnonzero(~tr))
        p_oof[~tr] = p
        v_oof[~tr] = v
    spec = _fit_models(qs, teaching, verified_rows, features, names_v, verify_floor, use_local,
                       verified_model, monotone)
    return PhotoScores(spec, np.where(valid, p_oof, 0.0), v_oof & valid)


def _fit_models(qs: QuerySet, rows: np.ndarray, verified_rows: np.ndarray,
                features: Sequence[str], names_v: list[str], verify_floor: float,
                use_local: bool, verified_model: str = "logistic",
                monotone: bool = True) -> dict:
    """The global model fitted on `rows`, the verified model on the `verified_rows` that
    pass the gate."""
    x, y = _rows(qs, features, rows)
    spec: dict = {"global": fit_logistic(x, y, features), "verify_floor": verify_floor}
    if use_local:
        # The verified model learns from exactly the rows the matcher would verify.
        cols = [FEATURES.index(n) for n in spec["global"]["features"]]
        p_global = np.where(qs.candidates.objects >= 0, apply_logistic(
            spec["global"], qs.candidates.features[..., cols]), 0.0)
        gate = np.zeros(rows.shape, bool)
        for qi, ci in verification_targets(spec, qs.candidates.objects, p_global,
                                           qs.candidates.features, qs.local_candidates):
            gate[qi, ci] = True
        use = verified_rows & gate
        xv, yv = _rows(qs, names_v, use)
        if len(np.unique(yv)) == 2 and yv.sum() >= 5:
            rules = monotone_rules(names_v) if monotone else {}
            spec["verified"] = (fit_trees(xv, yv, names_v, monotone=rules)
                                if verified_model == "trees" else fit_logistic(xv, yv, names_v))
    return spec


def _score(spec: dict, qs: QuerySet, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (and where verification counted) of the queries `index` under `spec`."""
    feats = qs.candidates.features[index]
    objects = qs.candidates.objects[index]
    p = np.where(objects >= 0, apply_logistic(
        spec["global"], feats[..., [FEATURES.index(n) for n in spec["global"]["features"]]]),
        0.0)
    verified = np.zeros(objects.shape, bool)
    if "verified" in spec:
        have = feats[..., FEATURES.index("verified")] > 0
        for qi, ci in verification_targets(spec, objects, p, feats, qs.local_candidates):
            verified[qi, ci] = have[qi, ci]
        cols = [FEATURES.index(n) for n in spec["verified"]["features"]]
        p[verified] = apply_photo_model(spec["verified"], feats[verified][:, cols])
    return p, verified


# --- simulated listings ------------------------------------------------------------------------


@dataclass
class Listings:
    """Simulated listings: member query indices, true object (-1: negative), calibration cell
    (`matcher.scoring.bucket_of`: size bucket, and look cell when the query set has looks)."""

    members: list[np.ndarray]
    label: np.ndarray
    bucket: np.ndarray
    collection: np.ndarray | None = None  # collection of the best candidate (`with_collections`)
    shows: np.ndarray | None = None  # the object (cross-fitting group) each listing shows,
    # its first photo's; None: every listing its own (promises count objects: `object_weights`)

    def __len__(self) -> int:
        return len(self.members)


def _sizes(rng: np.random.Generator) -> int:
    lo, hi = [(1, 1), (2, 2), (3, 4), (5, MAX_LISTING)][int(rng.integers(0, 4))]
    return int(rng.integers(lo, hi + 1))


def simulate_listings(qs: QuerySet, seed: int, positives_per_pool: int = 2) -> Listings:
    """Positive listings per (world, object) pool and a disjoint partition of the negatives."""
    rng = np.random.default_rng(seed)
    members, labels = [], []
    pos_pools: dict[tuple[int, int], list[int]] = defaultdict(list)
    neg_pools: dict[tuple[int, bool], dict[int, list[int]]] = defaultdict(
        lambda: defaultdict(list))
    groups = _groups(qs)
    for i in range(len(qs.label)):
        if qs.kind[i] in (TWIN, VARIANT, PHONE):  # they teach the photo score, never
            # promise: hash twins and colour variants are made-up objects whose share of real
            # listings nobody knows, and a phone view (the object small on a busy surface) is
            # an easy negative whose low scores would loosen every marketplace threshold
            continue
        if qs.positive[i]:
            pos_pools[(int(qs.world[i]), int(qs.label[i]))].append(i)
        else:
            museum = str(qs.kind[i]) in (STUDIO, REUSE)
            neg_pools[(int(qs.world[i]), museum)][int(groups[i])].append(i)
    for (_, obj), pool in sorted(pos_pools.items()):
        for _ in range(positives_per_pool):
            n = min(_sizes(rng), len(pool))
            members.append(rng.choice(pool, n, replace=False))
            labels.append(obj)
    for key in sorted(neg_pools):  # (world, museum pictures or not)
        by_object = list(neg_pools[key].values())
        rng.shuffle(by_object)
        stream = [i for pool in by_object for i in rng.permutation(pool)]
        pos = 0
        while pos < len(stream):
            n = _sizes(rng)
            members.append(np.array(stream[pos : pos + n]))
            labels.append(-1)
            pos += n
    bucket = np.array([bucket_of(len(m)) for m in members])
    return Listings(members, np.array(labels, np.int64), bucket,
                    shows=np.array([int(groups[m[0]]) for m in members], np.int64))


def listing_rows(listings: Listings, scores: np.ndarray, which: np.ndarray,
                 objects: Sequence[str]) -> list[dict]:
    """One dict per listing for the bundle's report (`training.report.
    write_calibration_listings`): photos, cell, collection of the best candidate, what it shows
    (an object's accession, or `distractor <n>`), truth (the catalogued object of a positive
    listing, else empty), best candidate and score."""
    def name(index: int) -> str:
        return objects[index] if index >= 0 else f"distractor {-1 - index}"

    shows = listings.shows if listings.shows is not None else -1 - np.arange(len(listings))
    names = listings.collection if listings.collection is not None else [""] * len(listings)
    return [{"listing": i, "photos": len(m), "cell": str(b), "collection": str(c),
             "shows": name(int(g)), "truth": objects[int(t)] if t >= 0 else "",
             "best": objects[int(w)] if w >= 0 else "", "score": float(s)}
            for i, (m, b, c, g, t, w, s) in enumerate(zip(
                listings.members, listings.bucket, names, shows, listings.label, which, scores,
                strict=True))]


def listings_from_rows(rows: Sequence[dict]) -> tuple[Listings, np.ndarray, np.ndarray]:
    """(listings, scores, which) from `listing_rows` as the report's CSV holds them (strings),
    the inputs `operating_points` derives the points from; objects are numbered by name."""
    names = sorted(({r["truth"] for r in rows} | {r["best"] for r in rows}) - {""})
    index = {name: i for i, name in enumerate(names)}
    shown = {name: i for i, name in enumerate(sorted({r["shows"] for r in rows}))}
    collection = np.array([r["collection"] for r in rows], dtype=object)
    listings = Listings(
        [np.arange(int(r["photos"])) for r in rows],
        np.array([index[r["truth"]] if r["truth"] else -1 for r in rows], np.int64),
        np.array([r["cell"] for r in rows]),
        collection=collection if any(collection) else None,
        shows=np.array([shown[r["shows"]] for r in rows], np.int64))
    return (listings, np.array([float(r["score"]) for r in rows]),
            np.array([index[r["best"]] if r["best"] else -1 for r in rows], np.int64))


def with_cells(qs: QuerySet, listings: Listings, decisive: np.ndarray) -> Listings:
    """The listings with their calibration cells: size bucket and the look of the decisive
    photo (`listing_scores`), as the matcher assigns them; size only without looks."""
    if qs.look is None:
        return listings
    cells = np.array([bucket_of(len(m), look_of(float(qs.look[d])))
                      for m, d in zip(listings.members, decisive, strict=True)])
    return replace(listings, bucket=cells)


def with_collections(listings: Listings, which: np.ndarray,
                     collections: Sequence[str]) -> Listings:
    """The listings with the collection of their best candidate (`which`, an index into the
    query set's objects; `collections` per object), as the matcher finds it; unchanged for a
    catalogue of one collection (its cells would repeat the pooled ones)."""
    if len(set(collections)) < 2:
        return listings
    names = np.array([collections[w] if w >= 0 else "" for w in which], dtype=object)
    return replace(listings, collection=names)


def cell_keys(listings: Listings) -> list[str]:
    """The calibration cells the listings can fall in, smallest listings first."""
    looks = [None] if all("/" not in b for b in listings.bucket) else list(LOOKS)
    return [key for look in looks for key in bucket_keys(look)]


def listing_candidates(qs: QuerySet, probs: np.ndarray, members: np.ndarray
                       ) -> dict[int, list[float]]:
    """{object: [probability per member photo]} over the union of the photos' candidates."""
    out: dict[int, list[float]] = {}
    n = len(members)
    for pos, qi in enumerate(members):
        for obj, p in zip(qs.candidates.objects[qi], probs[qi], strict=True):
            if obj >= 0:
                per_photo = out.setdefault(int(obj), [0.0] * n)
                per_photo[pos] = max(per_photo[pos], float(p))
    return out


def fit_listing_model(qs: QuerySet, probs: np.ndarray, listings: Listings) -> dict:
    """Logistic model of "the listing shows this object" on `matcher.scoring` features."""
    x, y = [], []
    for members, label in zip(listings.members, listings.label, strict=True):
        for obj, ps in listing_candidates(qs, probs, members).items():
            x.append(listing_features(ps))
            y.append(int(obj == label))
    return fit_logistic(np.array(x), np.array(y), ("best_logit", "support"))


def listing_scores(qs: QuerySet, probs: np.ndarray, listings: Listings, model: dict
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best listing probability, its object, its decisive photo) per simulated listing; the
    decisive photo is the member query that gives the object its highest photo probability
    (the first member when nothing is a candidate)."""
    best = np.zeros(len(listings))
    which = np.full(len(listings), -1, np.int64)
    decisive = np.array([int(m[0]) for m in listings.members], np.int64)
    for li, members in enumerate(listings.members):
        cands = listing_candidates(qs, probs, members)
        if not cands:
            continue
        objs = list(cands)
        feats = np.stack([listing_features(cands[o]) for o in objs])
        p = apply_logistic(model, feats)
        j = int(np.argmax(p))
        best[li], which[li] = float(p[j]), objs[j]
        decisive[li] = int(members[int(np.argmax(cands[objs[j]]))])
    return best, which, decisive


# --- thresholds -------------------------------------------------------------------------------


def object_weights(listings: Listings, mask: np.ndarray) -> np.ndarray:
    """(mask.sum(),) weight of each selected listing: 1 / the selection's listings of the
    object it shows, so that each object counts once (all 1 without `listings.shows`).

    Listings of one object are not independent draws: a look-alike alerts in most of its
    listings, or in none. A promise counted over listings claims 1 / (n + 1) from n listings
    of a few dozen objects, and a new look-alike breaks it (the generated set's coins, 91
    negative listings of 26 objects, promised 10.9 per 1,000 and alerted 56 on new coins).
    Weighting each object's listings to 1 is conformal prediction with groups as the
    exchangeable unit (Dunn, Gao, Ramdas and Wasserman, "Distribution-free prediction sets
    for two-layer hierarchical models", JASA 2022: pooling each group's empirical CDF with
    equal weight), and the rate it promises is the rate over new objects, as the benchmark
    measures it (`benchmarks/recognition.py`, a bootstrap over objects).
    """
    if listings.shows is None:
        return np.ones(int(mask.sum()))
    _, inverse, counts = np.unique(listings.shows[mask], return_inverse=True,
                                   return_counts=True)
    return 1.0 / counts[inverse]


def conformal_threshold(negatives: np.ndarray, alpha: float,
                        weights: np.ndarray | None = None) -> tuple[float, float]:
    """(threshold, k): the lowest cut with (k + 1) / (m + 1) <= alpha, where k is the weight of
    the negatives at or above it and m the weights' sum (`object_weights`: m objects; all 1
    by default, k and m then count negatives).

    With too few negatives for `alpha`, the cut is just above the highest negative (k = 0,
    promise 1 / (m + 1)).
    """
    s = np.asarray(negatives, np.float64)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64)
    order = np.argsort(-s, kind="stable")
    s, w = s[order], w[order]
    cut = _cut_of_sorted(s, alpha, w)
    return cut, float(w[s >= cut].sum())


def _cut_of_sorted(s: np.ndarray, alpha: float, w: np.ndarray) -> float:
    """`conformal_threshold`'s cut on negatives `s` sorted highest first, weights `w`."""
    n = len(s)
    if n == 0:
        return float("inf")
    allowed = alpha * (float(w.sum()) + 1) - 1  # weight that may be at or above the cut
    k = int(np.searchsorted(np.cumsum(w), allowed + 1e-9, side="right"))
    # Alert iff score >= threshold; strictly above the (k+1)-th highest negative, so that at
    # most the first k calibration negatives are at or above it.
    return float(np.nextafter(s[k], np.inf)) if k < n else float(s[-1])


def promise(k: float, m: float, listings: int | None = None) -> dict:
    """Promised false-alert rate per 1,000 listings and its interval (Beta(k+1, m-k)), for k
    of m negative objects at or above the cut (`object_weights`: a fraction of an object
    where some of its listings are); `listings`: the negative listings they had (default m)."""
    if m == 0:
        return {"per_1000": None, "interval": [None, None], "negatives": 0, "objects": 0,
                "at_or_above": 0}
    lo, hi = beta.ppf(INTERVAL, k + 1, max(m - k, 1e-9))
    return {"per_1000": 1000.0 * (k + 1) / (m + 1), "interval": [1000.0 * lo, 1000.0 * hi],
            "negatives": int(round(m)) if listings is None else int(listings),
            "objects": int(round(m)), "at_or_above": round(float(k), 3)}


def _per_listing(values: dict, listings: Listings) -> list:
    """Each listing's entry of `values`: its collection's cell where there is one, else its
    pooled cell (None where neither is), as `matcher.scoring.cell_of` chooses."""
    names = listings.collection if listings.collection is not None else [None] * len(listings)
    return [values.get(collection_cell(b, c) if c else b, values.get(b))
            for b, c in zip(listings.bucket, names, strict=True)]


def listing_cuts(cuts: dict[str, float], listings: Listings) -> np.ndarray:
    """Each listing's cut (`_per_listing`; inf where no cell of it is calibrated)."""
    return np.array([np.inf if c is None else c for c in _per_listing(cuts, listings)],
                    np.float64)


def expected_false_alerts(promises: dict[str, dict], listings: Listings,
                          negative: np.ndarray) -> float:
    """False alerts the cells' `promises` expect among the `negative` listings (a (n,) mask):
    per pooled cell, the smaller of two bounds that both hold for its total.

    A listing is cut by its collection's cell where there is one, never below the pooled cut
    (`thresholds_at`), so it alerts only where the pooled cut would: the pooled promise bounds
    the cell's rate over all its listings, whatever their collections. The collections'
    promises bound each collection's rate, and summed bound the cell's too. Neither is tighter
    everywhere: a collection of m objects promises 1 / (m + 1) at least, so where a pooled
    cell holds hundreds of objects and its collections a few dozen each, at a rate below the
    collections' floors the sum of the floors is several times the pooled promise; where the
    pooled cut is far looser than a collection's, the collection's promise is the smaller.
    Each listing's promise is still its own cell's (the report, `listing_decisions`); this
    is only the expectation a precision target is held to (`evaluate_point`).
    """
    rate = {b: (p["per_1000"] or 0.0) / 1000.0 for b, p in promises.items()}
    own = np.array([r or 0.0 for r in _per_listing(rate, listings)], np.float64)
    total = 0.0
    for b in np.unique(listings.bucket[negative]):
        in_cell = negative & (listings.bucket == b)
        total += min(float(own[in_cell].sum()), float(in_cell.sum()) * rate.get(str(b), 0.0))
    return total


def evaluate_point(cuts: dict[str, float], scores: np.ndarray, which: np.ndarray,
                   listings: Listings, promises: dict[str, dict] | None = None) -> dict:
    """Listing precision / recall / false alerts per 1,000 negative listings at `cuts`, on the
    listings given; with the cells' `promises` also `expected_precision`, what a precision
    target is held to (`operating_points`)."""
    alert = scores >= listing_cuts(cuts, listings)
    pos = listings.label >= 0
    right = alert & pos & (which == listings.label)
    wrong = alert & pos & (which != listings.label)
    n_alerts = int(alert.sum())
    out = {
        "precision": float(right.sum() / n_alerts) if n_alerts else float("nan"),
        "recall": float(right.sum() / pos.sum()) if pos.any() else float("nan"),
        "false_alerts_per_1000": float(1000.0 * (alert & ~pos).sum() / max(1, (~pos).sum())),
        "wrong_object_alerts": int(wrong.sum()),
        "positives": int(pos.sum()),
        "negatives": int((~pos).sum()),
    }
    if promises is not None:
        false = expected_false_alerts(promises, listings, ~pos)
        called = right.sum() + wrong.sum() + false
        out["expected_false_alerts"] = float(false)
        out["expected_precision"] = float(right.sum() / called) if called else float("nan")
    return out


def thresholds_at(alpha: float, scores: np.ndarray, listings: Listings) -> tuple[dict, dict]:
    """Per-cell cuts for false-alert rate `alpha` and each cell's promise: the pooled cells,
    and with collections each collection's own within them (module docstring, 4). Every
    promise counts objects (`object_weights`)."""
    cuts, promises, tails = {}, {}, {}
    negative = listings.label < 0
    for b in cell_keys(listings):
        in_cell = negative & (listings.bucket == b)
        if not in_cell.any():
            continue
        w = object_weights(listings, in_cell)
        order = np.argsort(-scores[in_cell], kind="stable")
        tails[b] = (scores[in_cell][order], w[order])
        cuts[b], k = conformal_threshold(scores[in_cell], alpha, w)
        promises[b] = promise(k, float(w.sum()), int(in_cell.sum()))
    if listings.collection is None:
        return cuts, promises
    for name in sorted(set(listings.collection[negative].tolist()) - {""}):
        own = negative & (listings.collection == name)
        w = object_weights(listings, own)
        if w.sum() < MIN_COLLECTION_OBJECTS - 1e-9:
            continue
        level, k = collection_level(alpha, tails, scores[own], listings.bucket[own], w)
        promised = promise(k, float(w.sum()), int(own.sum()))
        for b, (tail, tail_w) in tails.items():
            cuts[collection_cell(b, name)] = max(cuts[b], _cut_of_sorted(tail, level, tail_w))
            promises[collection_cell(b, name)] = promised
    return cuts, promises


def collection_level(alpha: float, tails: dict[str, tuple[np.ndarray, np.ndarray]],
                     scores: np.ndarray, cells: np.ndarray, weights: np.ndarray
                     ) -> tuple[float, float]:
    """(level, k): how far into every pooled cell's tail one collection's cuts go.

    A collection's cut in pooled cell b is the pooled cut at level `level` <= `alpha`
    (`_cut_of_sorted` on `tails[b]`, the cell's negative scores highest first and their
    object weights): the same conformal p-value in every cell (Mondrian conformal by
    collection on the pooled cells' p-values), the largest level at which the collection's
    negative listings (`scores`, in `cells`, object `weights`: m objects) alerting weigh k
    with (k + 1) / (m + 1) <= alpha; where no level does (alpha < 1 / (m + 1)), the largest
    at which none of them alerts, which promises the floor, 1 / (m + 1). (Until stop 39 that
    was level 0, just above each pooled cell's highest negative of any collection: the same
    promise at a stricter cut than it needs.) One level per collection, set on its
    negatives of every size and look, so a collection of a few dozen objects gets cuts of its
    own in every cell. A cell where it had no negatives takes the same depth, which is at
    least the pooled cut but promises nothing more: nothing there showed how its look-alikes
    score. Shapes: `scores`, `cells`, `weights` (n,).
    """
    allowed = max(alpha * (float(weights.sum()) + 1) - 1, 0.0) + 1e-9
    in_cell = {b: (scores[cells == b], weights[cells == b]) for b in tails}

    def alerts(level: float) -> float:
        total = 0.0
        for b, (tail, tail_w) in tails.items():
            s, w = in_cell[b]
            total += float(w[s >= _cut_of_sorted(tail, level, tail_w)].sum())
        return total

    lo, hi = 0.0, float(alpha)
    if alerts(hi) <= allowed:
        lo = hi
    else:
        for _ in range(40):  # alerts(level) is a non-decreasing step function
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if alerts(mid) <= allowed else (lo, mid)
    return lo, alerts(lo)


ALPHAS = np.unique(np.concatenate([np.geomspace(1e-4, 0.3, 60), [0.001, 0.005, 0.01, 0.05]]))


def operating_points(scores: np.ndarray, which: np.ndarray, listings: Listings, *,
                     precisions: Sequence[float], budgets: Sequence[float]) -> dict:
    """Named operating points: `precision_0.95`, ..., `alerts_per_1000_5`, ..."""
    points: dict[str, dict] = {}
    for per_1000 in budgets:
        alpha = per_1000 / 1000.0
        cuts, promises = thresholds_at(alpha, scores, listings)
        points[f"alerts_per_1000_{per_1000:g}"] = {
            "target": "false_alerts_per_1000", "value": per_1000, "alpha": alpha,
            "buckets": cuts, "promise": promises,
            "calibration": evaluate_point(cuts, scores, which, listings, promises),
        }
    # One grid of rates serves every precision target: each rate's cuts, promises and
    # calibration figures, in increasing rate (`ALPHAS` is sorted).
    grid = []
    for alpha in ALPHAS if precisions else ():
        cuts, promises = thresholds_at(float(alpha), scores, listings)
        grid.append((float(alpha), cuts, promises,
                     evaluate_point(cuts, scores, which, listings, promises)))
    for target in precisions:
        met = [g for g in grid if np.isnan(g[3]["expected_precision"])
               or g[3]["expected_precision"] >= target]
        # The largest rate that meets the target; where none does, the strictest cuts (and
        # `reached` says so).
        alpha, cuts, promises, ev = met[-1] if met else grid[0]
        points[f"precision_{target:.2f}"] = {
            "target": "precision", "value": target, "alpha": alpha, "buckets": cuts,
            "promise": promises, "calibration": ev, "reached": bool(met),
        }
    return points
