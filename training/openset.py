"""Open-set alert thresholds, with honest (cross-fitted) operating-point figures.

Most listings show objects that are in no catalogue, so whether to alert is a threshold on the
photo's best alert score (`matcher.scoring`: the calibrated classifier probability combined with
retrieval similarity, the bundle's `score`). Positives are test photos of catalogued objects (an
alert is true only when its top-1 object is the right one); negatives are photos of held-out objects
the model never saw. A threshold is set for a target precision (0.90 / 0.95 / 0.99) or for an
alert budget (false alerts per 1,000 listings without a catalogued object). Its recall and
false-alert rate are measured by cross-fitting: thresholds fitted on k-1 folds (grouped by
object) are scored on the k-th, so no figure comes from the photos that set it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scored:
    """Photos with a score; `kind` 1 = correct positive, 0 = wrong positive, -1 = negative."""

    scores: np.ndarray
    kind: np.ndarray
    groups: np.ndarray  # object id per photo, for grouped folds


def counts_at(data: Scored, threshold: float) -> dict[str, int]:
    alert = data.scores >= threshold
    return {
        "true_alerts": int((alert & (data.kind == 1)).sum()),
        "wrong_object_alerts": int((alert & (data.kind == 0)).sum()),
        "negative_alerts": int((alert & (data.kind == -1)).sum()),
        "positives": int((data.kind >= 0).sum()),
        "negatives": int((data.kind == -1).sum()),
    }


def rates(c: dict[str, int]) -> dict[str, float]:
    alerts = c["true_alerts"] + c["wrong_object_alerts"] + c["negative_alerts"]
    return {
        "precision": c["true_alerts"] / alerts if alerts else float("nan"),
        "recall": c["true_alerts"] / c["positives"] if c["positives"] else float("nan"),
        "false_alert_rate": c["negative_alerts"] / c["negatives"]
        if c["negatives"]
        else float("nan"),
    }


def threshold_for_precision(data: Scored, target: float) -> float:
    """Lowest threshold whose alerts reach `target` precision (inf when none does)."""
    order = np.argsort(-data.scores, kind="stable")
    s, k = data.scores[order], data.kind[order]
    tp = np.cumsum(k == 1)
    n = np.arange(1, len(s) + 1)
    best = math.inf
    for i in range(len(s)):
        # only cut between distinct scores: everything tied with s[i] alerts together
        if i + 1 < len(s) and s[i + 1] == s[i]:
            continue
        if tp[i] / n[i] >= target:
            best = float(s[i])
    return best


def threshold_for_budget(data: Scored, per_thousand: float) -> float:
    """Lowest threshold letting at most `per_thousand` negatives in 1,000 raise an alert."""
    neg = np.sort(data.scores[data.kind == -1])[::-1]
    if len(neg) == 0:
        return float(np.min(data.scores)) if len(data.scores) else 0.0
    allowed = int(math.floor(per_thousand / 1000.0 * len(neg)))
    if allowed >= len(neg):
        return float(neg[-1])
    return float(np.nextafter(np.float32(neg[allowed]), np.float32(np.inf)))


def _folds(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    uniq = sorted(set(groups.tolist()))
    random.Random(seed).shuffle(uniq)
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    return np.array([fold_of[g] for g in groups.tolist()])


def cross_fit(data: Scored, fit, k: int = 5, seed: int = 0) -> dict[str, float]:  # noqa: ANN001
    """Pooled rates of `fit(train_part) -> threshold` measured on held-out folds."""
    folds = _folds(data.groups, k, seed)
    total = dict.fromkeys(
        ("true_alerts", "wrong_object_alerts", "negative_alerts", "positives", "negatives"), 0
    )
    for f in range(k):
        test = folds == f
        if not test.any():
            continue
        train = Scored(data.scores[~test], data.kind[~test], data.groups[~test])
        part = Scored(data.scores[test], data.kind[test], data.groups[test])
        for key, value in counts_at(part, fit(train)).items():
            total[key] += value
    return {**rates(total), **total}


def operating_points(
    data: Scored,
    *,
    precisions: Sequence[float] = (0.90, 0.95, 0.99),
    budgets: Sequence[float] = (5.0,),
    folds: int = 5,
    seed: int = 0,
) -> list[dict]:
    """Thresholds (fitted on all of `data`) with cross-fitted recall / false-alert rate."""
    points = []
    specs = [("precision", p, lambda d, p=p: threshold_for_precision(d, p)) for p in precisions]
    specs += [("alerts_per_1000", b, lambda d, b=b: threshold_for_budget(d, b)) for b in budgets]
    for kind, target, fitter in specs:
        threshold = fitter(data)
        crossfit = cross_fit(data, fitter, folds, seed)
        points.append(
            {
                "target": kind,
                "value": target,
                "threshold": threshold,
                "cross_fitted": {
                    "precision": crossfit["precision"],
                    "recall": crossfit["recall"],
                    "false_alert_rate": crossfit["false_alert_rate"],
                    "false_alerts_per_1000": crossfit["false_alert_rate"] * 1000.0,
                },
                "folds": folds,
            }
        )
    return points


def build_scored(
    pos_probs: np.ndarray,
    pos_labels: np.ndarray,
    pos_groups: Sequence[str],
    neg_probs: np.ndarray,
    neg_groups: Sequence[str],
) -> Scored:
    """Scores = best per-object alert score of positives (test) and negatives (held out).

    `pos_probs` / `neg_probs` are (photos x objects) alert scores (`matcher.scoring.combine`;
    calibrated probabilities for the classifier-only score); a positive is right when its
    best-scoring object is its own.
    """
    pos_kind = (pos_probs.argmax(1) == pos_labels).astype(int) if len(pos_labels) else np.zeros(0)
    scores = np.concatenate(
        [
            pos_probs.max(1) if len(pos_probs) else np.zeros(0),
            neg_probs.max(1) if len(neg_probs) else np.zeros(0),
        ]
    )
    kind = np.concatenate([pos_kind, -np.ones(len(neg_probs), dtype=int)])
    groups = np.array(list(pos_groups) + list(neg_groups), dtype=object)
    return Scored(scores.astype(np.float64), kind.astype(int), groups)
