"""An untrained bundle in the deployment format, for plumbing tests and throughput benchmarks.

Random backbone weights (no download, no training), a whitening of the right shape, and a
score that decides on the perceptual-hash evidence only: a listing photo that re-uses a
catalogue photo alerts, anything else does not, whatever the random embeddings say. What the
queue, the decode pool, the sweeper or the daemon are tested on does not depend on recognising
anything; `artwatch train` makes real bundles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from matcher.bundle import local_stage_info, save_bundle, save_codebook
from matcher.crop import crop_info
from matcher.evidence import GLOBAL_FEATURES
from matcher.model import ArtefactClassifier, backbone_config
from matcher.pooling import SERVED
from matcher.scoring import LISTING_FEATURES, bucket_keys
from matcher.verify import matching_info

UNTRAINED_DIM = 64
ALERT_THRESHOLD = 0.9


def _logistic(names: tuple[str, ...], coef: dict[str, float], intercept: float
              ) -> dict[str, Any]:
    return {"features": list(names), "mean": [0.0] * len(names), "scale": [1.0] * len(names),
            "coef": [coef.get(n, 0.0) for n in names], "intercept": intercept}


# reuse = 1 - distance / 12: up to 5 bits from a catalogue photo p >= 0.95 (alerts), 6 bits
# 0.5, 8 bits 0.0025
UNTRAINED_SCORE: dict[str, Any] = {
    "kind": "calibrated-evidence",
    "temperature": 0.05,
    "candidates": 5,
    "verify_floor": 1.1,  # never verify: nothing to verify with
    "global": _logistic(GLOBAL_FEATURES, {"reuse": 36.0}, -18.0),
    "listing": _logistic(LISTING_FEATURES, {"best_logit": 1.0}, 0.0),
}
UNTRAINED_THRESHOLDS: dict[str, Any] = {
    "default": "precision_0.95",
    "operating_points": {
        name: {"buckets": dict.fromkeys(bucket_keys()[:-1], ALERT_THRESHOLD),
               "promise": {b: {"per_1000": None, "interval": [None, None], "negatives": 0}
                           for b in bucket_keys()[:-1]},
               "note": "untrained: perceptual-hash evidence only"}
        for name in ("precision_0.90", "precision_0.95", "precision_0.99", "alerts_per_1000_5")
    },
}


def write_untrained_bundle(path: Path, *, name: str, objects: list[str],
                           architecture: str = "tf_efficientnet_lite0",
                           resolution: int = 64, dim: int = UNTRAINED_DIM,
                           vlad_words: int = 0, query_crop: bool = True) -> Path:
    """Write the bundle directory `path` (embeddings of `dim` dimensions); returns it.

    `vlad_words` > 0: with a local first stage of that many random visual words (the
    matcher's work per photo is then a trained bundle's: RootSIFT, VLAD search, nominees
    verified). `query_crop`: queries embedded from their object crops as a trained bundle's
    are (`matcher.crop`; the random backbone's maps decide where)."""
    model = ArtefactClassifier(architecture, 0, whitening_dim=dim, pooling=SERVED)
    cfg = backbone_config(architecture)
    codebook = None
    if vlad_words > 0:
        rng = np.random.default_rng(0)
        codebook = np.abs(rng.standard_normal((vlad_words, 128))).astype(np.float32)
        codebook /= np.linalg.norm(codebook, axis=1, keepdims=True)  # RootSIFT: unit L2
    path = save_bundle(Path(path), model.eval(), {
        "name": name, "recipe": "untrained", "head": "none", "architecture": architecture,
        "pooling": dict(SERVED), "resolution": resolution, "mean": list(cfg.mean),
        "std": list(cfg.std),
        "objects": list(objects), "embedding_dim": dim, "whitening_dim": dim,
        "temperature": UNTRAINED_SCORE["temperature"],
        "score": UNTRAINED_SCORE, "thresholds": UNTRAINED_THRESHOLDS,
        **({"local_first_stage": local_stage_info(codebook)} if codebook is not None else {}),
        "local_matching": matching_info(),
        **({"query_crop": crop_info()}
           if query_crop else {}),
    })
    if codebook is not None:
        save_codebook(path, codebook)
    return path
