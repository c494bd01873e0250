"""`artwatch evaluate B1 [B2 ...]`: one bundle or a mean-of-probabilities ensemble.

The paper's ensemble resized photos in a chain and applied softmax twice. Here every member
resizes from the original photo with its own preprocessing, produces calibrated
probabilities once (its own temperature), and the ensemble is their plain mean. The test split
and held-out objects are the first bundle's (from its splits.json); a member that trained on any
of those photos would make the figures dishonest, so that is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from matcher.bundle import Bundle, BundleError
from training.catalogue import Catalogue
from training.metrics import classification_report
from training.openset import build_scored, operating_points
from training.splits import Split


class EnsembleError(ValueError):
    """Bundles that cannot be evaluated together."""


def _split_of(bundle: Bundle) -> Split:
    path = bundle.path / bundle.info.get("split", {}).get("file", "splits.json")
    if not path.is_file():
        raise BundleError(f"{bundle.path}: no splits.json, cannot find its test photos")
    return Split.load(path)


def ensemble_probs(
    members: Sequence[Bundle], images: Sequence, objects: list[str]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Mean of members' calibrated probabilities, columns aligned to `objects`."""
    per_member = []
    for member in members:
        probs = member.predict(images).probs
        column = {o: i for i, o in enumerate(member.objects)}
        per_member.append(probs[:, [column[o] for o in objects]])
    return np.mean(per_member, axis=0), per_member


def evaluate_bundles(
    paths: Sequence[Path],
    catalogue: Catalogue,
    *,
    device: str = "cpu",
    precisions: Sequence[float] = (0.90, 0.95, 0.99),
    budgets: Sequence[float] = (5.0,),
    folds: int = 5,
    log: Callable[[str], None] = print,
) -> dict:
    """Metrics of the members and of their ensemble on the first bundle's test split."""
    if not paths:
        raise EnsembleError("give at least one bundle")
    members = [Bundle.load(p, device=device) for p in paths]
    objects = members[0].objects
    for member in members[1:]:
        if set(member.objects) != set(objects):
            raise EnsembleError(f"{member.path} was trained on other objects than {paths[0]}")
    split = _split_of(members[0])
    evaluation_keys = set(split.keys("test")) | set(split.keys("holdout"))
    for member in members[1:]:
        own = _split_of(member)
        leaked = evaluation_keys & (set(own.keys("train")) | set(own.keys("val")))
        if leaked:
            raise EnsembleError(
                f"{member.path} trained or selected on {len(leaked)} photo(s) of the test split "
                f"of {paths[0]}; use bundles trained with the same split (seed)"
            )
    test = catalogue.subset(split.keys("test"))
    hold = catalogue.subset(split.keys("holdout"))
    missing = len(split.keys("test")) + len(split.keys("holdout")) - len(test) - len(hold)
    if missing:
        log(f"warning: {missing} test/held-out photo(s) are no longer in the catalogue")
    if not test:
        raise EnsembleError("none of the test photos of the first bundle is in this catalogue")
    index = {o: i for i, o in enumerate(objects)}
    y = np.array([index[p.object_id] for p in test])
    images = [p.load() for p in test]
    hold_images = [p.load() for p in hold]
    probs, per_member = ensemble_probs(members, images, objects)
    kept = Counter(
        p.object_id
        for p in catalogue.photos
        if split.assignment.get(p.key) in ("train", "val", "test")
    )
    result: dict = {"members": [], "test_photos": len(test), "heldout_photos": len(hold)}
    for member, member_probs in zip(members, per_member, strict=True):
        rep = classification_report(member_probs, y, objects)
        result["members"].append(
            {
                "bundle": str(member.path),
                "name": member.name,
                **{k: rep[k] for k in ("top1", "top3", "top5", "top10", "f1_macro")},
            }
        )
    result["ensemble"] = classification_report(
        probs,
        y,
        objects,
        collections=[p.collection for p in test],
        photos_per_object=[kept[p.object_id] for p in test],
    )
    hold_probs = (
        ensemble_probs(members, hold_images, objects)[0]
        if hold_images
        else np.zeros((0, len(objects)))
    )
    scored = build_scored(
        probs, y, [p.object_id for p in test], hold_probs, [p.object_id for p in hold]
    )
    result["operating_points"] = operating_points(
        scored, precisions=precisions, budgets=budgets, folds=folds
    )
    result["averaging"] = "mean of members' temperature-scaled probabilities"
    # Ensembles have no fitted combined score (matcher.scoring): their operating points are on
    # the mean probability alone, comparable with a bundle's operating_points_classifier_only.
    result["alert_score"] = "mean calibrated probability (classifier only)"
    return result
