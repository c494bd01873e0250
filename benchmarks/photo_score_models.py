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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from training.ablation import _first_and_best, _masks, open_set_row  # noqa: E402
from training.calibrate import fit_photo_scores  # noqa: E402
from training.crossfit import QuerySet  # noqa: E402
from training.views import LISTING, PHONE, STUDIO  # noqa: E402

KINDS = (STUDIO, LISTING, PHONE)


def cross_fitted(qs: QuerySet, model: str, folds: int = 5) -> np.ndarray:
    """(n, candidates) out-of-fold photo probabilities with the verified model `model`:
    "logistic" and "trees" as `training.calibrate.fit_photo_scores` serves them (the trees
    with their monotone rules), or "trees without monotone rules" (the same fit with every
    feature free)."""
    if model == "trees without monotone rules":
        return fit_photo_scores(qs, folds=folds, verified_model="trees",
                                monotone=False).probabilities
    return fit_photo_scores(qs, folds=folds, verified_model=model).probabilities


def table(qs: QuerySet) -> None:
    scorers = {"pretrained kNN": (qs.baseline[:, 0], qs.baseline_sim[:, 0])}
    for model in ("logistic", "trees", "trees without monotone rules"):
        scorers[f"verified model: {model}"] = _first_and_best(qs, cross_fitted(qs, model))
    print("\n| scorer | " + " | ".join(f"{k} top-1 / c&a @1% FA" for k in KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for name, (first, best) in scorers.items():
        cells = []
        for kind in KINDS:
            pos, neg = _masks(qs, kind)
            row = open_set_row(qs.label, first, best, pos, neg)
            cells.append(f"{row.get('top1', float('nan')):.3f} / "
                         f"{row.get('correct_accepted', float('nan')):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    counts = {k: (int(_masks(qs, k)[0].sum()), int(_masks(qs, k)[1].sum())) for k in KINDS}
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
