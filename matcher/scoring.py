"""The per-photo, per-object alert score, shared by training (fit + thresholds) and the matcher.

For a photo and each of the bundle's objects there are two signals from one forward pass:

* ``p``: the classifier's temperature-calibrated probability of the object;
* ``r``: retrieval, the best cosine similarity of the photo's embedding to any reference photo of
  the object (training photos while training; every indexed catalogue photo in the matcher).
  An object without a reference photo has ``r = 0`` (no retrieval evidence).

`combine()` turns them into one score per object, according to the bundle's ``score`` spec
(``bundle.json["score"]``):

* ``{"kind": "classifier"}``: ``p`` alone (the score of bundles written before the combined
  score; a bundle.json without ``score`` means this);
* ``{"kind": "product", "w": w, "b": b}``: ``p * sigmoid(w * r + b)``, the classifier's
  probability discounted by how far the photo is from the object's reference photos. This is
  what training writes: ``w`` and ``b`` are a one-feature logistic regression of "is this the
  photo's object" on ``r``, fitted on the VALIDATION split only (`fit_product`); the alert
  thresholds are then set on this score on the test split.
* ``{"kind": "logistic", "features": [...], "coef": [...], "intercept": b}``:
  ``sigmoid(b + coef . x)`` with ``x`` from [p, r, margin, agree] (``margin``: ``r`` minus the
  best ``r`` of any other object; ``agree``: 1 when the object is both the classifier's and
  retrieval's top-1). Measured no better than ``product`` on COIL-100 and a generated catalogue
  (training/README.md), so training does not write it; kept for comparisons.

Training's thresholds and the matcher's decisions therefore use the same function of the same
inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

FEATURES = ("p", "r", "margin", "agree")
CLASSIFIER_ONLY: dict[str, Any] = {"kind": "classifier"}
MIN_FIT_PHOTOS = 8  # fewer validation photos than this: keep the classifier-only score
CANDIDATES = 3  # rows per validation photo: union of classifier and retrieval top-3


def best_per_object(sims: Any, ref_objects: Any, n_objects: int) -> np.ndarray:
    """(queries x objects) best similarity per object from (queries x references) similarities.

    `sims` is a numpy array or torch tensor (kept on its device); `ref_objects[j]` is the object
    index (0..n_objects-1) of reference j, or -1 for a reference of no object of the bundle
    (ignored). An object without a reference gets 0.
    """
    sims = torch.as_tensor(sims, dtype=torch.float32)
    idx = torch.as_tensor(np.asarray(ref_objects, dtype=np.int64), device=sims.device)
    m = sims.shape[0]
    if m == 0 or n_objects == 0:
        return np.zeros((m, n_objects), dtype=np.float32)
    idx = torch.where((idx >= 0) & (idx < n_objects), idx, torch.full_like(idx, n_objects))
    out = torch.full((m, n_objects + 1), -torch.inf, dtype=torch.float32, device=sims.device)
    out.scatter_reduce_(1, idx[None, :].expand(m, -1), sims, reduce="amax")
    out = out[:, :n_objects]
    out = torch.where(torch.isfinite(out), out, torch.zeros_like(out))
    return out.cpu().numpy()


def features(probs: np.ndarray, retrieval: np.ndarray) -> np.ndarray:
    """(photos x objects x 4) feature array [p, r, margin, agree]."""
    p = np.asarray(probs, dtype=np.float64)
    r = np.nan_to_num(np.asarray(retrieval, dtype=np.float64), nan=0.0, neginf=0.0, posinf=1.0)
    n_photos, n_obj = p.shape
    if n_obj == 0 or n_photos == 0:
        return np.zeros((n_photos, n_obj, len(FEATURES)))
    order = np.argsort(-r, axis=1, kind="stable")
    rows = np.arange(n_photos)
    first = r[rows, order[:, 0]]
    second = r[rows, order[:, 1]] if n_obj > 1 else np.zeros(n_photos)
    other_best = np.where(np.arange(n_obj)[None, :] == order[:, :1], second[:, None],
                          first[:, None])
    margin = r - other_best
    agree = (
        (np.arange(n_obj)[None, :] == p.argmax(1)[:, None])
        & (np.arange(n_obj)[None, :] == order[:, :1])
    ).astype(np.float64)
    return np.stack([p, r, margin, agree], axis=-1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


def combine(
    probs: np.ndarray, retrieval: np.ndarray | None, spec: Mapping[str, Any] | None
) -> np.ndarray:
    """(photos x objects) combined score under `spec` (None or no kind: classifier only)."""
    p = np.asarray(probs, dtype=np.float64)
    kind = (spec or CLASSIFIER_ONLY).get("kind", "classifier")
    if kind == "classifier":
        return p
    if retrieval is None:
        retrieval = np.zeros_like(p)
    if kind == "product":
        r = np.nan_to_num(np.asarray(retrieval, dtype=np.float64), nan=0.0, neginf=0.0)
        return p * _sigmoid(float(spec["w"]) * r + float(spec["b"]))  # type: ignore[index]
    if kind == "logistic":
        names = list(spec.get("features", FEATURES))  # type: ignore[union-attr]
        x = features(p, retrieval)[..., [FEATURES.index(n) for n in names]]
        coef = np.asarray(spec["coef"], dtype=np.float64)  # type: ignore[index]
        return _sigmoid(x @ coef + float(spec["intercept"]))  # type: ignore[index]
    raise ValueError(f"unknown score kind {kind!r}")


def candidate_rows(probs: np.ndarray, retrieval: np.ndarray, k: int = CANDIDATES) -> np.ndarray:
    """(photos x objects) mask of each photo's classifier top-k and retrieval top-k objects."""
    n_obj = probs.shape[1]
    k = min(k, n_obj)
    mask = np.zeros(probs.shape, dtype=bool)
    rows = np.arange(len(probs))[:, None]
    mask[rows, np.argsort(-probs, axis=1, kind="stable")[:, :k]] = True
    mask[rows, np.argsort(-retrieval, axis=1, kind="stable")[:, :k]] = True
    return mask


