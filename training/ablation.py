"""What each kind of evidence buys: the calibrated score refitted without it, out of fold.

The bundle's photo score (`training.calibrate.fit_photo_scores`) combines retrieval similarity,
the distractor-normalised similarity, the margin, the retrieval softmax, photo reuse, geometric
verification and the colour gap. To know what one of them is worth, the score is cross-fitted
again on the same out-of-fold evidence rows without it, and every variant is measured on the
same queries beside the zero-training baseline (the pretrained backbone's cosine kNN over the
same references) at the open-set point that matters to reviewers: correct and accepted at 1%
false alerts (the threshold is the 99th percentile of the best score of photos that show no
catalogued object, of the same kind). Studio queries are out-of-fold catalogue photos; listing-
style queries are their synthetic listing views, with the ordinary listing photos of the
distractor set among the negatives.

Source of the distractor-normalisation idea measured here: GLDv2-era retrieval (Weyand et
al., "Google Landmarks Dataset v2", CVPR 2020), see `matcher.evidence`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from matcher.evidence import GLOBAL_FEATURES, VERIFY_FEATURES
from matcher.scoring import PHOTO_MODELS
from training.calibrate import PhotoScores, fit_photo_scores
from training.crossfit import QuerySet
from training.views import VARIANT

FA_RATE = 0.01
# Variant name -> (global features, verification features; none: no verification at all).
# "all evidence" is the bundle's score.
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "all evidence": (GLOBAL_FEATURES, VERIFY_FEATURES),
    "without distractor normalisation": (
        tuple(f for f in GLOBAL_FEATURES if f != "sim_norm"), VERIFY_FEATURES),
    "without photo reuse": (tuple(f for f in GLOBAL_FEATURES if f != "reuse"),
                            VERIFY_FEATURES),
    "without colour": (GLOBAL_FEATURES, tuple(f for f in VERIFY_FEATURES if f != "colour_gap")),
    "without verification": (GLOBAL_FEATURES, ()),
}
KINDS = ("studio", "listing")


def open_set_row(labels: np.ndarray, first: np.ndarray, best: np.ndarray,
                 positive: np.ndarray, negative: np.ndarray) -> dict[str, float | int]:
    """top-1, AUROC, accepted and correct-and-accepted at `FA_RATE` for one scorer.

    `labels`, `first` (the scorer's top object), `best` (its score for it): (n,) per query;
    `positive` / `negative`: (n,) bool masks of photos of catalogued objects / of none.
    """
    pos, neg = np.flatnonzero(positive), np.flatnonzero(negative)
    row: dict[str, float | int] = {"queries": int(len(pos)), "negatives": int(len(neg))}
    if len(pos) == 0:
        return row
    right = first[pos] == labels[pos]
    row["top1"] = float(right.mean())
    if len(neg) == 0:
        return row
    cut = float(np.quantile(best[neg], 1.0 - FA_RATE))
    accepted = best[pos] > cut
    row["auroc"] = float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))],
                                       np.r_[best[pos], best[neg]]))
    row["accepted"] = float(accepted.mean())
    row["correct_accepted"] = float((accepted & right).mean())
    return row


def _masks(qs: QuerySet, kind: str) -> tuple[np.ndarray, np.ndarray]:
    positive = qs.positive & (qs.kind == kind)
    negative = ~qs.positive & (qs.kind == kind) & (qs.label >= 0)
    if kind == "listing":
        negative |= qs.kind == "distractor"
    return positive, negative


def _first_and_best(qs: QuerySet, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) first candidate object and its probability under a photo score's (n, candidates)
    out-of-fold probabilities."""
    top = np.argmax(probs, 1)[:, None]
    return (np.take_along_axis(qs.candidates.objects, top, 1)[:, 0],
            np.take_along_axis(probs, top, 1)[:, 0])


def evidence_ablation(qs: QuerySet, *, local: bool = True, folds: int = 5,
                      fitted: Mapping[str, np.ndarray] | None = None,
                      variants: Sequence[str] = tuple(VARIANTS),
                      verified_model: str = "logistic") -> dict[str, dict]:
    """{scorer: {kind: open_set_row}} for the pretrained kNN and each score variant.

    `fitted`: variant name -> (n, candidates) out-of-fold probabilities already cross-fitted on
    these rows (`ColourChoice.fitted`: the bundle's own score and its rival), not fitted again.
    `verified_model`: the bundle's (`photo_scores_chosen`), which every variant refits with.
    Without `local` (no verification anywhere) "without verification" is "all evidence" and is
    left out. Costs one cross-fitted refit of the photo score per other variant (seconds to a
    minute).
    """
    fitted = fitted or {}
    out: dict[str, dict] = {"pretrained kNN": {}}
    for kind in KINDS:
        positive, negative = _masks(qs, kind)
        out["pretrained kNN"][kind] = open_set_row(
            qs.label, qs.baseline[:, 0], qs.baseline_sim[:, 0], positive, negative)
    for name in variants:
        features, verification = VARIANTS[name]
        if not verification and not local:  # the same as "all evidence"
            continue
        probs = fitted.get(name)
        if probs is None:
            probs = fit_photo_scores(qs, folds=folds, use_local=local and bool(verification),
                                     features=features, verification=verification,
                                     verified_model=verified_model).probabilities
        first, best = _first_and_best(qs, probs)
        out[name] = {}
        for kind in KINDS:
            positive, negative = _masks(qs, kind)
            out[name][kind] = open_set_row(qs.label, first, best, positive, negative)
    return out


def open_set_total(qs: QuerySet, probs: np.ndarray) -> float:
    """Correct and accepted at `FA_RATE`, studio plus listing-style out-of-fold queries: the
    open-set figure a reviewer's workload depends on, for choosing between photo scores.

    Here the colour variants (`training.views.VARIANT`) count among both kinds' negatives:
    an object of a catalogued shape in another colour is a false alert the choice must see,
    or a score that cannot tell it from the catalogued one would win wherever the real
    negatives differ in shape anyway."""
    first, best = _first_and_best(qs, probs)
    variant = qs.kind == VARIANT
    total = 0.0
    for kind in KINDS:
        positive, negative = _masks(qs, kind)
        total += open_set_row(qs.label, first, best, positive, negative | variant).get(
            "correct_accepted", 0.0)
    return float(total)


@dataclass(frozen=True)
class ColourChoice:
    """The photo score served (`scores`), the figures it was chosen on (`summary`, JSON for
    metrics.json: used, correct_accepted_with / _without, served: its `VARIANTS` row) and
    every score fitted on the way (`fitted`: `VARIANTS` name -> (n, candidates) out-of-fold
    probabilities, which `evidence_ablation` then does not fit again)."""

    scores: PhotoScores
    summary: dict
    fitted: dict[str, np.ndarray]


def photo_scores_choosing_colour(qs: QuerySet, *, local: bool = True, folds: int = 5,
                                 verified_model: str = "logistic") -> ColourChoice:
    """The bundle's photo score with or without the colour gap, whichever is better out of
    fold (`open_set_total`; a tie keeps the simpler score), and the figures it chose on.

    Why a choice: the colour gap tells real photographed objects apart where shape does not
    (COIL-100: a red and a blue torus), but a catalogue whose objects share a palette gains
    nothing from it and a listing's coloured background adds noise (docs/recognition.md: on
    the generated catalogue it bought nothing out of fold). Both scores are cross-fitted on
    the same rows, so the choice is a model selection on held-out evidence.
    """
    with_colour = fit_photo_scores(qs, folds=folds, use_local=local,
                                   verified_model=verified_model)
    if not local:
        return ColourChoice(with_colour, {"used": False, "reason": "no verification",
                                          "served": "all evidence"},
                            {"all evidence": with_colour.probabilities})
    plain = tuple(f for f in VERIFY_FEATURES if f != "colour_gap")
    without = fit_photo_scores(qs, folds=folds, use_local=local, verification=plain,
                               verified_model=verified_model)
    a, b = open_set_total(qs, with_colour.probabilities), open_set_total(qs, without.probabilities)
    used = a > b
    return ColourChoice(
        with_colour if used else without,
        {"used": used, "correct_accepted_with": a, "correct_accepted_without": b,
         "served": "all evidence" if used else "without colour"},
        {"all evidence": with_colour.probabilities, "without colour": without.probabilities})


def photo_scores_chosen(qs: QuerySet, *, local: bool = True, folds: int = 5,
                        model: str = "auto") -> tuple[ColourChoice, dict]:
    """The bundle's photo score: the verified model (logistic, or monotone boosted trees:
    `matcher.boosted`) and, for each, the colour gap's choice (`photo_scores_choosing_colour`),
    whichever scores more correct and accepted out of fold (`open_set_total`; a tie keeps the
    logistic model). Returns the chosen model's `ColourChoice` and a JSON summary
    (`served`, `correct_accepted_logistic`, `correct_accepted_trees`). `model`: "auto" (the
    choice), or "logistic" / "trees" to serve that one without a choice (`artwatch train
    --verified-model`). Raises ValueError for another name.

    Why a choice: trees learn what the logistic model cannot (many inliers count at a low
    global similarity: flat objects small in phone photos), but they need thousands of
    verified rows to learn anything, which a small catalogue does not give
    (`benchmarks/photo_score_models.py`, docs/recognition.md). Both are cross-fitted on the
    same rows, so the choice is a model selection on held-out evidence.
    """
    if model not in ("auto", *PHOTO_MODELS):
        raise ValueError(f"verified model {model!r}: expected auto or one of {PHOTO_MODELS}")
    if not local:  # nothing verified: no verified model to choose
        return (photo_scores_choosing_colour(qs, local=local, folds=folds),
                {"served": "logistic", "reason": "no verification"})
    if model != "auto":
        return (photo_scores_choosing_colour(qs, local=local, folds=folds,
                                             verified_model=model),
                {"served": model, "reason": "asked for"})
    logistic = photo_scores_choosing_colour(qs, local=local, folds=folds)
    trees = photo_scores_choosing_colour(qs, local=local, folds=folds, verified_model="trees")
    a = open_set_total(qs, logistic.scores.probabilities)
    b = open_set_total(qs, trees.scores.probabilities)
    served = "trees" if b > a else "logistic"
    return (trees if b > a else logistic), {
        "served": served, "correct_accepted_logistic": a, "correct_accepted_trees": b}


def model_choice_sentence(summary: dict) -> str | None:
    """One sentence on which verified model is served and why (the training log and
    report.md say it alike); None where no choice was made (no verification)."""
    if "correct_accepted_trees" not in summary:
        return None
    return (f"The verified photo model is {summary['served']}: correct and accepted at 1% "
            f"false alerts, studio + listing-style, out of fold, "
            f"{summary['correct_accepted_logistic']:.3f} logistic and "
            f"{summary['correct_accepted_trees']:.3f} boosted trees (the better is served; a "
            f"tie keeps the logistic model).")


def colour_choice_sentence(summary: dict) -> str | None:
    """One sentence on whether the colour gap is served and why (the training log and
    report.md say it alike); None where no choice was made (no verification)."""
    if "correct_accepted_with" not in summary:
        return None
    return (f"The colour gap is {'used' if summary['used'] else 'not used'} by this bundle's "
            f"score: correct and accepted at 1% false alerts, studio + listing-style, out of "
            f"fold, {summary['correct_accepted_with']:.3f} with it and "
            f"{summary['correct_accepted_without']:.3f} without (the better is served: the "
            f"\"{summary['served']}\" row).")


def ablation_lines(table: dict[str, dict]) -> list[str]:
    """The table as Markdown (report.md and the benchmarks print it)."""
    lines = ["| scorer | studio top-1 | studio c&a @1% FA | listing top-1 | "
             "listing c&a @1% FA |", "|---|---|---|---|---|"]
    for name, kinds in table.items():
        cells = []
        for kind in KINDS:
            row = kinds.get(kind, {})
            for key in ("top1", "correct_accepted"):
                cells.append(f"{row[key]:.3f}" if key in row else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
