"""The photo score's verified model: logistic regression (served) or gradient-boosted trees.

    .venv/bin/python benchmarks/photo_score_models.py [--catalogue flat|coil] [--objects 300]

Why: on phone photos of flat objects in clutter the product's calibrated score accepts about
half of what ranking the same candidates by homography inliers alone accepts at 1% false
alerts (`benchmarks/flat_objects.py`, docs/recognition.md). The verified photo model is a
logistic regression on the evidence (`matcher.scoring.fit_logistic`): one weight per feature
whatever the others say, while "many inliers, low global similarity" (a small flat object in
clutter) and "high similarity, few inliers" (a smooth 3-D object) may need different weights.
Trees (scikit-learn's `HistGradientBoostingClassifier`) can learn such interactions.

What it does: `artwatch train`'s recipe (`training.deploy.train_deploy`) on the catalogue, then
the photo score cross-fitted again on the same out-of-fold evidence rows (the same 5 groups of
query objects as `training.calibrate.fit_photo_scores`, the same global model and the same
rows verified) with each verified model: the logistic regression, the monotone boosted trees
(`matcher.boosted`: both as `fit_photo_scores` fits them), and the same trees without their
monotone rules. Printed per query kind (studio, listing-style, phone views): top-1 and correct
and accepted at 1% false alerts (`training.ablation.open_set_row`: the threshold at the 99th
percentile of the best score of that kind's photos of objects left out of their world), beside
the pretrained kNN of the same queries. Catalogues: `flat`, the flat objects of
`benchmarks/flat_objects.py` (one museum photo each); `coil`, the COIL-100 catalogue of
`benchmarks/recognition.py`. `--queries` keeps the out-of-fold query set, so a second run
compares models without training again.

A measurement to decide whether to change the served score's model, not the product path.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from matcher import boosted  # noqa: E402
from matcher.evidence import FEATURES, GLOBAL_FEATURES, VERIFY_FEATURES  # noqa: E402
from matcher.scoring import VERIFY_FLOOR, apply_logistic, verification_targets  # noqa: E402
from training.ablation import _first_and_best, open_set_row  # noqa: E402
from training.calibrate import (  # noqa: E402
    _fit_models,
    _groups,
    _rows,
    _score,
    fit_photo_scores,
)
from training.crossfit import QuerySet  # noqa: E402
from training.views import LISTING, PHONE, STUDIO  # noqa: E402

KINDS = (STUDIO, LISTING, PHONE)
NAMES_V = [*GLOBAL_FEATURES, "verified", *VERIFY_FEATURES]


def masks(qs: QuerySet, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Photos of catalogued objects of this kind, and of objects left out of their world (and,
    for listing-style photos, the ordinary-listing distractors)."""
    positive = qs.positive & (qs.kind == kind)
    negative = ~qs.positive & (qs.kind == kind) & (qs.label >= 0)
    if kind == LISTING:
        negative |= qs.kind == "distractor"
    return positive, negative


def _free_trees(x: np.ndarray, y: np.ndarray, seed: int) -> HistGradientBoostingClassifier:
    """The served trees' settings (`matcher.boosted`) without their monotone rules."""
    return HistGradientBoostingClassifier(
        max_iter=boosted.ITERATIONS, learning_rate=boosted.LEARNING_RATE,
        max_leaf_nodes=boosted.LEAVES, min_samples_leaf=boosted.MIN_LEAF,
        l2_regularization=boosted.L2, early_stopping=False, random_state=seed).fit(x, y)