def fit_logistic(
    probs: np.ndarray,
    retrieval: np.ndarray,
    labels: np.ndarray,
    *,
    names: Sequence[str] = FEATURES,
    c: float = 1.0,
) -> dict[str, Any]:
    """Fit the logistic score on (validation) photos; classifier-only when that cannot be done.

    Rows are each photo's candidate objects (classifier and retrieval top-3): the row of the
    photo's own object is a positive, the others are the look-alikes an alert must not pick.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels)
    keep = labels >= 0
    probs, retrieval, labels = probs[keep], retrieval[keep], labels[keep]
    if len(labels) < MIN_FIT_PHOTOS or probs.shape[1] < 2:
        return {**CLASSIFIER_ONLY, "why": f"{len(labels)} validation photos: too few to fit"}
    x = features(probs, retrieval)[..., [FEATURES.index(n) for n in names]]
    mask = candidate_rows(probs, retrieval)
    target = np.arange(probs.shape[1])[None, :] == labels[:, None]
    mask |= target
    xs, ys = x[mask], target[mask].astype(int)
    if ys.min() == ys.max():
        return {**CLASSIFIER_ONLY, "why": "validation rows of one class only"}
    model = LogisticRegression(C=c, max_iter=1000).fit(xs, ys)
    return {
        "kind": "logistic",
        "features": list(names),
        "coef": [float(v) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
        "fitted_on": "validation",
        "rows": int(len(ys)),
        "photos": int(len(labels)),
    }


def fit_product(probs: np.ndarray, retrieval: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The ``product`` score fitted on (validation) photos; classifier-only when it cannot be."""
    fitted = fit_logistic(probs, retrieval, labels, names=("r",))
    if fitted["kind"] != "logistic":
        return fitted
    return {
        "kind": "product",
        "w": fitted["coef"][0],
        "b": fitted["intercept"],
        "fitted_on": "validation",
        "rows": fitted["rows"],
        "photos": fitted["photos"],
    }


def describe(spec: Mapping[str, Any] | None) -> str:
    kind = (spec or CLASSIFIER_ONLY).get("kind", "classifier")
    if kind == "classifier":
        return "calibrated classifier probability"
    if kind == "product":
        return "p * sigmoid(w * retrieval + b), (w, b) fitted on validation"
    return "logistic(p, retrieval, margin, agreement), fitted on validation"
