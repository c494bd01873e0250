"""The matcher's alert score is training's: same function, same retrieval, old bundles unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from matcher.bundle import Bundle
from matcher.catalogue_index import CatalogueIndex
from matcher.scoring import combine
from training.calibration import softmax
from training.pipeline import retrieval_scores

SPEC = {"kind": "product", "w": 9.0, "b": -6.0}  # what training writes


def _info(**extra) -> dict:
    return {"architecture": "tf_efficientnet_lite0", "resolution": 64, "mean": [0.5] * 3,
            "std": [0.5] * 3, "objects": ["A", "B", "C"], "embedding_dim": 8,
            "temperature": 1.0, "thresholds": {"precision_0.95": 0.9}, **extra}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_bundle_without_score_field_is_classifier_only() -> None:
    probs = softmax(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32), 1.0)
    old = Bundle(Path("old"), _info(), None, torch.device("cpu"))  # type: ignore[arg-type]
    assert old.score == {"kind": "classifier"}
    np.testing.assert_array_equal(old.alert_scores(probs, np.ones((5, 3))), probs)
    new = Bundle(Path("new"), _info(score=SPEC), None, torch.device("cpu"))  # type: ignore[arg-type]
    assert not np.allclose(new.alert_scores(probs, np.ones((5, 3))), probs)


def test_matcher_and_training_scores_agree_on_the_same_inputs() -> None:
    rng = np.random.default_rng(1)
    refs = _unit(rng.normal(size=(9, 8)))
    queries = _unit(rng.normal(size=(4, 8)))
    classes = np.array([0, 0, 1, 1, 1, 2, 2, 0, 1])  # bundle class of each reference photo
    object_ids = [101, 102, 103]  # objects.id of classes A, B, C
    # The matcher's index also holds a photo of an object the bundle does not know (id 999).
    index = CatalogueIndex(
        torch.from_numpy(np.vstack([refs, _unit(rng.normal(size=(1, 8)))])),
        np.array([object_ids[c] for c in classes] + [999]),
        np.arange(10),
    )
    matcher_r = index.per_object(queries, object_ids)
    training_r = retrieval_scores(queries, refs, classes, 3)
    np.testing.assert_allclose(matcher_r, training_r, atol=1e-6)
    probs = softmax(rng.normal(size=(4, 3)).astype(np.float32), 1.0)
    bundle = Bundle(Path("b"), _info(score=SPEC), None, torch.device("cpu"))  # type: ignore[arg-type]
    np.testing.assert_allclose(bundle.alert_scores(probs, matcher_r),
                               combine(probs, training_r, SPEC), atol=1e-6)
    # A class that left the catalogue (None) and an object with no indexed photo get r = 0.
    gone = index.per_object(queries, [101, None, 555])
    np.testing.assert_allclose(gone[:, 0], training_r[:, 0], atol=1e-6)
    assert (gone[:, 1:] == 0).all()
    best = index.best_photo(queries[0], 102)
    rows = np.flatnonzero(classes == 1)
    assert best == rows[np.argmax(refs[rows] @ queries[0])]
