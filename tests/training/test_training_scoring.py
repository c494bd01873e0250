"""The combined alert score in training: fitted on validation only, thresholds set on it."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.scoring import best_per_object, combine, features, fit_logistic, fit_product
from training.calibration import softmax
from training.catalogue import Photo
from training.openset import build_scored, threshold_for_precision
from training.pipeline import Evaluated, evaluate_outputs, retrieval_scores, thresholds_from


def test_best_per_object_and_features_by_hand() -> None:
    sims = np.array([[0.9, 0.2, 0.5, 0.99], [0.1, 0.3, 0.8, 0.0]], np.float32)
    refs = np.array([0, 0, 1, -1])  # the last reference belongs to no object of the bundle
    r = best_per_object(sims, refs, 3)
    np.testing.assert_allclose(r, [[0.9, 0.5, 0.0], [0.3, 0.8, 0.0]], atol=1e-6)
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]])
    x = features(probs, r)
    # margin: r minus the best r of any other object; agree: classifier and retrieval top-1
    np.testing.assert_allclose(x[0, :, 2], [0.4, -0.4, -0.9], atol=1e-6)
    np.testing.assert_allclose(x[1, :, 2], [-0.5, 0.5, -0.8], atol=1e-6)
    np.testing.assert_array_equal(x[0, :, 3], [1, 0, 0])
    np.testing.assert_array_equal(x[1, :, 3], [0, 0, 0])  # classifier says 0, retrieval 1


def test_combine_classifier_only_and_logistic() -> None:
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(4, 5)).astype(np.float32), 1.0)
    r = rng.uniform(0, 1, size=(4, 5))
    np.testing.assert_array_equal(combine(probs, r, None), probs)  # no spec: classifier only
    np.testing.assert_array_equal(combine(probs, r, {"kind": "classifier"}), probs)
    spec = {"kind": "logistic", "features": ["p", "r", "margin", "agree"],
            "coef": [2.0, 3.0, 4.0, 1.0], "intercept": -5.0}
    x = features(probs, r)
    expected = 1 / (1 + np.exp(-(x @ np.array([2.0, 3.0, 4.0, 1.0]) - 5.0)))
    np.testing.assert_allclose(combine(probs, r, spec), expected)
    product = {"kind": "product", "w": 8.0, "b": -4.0}
    np.testing.assert_allclose(combine(probs, r, product), probs / (1 + np.exp(-(8.0 * r - 4.0))))
    with pytest.raises(ValueError):
        combine(probs, r, {"kind": "nonsense"})


def _photos(labels: np.ndarray, objects: list[str], split: str) -> list[Photo]:
    return [
        Photo(key=f"{split}{i}", object_id=objects[y] if y >= 0 else f"held{i % 2}",
              collection="c", phash=0, source=f"{split}{i}.jpg", loader=lambda: None)
        for i, y in enumerate(labels)
    ]


def _world(seed: int, val_retrieval_informative: bool, n: int = 6) -> Evaluated:
    """Synthetic model outputs: embeddings near their object's prototype, noisy logits."""
    rng = np.random.default_rng(seed)
    objects = [f"o{i}" for i in range(n)]
    proto = rng.normal(size=(n + 2, 32))

    def emb(y: np.ndarray, noise: float) -> np.ndarray:
        e = proto[np.where(y >= 0, y, n + (np.arange(len(y)) % 2))] + noise * rng.normal(
            size=(len(y), 32))
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

    labels = {
        "train": np.repeat(np.arange(n), 3),
        "val": np.repeat(np.arange(n), 3),
        "test": np.repeat(np.arange(n), 4),
        "holdout": -np.ones(12, dtype=np.int64),
    }
    logits, embeds = {}, {}
    for name, y in labels.items():
        lg = rng.normal(size=(len(y), n)).astype(np.float32)
        lg[y >= 0, y[y >= 0]] += 2.0
        logits[name] = lg
        noisy = name == "val" and not val_retrieval_informative
        embeds[name] = emb(y, 5.0 if noisy else 0.4)
    photos = {name: _photos(y, objects, name) for name, y in labels.items()}
    return Evaluated(logits, embeds, photos, labels)


def _evaluate(ev: Evaluated) -> dict:
    objects = [f"o{i}" for i in range(ev.logits["train"].shape[1])]
    return evaluate_outputs(ev, objects, 1.0, dict.fromkeys(objects, 10), precisions=(0.9,),
                            budgets=(5.0,), folds=3, seed=0)


def test_score_is_fitted_on_validation_only_and_thresholds_use_it() -> None:
    ev = _world(0, val_retrieval_informative=True)
    out = _evaluate(ev)
    spec = out["score"]
    assert spec["kind"] == "product" and spec["fitted_on"] == "validation"
    # exactly the fit on validation outputs (retrieval against training photos)
    r_val = retrieval_scores(ev.embeddings["val"], ev.embeddings["train"], ev.labels["train"], 6)
    assert spec == fit_product(softmax(ev.logits["val"], 1.0), r_val, ev.labels["val"])
    assert spec["w"] > 0  # retrieval separates right from wrong objects on this validation

    # Changing the test split changes no coefficient; changing validation does.
    ev2 = _world(0, val_retrieval_informative=True)
    noisy = ev2.embeddings["test"] + np.random.default_rng(1).normal(
        size=ev2.embeddings["test"].shape)
    ev2.embeddings["test"] = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(
        np.float32)
    ev2.logits["test"] = ev2.logits["test"][:, ::-1].copy()
    assert _evaluate(ev2)["score"] == spec
    ev3 = _world(0, val_retrieval_informative=False)
    assert _evaluate(ev3)["score"] != spec

    # The thresholds are set on the combined score of the test split (held-out negatives).
    probs = softmax(ev.logits["test"], 1.0)
    r_test = retrieval_scores(ev.embeddings["test"], ev.embeddings["train"],
                              ev.labels["train"], 6)
    hold_p = softmax(ev.logits["holdout"], 1.0)
    r_hold = retrieval_scores(ev.embeddings["holdout"], ev.embeddings["train"],
                              ev.labels["train"], 6)
    scored = build_scored(combine(probs, r_test, spec), ev.labels["test"],
                          [p.object_id for p in ev.photos["test"]],
                          combine(hold_p, r_hold, spec),
                          [p.object_id for p in ev.photos["holdout"]])
    point = out["operating_points"][0]
    assert point["threshold"] == threshold_for_precision(scored, 0.9)
    classifier_only = build_scored(probs, ev.labels["test"],
                                   [p.object_id for p in ev.photos["test"]], hold_p,
                                   [p.object_id for p in ev.photos["holdout"]])
    assert out["operating_points_classifier_only"][0]["threshold"] == threshold_for_precision(
        classifier_only, 0.9)
    thresholds = thresholds_from(out["operating_points"], spec)
    assert thresholds["precision_0.90"] == point["threshold"]
    assert "sigmoid" in thresholds["score"]


def test_too_little_validation_keeps_classifier_only() -> None:
    probs = softmax(np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32), 1.0)
    spec = fit_product(probs, np.zeros((3, 4)), np.array([0, 1, 2]))
    assert spec["kind"] == "classifier"
    assert fit_logistic(probs, np.zeros((3, 4)), np.array([0, 1, 2]))["kind"] == "classifier"
    np.testing.assert_array_equal(combine(probs, np.ones((3, 4)), spec), probs)
