"""The verified score's boosted trees: the JSON export serves what scikit-learn fitted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matcher.boosted import apply_trees, fit_trees

NAMES = ("sim", "log_h_inliers", "colour_gap")


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An interaction a linear score cannot draw: inliers count when similarity is low."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.random(n), rng.exponential(1.0, n), rng.random(n)])
    logit = np.where(x[:, 0] > 0.6, 6 * x[:, 0] - 3, 2.5 * x[:, 1] - 3) - 1.5 * x[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def test_exported_trees_give_scikit_learns_probabilities() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from matcher import boosted

    x, y = _rows(3000, 0)
    monotone = {"sim": 1, "log_h_inliers": 1, "colour_gap": -1}
    spec = json.loads(json.dumps(fit_trees(x, y, NAMES, monotone=monotone)))  # as bundle.json
    reference = HistGradientBoostingClassifier(
        max_iter=boosted.ITERATIONS, learning_rate=boosted.LEARNING_RATE,
        max_leaf_nodes=boosted.LEAVES, min_samples_leaf=boosted.MIN_LEAF,
        l2_regularization=boosted.L2, early_stopping=False, monotonic_cst=[1, 1, -1],
        random_state=0).fit(x, y)
    test, _ = _rows(boosted.CHUNK + 500, 1)  # more rows than one chunk
    test[:5, 1] = np.nan  # missing values go where scikit-learn sends them
    expected = reference.predict_proba(test)[:, 1]
    assert np.allclose(apply_trees(spec, test), expected, atol=1e-9)
    assert apply_trees(spec, test[:500].reshape(50, 10, 3)).shape == (50, 10)
    assert spec["model"] == "trees" and spec["features"] == list(NAMES)
    assert len(spec["trees"]) == boosted.ITERATIONS


def test_trees_keep_the_monotone_rules() -> None:
    x, y = _rows(3000, 2)
    spec = fit_trees(x, y, NAMES, monotone={"sim": 1, "log_h_inliers": 1, "colour_gap": -1})
    grid = np.linspace(0, 4, 41)
    for sim in (0.1, 0.5, 0.9):
        rows = np.column_stack([np.full_like(grid, sim), grid, np.full_like(grid, 0.3)])
        p = apply_trees(spec, rows)
        assert np.all(np.diff(p) >= -1e-12), "more inliers never lower the probability"
    rows = np.column_stack([np.full(11, 0.3), np.full(11, 1.0), np.linspace(0, 1, 11)])
    assert np.all(np.diff(apply_trees(spec, rows)) <= 1e-12), "a larger colour gap never helps"
    # the interaction the data has: at a low similarity, inliers decide
    low = apply_trees(spec, np.array([[0.2, 0.0, 0.3], [0.2, 3.0, 0.3]]))
    assert low[1] - low[0] > 0.5


def test_trees_refuse_one_class() -> None:
    with pytest.raises(ValueError, match="one class"):
        fit_trees(np.zeros((50, 3)), np.zeros(50), NAMES, monotone={})


def test_a_bundles_verified_trees_score_verified_rows_and_an_unknown_model_is_refused() -> None:
    from matcher.evidence import FEATURES
    from matcher.scoring import (
        ScoreSpecError,
        check_spec,
        global_probabilities,
        photo_probabilities,
    )

    names = ["sim", "verified", "log_h_inliers", "colour_gap"]
    x, y = _rows(2000, 3)
    rows = np.column_stack([x[:, 0], np.ones(len(x)), x[:, 1], x[:, 2]])
    trees = fit_trees(rows, y, names, monotone={"sim": 1, "log_h_inliers": 1, "colour_gap": -1})
    spec = {"kind": "calibrated-evidence", "temperature": 0.05, "listing": {},
            "global": {"features": ["sim"], "mean": [0.5], "scale": [0.3], "coef": [2.0],
                       "intercept": -1.0},
            "verified": trees}
    assert check_spec(spec) is spec
    feats = np.zeros((4, 2, len(FEATURES)))
    feats[..., FEATURES.index("sim")] = [[0.2, 0.9], [0.3, 0.4], [0.5, 0.1], [0.8, 0.7]]
    feats[..., FEATURES.index("log_h_inliers")] = 3.0
    feats[:2, :, FEATURES.index("verified")] = 1.0  # the first two photos were verified
    objects = np.array([[0, 1], [2, -1], [3, 4], [5, 6]])
    p = photo_probabilities(spec, feats, objects)
    cols = [FEATURES.index(n) for n in names]
    assert np.allclose(p[:2][objects[:2] >= 0], apply_trees(trees, feats[:2][..., cols])[
        objects[:2] >= 0])
    assert np.allclose(p[2:], global_probabilities(spec, feats[2:]))
    assert p[1, 1] == 0.0, "no candidate, no probability"
    with pytest.raises(ScoreSpecError, match="verified model is 'svm'"):
        check_spec({**spec, "verified": {**trees, "model": "svm"}})
