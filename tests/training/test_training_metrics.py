"""Metrics, calibration and thresholds against hand-computed figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.calibration import fit_temperature, nll, reliability, softmax
from training.metrics import classification_report, knn_scores, prf, topk_accuracy
from training.openset import (
    Scored,
    counts_at,
    cross_fit,
    operating_points,
    threshold_for_budget,
    threshold_for_precision,
)
from training.trainer import class_weights, lr_at

# true / predicted; confusion matrix (rows true, columns predicted):
#   [[2, 1, 0],
#    [0, 1, 1],
#    [0, 0, 1]]
Y = np.array([0, 0, 0, 1, 1, 2])
P = np.array([0, 0, 1, 1, 2, 2])


def _scores(pred: np.ndarray, n: int = 3) -> np.ndarray:
    s = np.full((len(pred), n), 0.1)
    s[np.arange(len(pred)), pred] = 0.8
    return s


def test_precision_recall_are_not_swapped() -> None:
    m = prf(Y, P, [0, 1, 2])
    # per class precision TP/(TP+FP): 2/2, 1/2, 1/2 ; recall TP/(TP+FN): 2/3, 1/2, 1/1
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    # swapping false positives and false negatives would exchange these two numbers
    assert m["precision_macro"] != pytest.approx(m["recall_macro"])
    assert m["precision_weighted"] == pytest.approx((3 * 1 + 2 * 0.5 + 1 * 0.5) / 6)
    assert m["recall_weighted"] == pytest.approx(4 / 6)  # = accuracy
    assert m["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_report_topk_collections_and_confusions() -> None:
    scores = _scores(P)
    scores[2, 0] = 0.5  # true class second-best for the one class-0 miss
    rep = classification_report(
        scores,
        Y,
        ["a", "b", "c"],
        collections=["x", "x", "y", "y", "y", "y"],
        photos_per_object=[3, 3, 3, 12, 12, 4],
    )
    assert rep["top1"] == pytest.approx(4 / 6)
    assert rep["top3"] == 1.0
    assert topk_accuracy(scores, Y, 2) == pytest.approx(5 / 6)
    assert rep["per_collection"]["x"]["accuracy"] == 1.0
    assert rep["per_collection"]["y"]["accuracy"] == pytest.approx(2 / 4)
    assert rep["per_photos_per_object"]["10+"]["n"] == 2
    assert rep["per_photos_per_object"]["3"]["accuracy"] == pytest.approx(2 / 3)
    assert {(c["true"], c["predicted"]) for c in rep["most_confused"]} == {("a", "b"), ("b", "c")}


def test_knn_scores_best_reference_per_object() -> None:
    refs = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    q = np.array([[0.8, 0.6]], dtype=np.float32)
    s = knn_scores(q, refs, np.array([0, 1, 1]), 3)
    assert s[0, 0] == pytest.approx(0.8) and s[0, 1] == pytest.approx(0.96)
    assert s[0, 2] == -np.inf


def test_temperature_scaling_lowers_nll_of_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 400)
    logits = rng.normal(0, 1, (400, 5))
    hit = rng.random(400) < 0.6
    logits[np.arange(400), np.where(hit, y, (y + 1) % 5)] += 3.0
    logits *= 4  # overconfident
    t = fit_temperature(logits, y)
    assert t > 2
    assert nll(logits, y, t) < nll(logits, y, 1.0)
    ece_before, _ = reliability(softmax(logits), y)
    ece_after, _ = reliability(softmax(logits, t), y)
    assert ece_after < ece_before


def test_ece_hand_case() -> None:
    probs = np.array([[0.9, 0.1]] * 4)
    ece, bins = reliability(probs, np.array([0, 0, 1, 1]))
    assert ece == pytest.approx(0.4) and len(bins) == 1


def test_thresholds_by_hand() -> None:
    # desc: .95 neg, .9 ok, .85 wrong object, .8 ok, .75 neg, .7 ok, .6 neg
    data = Scored(
        np.array([0.9, 0.8, 0.7, 0.85, 0.6, 0.75, 0.95]),
        np.array([1, 1, 1, 0, -1, -1, -1]),
        np.array(list("abcdxyz"), dtype=object),
    )
    assert threshold_for_precision(data, 0.5) == pytest.approx(0.7)
    assert math.isinf(threshold_for_precision(data, 0.6))
    t = threshold_for_budget(data, 400)  # 1 false alert in 3 negatives allowed
    c = counts_at(data, t)
    assert c["negative_alerts"] == 1 and t > 0.75
    assert c["true_alerts"] == 2  # .9 and .8 are above .75+


def test_cross_fitting_never_measures_on_fitting_photos() -> None:
    rng = np.random.default_rng(1)
    groups = np.array([f"o{i % 20}" for i in range(200)], dtype=object)
    data = Scored(rng.random(200), rng.choice([1, 0, -1], 200), groups)
    seen_overlap = []

    def fitter(train: Scored) -> float:
        seen_overlap.append(set(train.groups.tolist()))
        return 0.5

    out = cross_fit(data, fitter, k=4)
    assert len(seen_overlap) == 4
    for i, fit_groups in enumerate(seen_overlap):
        assert len(fit_groups) == 15  # 5 of 20 objects were held out of each fit
        for j, other in enumerate(seen_overlap):
            if i != j:
                assert fit_groups | other == set(groups.tolist())
    assert out["positives"] + out["negatives"] == 200
    points = operating_points(data, precisions=(0.9,), budgets=(10.0,), folds=4)
    assert {p["target"] for p in points} == {"precision", "alerts_per_1000"}


def test_class_weights_inverse_frequency_and_lr_schedule() -> None:
    w = class_weights([0, 0, 0, 1], 3)
    assert w.tolist() == pytest.approx([4 / 6, 2.0, 0.0])
    assert lr_at(5, 100, 0, 1.0, "constant") == 1.0
    assert lr_at(0, 100, 10, 1.0, "cosine") == pytest.approx(0.1)
    assert lr_at(100, 100, 10, 1.0, "cosine") == pytest.approx(0.0)
