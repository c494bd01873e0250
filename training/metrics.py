"""Classifier and retrieval metrics on the test split (scikit-learn, averages named).

The paper's reference code swapped false positives and false negatives in its precision and
recall. Here precision/recall/F1 come from scikit-learn with an explicit `average`, computed
over the classes (objects) of the catalogue, and every figure says which average it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from artwatch.catalogue.stats import BINS, bin_for

TOP_KS = (1, 3, 5, 10)
# The paper's photos-per-object bins (Fig. 4), the same ones `artwatch catalogue stats` shows.
PPO_BUCKETS = tuple(b for b in BINS if b != "<3")
# The headline figures a bundle carries and its report tabulates (averages named).
SUMMARY_METRICS = (
    "top1", "top3", "top5", "top10",
    "precision_macro", "recall_macro", "f1_macro", "f1_weighted",
)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true label is among the k highest scores."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, kth=k - 1, axis=1)[:, :k]
    return float(np.mean([labels[i] in top[i] for i in range(len(labels))]))


def prf(labels: np.ndarray, predicted: np.ndarray, classes: Sequence[int]) -> dict[str, float]:
    """Macro and weighted precision / recall / F1 over `classes` (zero_division=0)."""
    out: dict[str, float] = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, predicted, labels=list(classes), average=average, zero_division=0
        )
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    return out


def most_confused(
    labels: np.ndarray, predicted: np.ndarray, names: Sequence[str], top: int = 10
) -> list[dict]:
    """Object pairs most often mistaken for one another (true -> predicted, counts)."""
    pairs = Counter((int(t), int(p)) for t, p in zip(labels, predicted, strict=True) if t != p)
    return [
        {"true": names[t], "predicted": names[p], "count": c}
        for (t, p), c in pairs.most_common(top)
    ]


def classification_report(
    scores: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    *,
    collections: Sequence[str] | None = None,
    photos_per_object: Sequence[int] | None = None,
) -> dict:
    """Everything the report shows for one scorer (classifier probs or kNN similarities)."""
    labels = np.asarray(labels)
    predicted = scores.argmax(axis=1) if len(labels) else np.zeros(0, int)
    out: dict = {"n": int(len(labels))}
    for k in TOP_KS:
        out[f"top{k}"] = topk_accuracy(scores, labels, k)
    out["accuracy"] = out["top1"]
    out.update(prf(labels, predicted, sorted(set(labels.tolist()))))
    out["prf_classes"] = "objects present in the test split"
    if collections is not None:
        per: dict[str, dict] = {}
        for name in sorted(set(collections)):
            mask = np.array([c == name for c in collections])
            per[name] = {
                "n": int(mask.sum()),
                "accuracy": float(np.mean(predicted[mask] == labels[mask])),
            }
        out["per_collection"] = per
    if photos_per_object is not None:
        buckets: dict[str, dict] = {}
        ppo = [bin_for(n) for n in photos_per_object]
        for name in PPO_BUCKETS:
            mask = np.array([b == name for b in ppo])
            if mask.any():
                buckets[name] = {
                    "n": int(mask.sum()),
                    "accuracy": float(np.mean(predicted[mask] == labels[mask])),
                    "top5": topk_accuracy(scores[mask], labels[mask], 5),
                }
        out["per_photos_per_object"] = buckets
    out["most_confused"] = most_confused(labels, predicted, names)
    return out


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    return confusion_matrix(labels, predicted, labels=list(range(n_classes)))


def knn_scores(
    queries: np.ndarray, references: np.ndarray, ref_labels: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per-object score = best cosine similarity to any reference photo of that object.

    Embeddings are L2-normalised, so a matrix product is the cosine similarity; objects
    without a reference photo score -inf (they can never be retrieved).
    """
    sims = queries @ references.T
    out = np.full((len(queries), n_classes), -np.inf, dtype=np.float32)
    for c in np.unique(ref_labels):
        out[:, c] = sims[:, ref_labels == c].max(axis=1)
    return out
