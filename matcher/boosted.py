"""Gradient-boosted trees for the verified photo score, fitted by scikit-learn, served as JSON.

Why trees: the verified model decides "this photo shows this candidate" from the global
evidence and the geometric verification together. A logistic regression gives each feature
one weight whatever the others say, but "many homography inliers at a low global similarity"
(a flat object small in a cluttered phone photo) and "a high similarity with few inliers" (a
smooth 3-D object) need different weights; boosted trees learn such interactions
(`benchmarks/photo_score_models.py` measured it, docs/recognition.md). Each feature is
constrained monotone (more similarity or inliers never lowers the probability, a larger colour
gap never raises it), so that the score stays explainable and a small catalogue cannot teach
it a reversed rule.

Method: scikit-learn's `HistGradientBoostingClassifier` (binary log-loss; Friedman, "Greedy
function approximation: a gradient boosting machine", Ann. Stat. 2001; histogram splits as
LightGBM, Ke et al., NeurIPS 2017). A bundle holds no pickled objects, so the fitted trees are
exported as node arrays (JSON) and applied here with numpy: P = sigmoid(baseline + sum of each
tree's leaf value). `tests/matcher/test_matcher_boosted.py` checks the export against scikit-learn's
own `predict_proba`, which is what would catch a change of scikit-learn's internals (the
project pins its version).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ITERATIONS = 100
LEARNING_RATE = 0.1
LEAVES = 15
MIN_LEAF = 40  # rows per leaf: a verified model is fitted on thousands of rows or not served
L2 = 1.0
CHUNK = 2_048  # rows walked at once by `apply_trees`


def fit_trees(x: np.ndarray, y: np.ndarray, names: Sequence[str], *,
              monotone: Mapping[str, int], seed: int = 0) -> dict[str, Any]:
    """Fit on (n x f) rows `x` with 0/1 labels `y`; `monotone` maps a feature name to +1
    (increasing), -1 (decreasing) or 0 (free); names not in it are free.

    Returns a JSON-safe spec for `apply_trees` (`model`: "trees"). Raises ValueError when `y`
    has one class.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"cannot fit trees on {len(y)} rows of one class")
    model = HistGradientBoostingClassifier(
        max_iter=ITERATIONS, learning_rate=LEARNING_RATE, max_leaf_nodes=LEAVES,
        min_samples_leaf=MIN_LEAF, l2_regularization=L2, early_stopping=False,
        monotonic_cst=[int(monotone.get(n, 0)) for n in names], random_state=seed,
    ).fit(x, y)
    trees = []
    for (predictor,) in model._predictors:  # one tree per iteration (binary)
        nodes = predictor.nodes
        trees.append({
            "feature": nodes["feature_idx"].astype(int).tolist(),
            "threshold": nodes["num_threshold"].astype(float).tolist(),
            "missing_left": nodes["missing_go_to_left"].astype(bool).tolist(),
            "left": nodes["left"].astype(int).tolist(),
            "right": nodes["right"].astype(int).tolist(),
            "leaf": nodes["is_leaf"].astype(bool).tolist(),
            "value": nodes["value"].astype(float).tolist(),
        })
    return {
        "model": "trees",
        "features": list(names),
        "baseline": float(np.ravel(model._baseline_prediction)[0]),
        "trees": trees,
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }


def apply_trees(spec: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Probabilities for feature rows `x` (... x len(spec["features"])), the shape of `x`
    without its last axis. A NaN feature goes where scikit-learn sent missing values.

    All trees are walked at once (one numpy step per tree level, not per tree), so a
    matcher's batch of a few photos costs about as much as a large one."""
    x = np.asarray(x, np.float64)
    flat = x.reshape(-1, x.shape[-1])
    t = _packed(spec)
    trees = np.arange(len(t.value))[None, :]
    raw = np.empty(len(flat))
    for start in range(0, len(flat), CHUNK):  # rows x trees work arrays stay a few MB
        part = flat[start:start + CHUNK]
        rows = np.arange(len(part))[:, None]
        node = np.zeros((len(part), len(t.value)), np.int64)
        while not t.leaf[trees, node].all():  # each pass walks every tree one level down
            value = part[rows, t.feature[trees, node]]
            go_left = np.where(np.isnan(value), t.missing_left[trees, node],
                               value <= t.threshold[trees, node])
            node = np.where(t.leaf[trees, node], node,
                            np.where(go_left, t.left[trees, node], t.right[trees, node]))
        raw[start:start + CHUNK] = t.value[trees, node].sum(1)
    raw += float(spec["baseline"])
    p = 1.0 / (1.0 + np.exp(-np.clip(raw, -40.0, 40.0)))
    return p.reshape(x.shape[:-1])


@dataclass(frozen=True)
class _Packed:
    """A spec's trees as (trees x nodes) arrays, padded with leaves."""

    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray


_PACKED: dict[int, tuple[Mapping[str, Any], _Packed]] = {}


def _packed(spec: Mapping[str, Any]) -> _Packed:
    """The spec's packed trees, built once per spec (a bundle's spec lives as long as the
    matcher holds the bundle; the spec is kept with its arrays so that its id stays its own)."""
    hit = _PACKED.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    trees = spec["trees"]
    width = max(len(tree["leaf"]) for tree in trees)

    def pad(key: str, fill: Any, dtype: type) -> np.ndarray:
        return np.array([list(tree[key]) + [fill] * (width - len(tree[key])) for tree in trees],
                        dtype)

    packed = _Packed(pad("feature", 0, np.int64), pad("threshold", 0.0, np.float64),
                     pad("missing_left", True, bool), pad("left", 0, np.int64),
                     pad("right", 0, np.int64), pad("leaf", True, bool),
                     pad("value", 0.0, np.float64))
    if len(_PACKED) >= 16:
        _PACKED.clear()
    _PACKED[id(spec)] = (spec, packed)
    return packed