def cross_fitted(qs: QuerySet, model: str, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(n, candidates) out-of-fold photo probabilities with the verified model `model`:
    "logistic" and "trees" as `training.calibrate.fit_photo_scores` serves them (the trees
    with their monotone rules), or "trees without monotone rules" (scikit-learn directly)."""
    if model in ("logistic", "trees"):
        return fit_photo_scores(qs, folds=folds, verified_model=model).probabilities
    valid = qs.candidates.objects >= 0
    verified_col = qs.candidates.features[..., FEATURES.index("verified")] > 0
    groups = _groups(qs)
    k = max(2, min(folds, len(np.unique(groups))))
    out = np.zeros(valid.shape)
    feats = qs.candidates.features
    cols = [FEATURES.index(n) for n in NAMES_V]
    for train, _ in GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups):
        tr = np.zeros(len(groups), bool)
        tr[train] = True
        spec = _fit_models(qs, valid & tr[:, None], verified_col & tr[:, None],
                           GLOBAL_FEATURES, NAMES_V, VERIFY_FLOOR, True)
        test = np.flatnonzero(~tr)
        p, verified = _score(spec, qs, test)
        if "verified" in spec:
            # the rows the served verified model learns from: train rows the matcher verifies
            p_global = np.where(valid, apply_logistic(
                spec["global"], feats[..., [FEATURES.index(n) for n in GLOBAL_FEATURES]]), 0.0)
            gate = np.zeros(valid.shape, bool)
            for qi, ci in verification_targets(spec, qs.candidates.objects, p_global, feats):
                gate[qi, ci] = True
            xv, yv = _rows(qs, NAMES_V, valid & tr[:, None] & verified_col & gate)
            trees = _free_trees(xv, yv, seed)
            f = feats[test][..., cols]
            pv = trees.predict_proba(f.reshape(-1, len(cols)))[:, 1].reshape(f.shape[:2])
            p = np.where(verified, pv, p)
        out[test] = np.where(valid[test], p, 0.0)
    return out


def table(qs: QuerySet) -> None:
    scorers = {"pretrained kNN": (qs.baseline[:, 0], qs.baseline_sim[:, 0])}
    for model in ("logistic", "trees", "trees without monotone rules"):
        scorers[f"verified model: {model}"] = _first_and_best(qs, cross_fitted(qs, model))
    print("\n| scorer | " + " | ".join(f"{k} top-1 / c&a @1% FA" for k in KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for name, (first, best) in scorers.items():
        cells = []
        for kind in KINDS:
            pos, neg = masks(qs, kind)
            row = open_set_row(qs.label, first, best, pos, neg)
            cells.append(f"{row.get('top1', float('nan')):.3f} / "
                         f"{row.get('correct_accepted', float('nan')):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    counts = {k: (int(masks(qs, k)[0].sum()), int(masks(qs, k)[1].sum())) for k in KINDS}
    print(f"\n(queries of catalogued objects, negatives: {counts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogue", default="flat", choices=("flat", "coil"))
    parser.add_argument("--objects", type=int, default=300, help="flat objects")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", type=Path,
                        help="a pickle of the out-of-fold query set: read if it exists (no "
                        "training), else written after training")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/artwatch-flat-objects"),
                        help="where the flat objects are rendered (shared with flat_objects.py)")
    args = parser.parse_args()
    from training.catalogue import Catalogue, load_manifest
    from training.deploy import DeployRequest, train_deploy

    if args.queries and args.queries.is_file():
        print(f"\n## {args.catalogue}: out-of-fold queries of {args.queries}")
        table(pickle.loads(args.queries.read_bytes()))
        return
    with tempfile.TemporaryDirectory(prefix="artwatch-score-models-") as tmp:
        if args.catalogue == "flat":
            from flat_objects import flat_catalogue

            flat_catalogue(args.workdir, args.seed, args.objects)
            catalogue: Catalogue = load_manifest(args.workdir
                                                 / f"flat-{args.seed}-{args.objects}")
        else:
            from recognition import coil_set

            catalogue = coil_set(args.seed, 6, Path(tmp) / "coil", 24).catalogue
        outcome = train_deploy(catalogue, DeployRequest(
            out=Path(tmp) / "bundle", name="score-models", seed=args.seed, progress=False,
            plots=False), log=lambda m: print("  " + m, flush=True))
    if args.queries:
        args.queries.write_bytes(pickle.dumps(outcome.queries))
    print(f"\n## {args.catalogue}: {len(catalogue.photos)} catalogue photos")
    table(outcome.queries)


if __name__ == "__main__":
    main()
