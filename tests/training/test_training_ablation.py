"""The open-set figures the evidence ablation reports (`training.ablation.open_set_row`)."""

from __future__ import annotations

import numpy as np
import pytest

from matcher.evidence import FEATURES, Candidates
from training.ablation import (
    ablation_lines,
    colour_choice_sentence,
    model_choice_sentence,
    open_set_row,
    photo_scores_chosen,
)
from training.crossfit import QuerySet


def test_correct_and_accepted_counts_only_right_first_candidates_above_the_1_percent_cut(
) -> None:
    # 200 negatives with scores 0.00 .. 0.199: the 1% cut is their 99th percentile (~0.197).
    neg_scores = np.arange(200) / 1000.0
    # Four positives: right and high, wrong and high, right and low, wrong and low.
    pos_scores = np.array([0.9, 0.8, 0.1005, 0.0505])
    labels = np.r_[[1, 2, 3, 4], np.full(200, 7)]
    first = np.r_[[1, 9, 3, 9], np.full(200, 5)]
    best = np.r_[pos_scores, neg_scores]
    positive = np.r_[np.ones(4, bool), np.zeros(200, bool)]
    row = open_set_row(labels, first, best, positive, ~positive)
    assert row["queries"] == 4 and row["negatives"] == 200
    assert row["top1"] == pytest.approx(0.5)
    assert row["accepted"] == pytest.approx(0.5)
    assert row["correct_accepted"] == pytest.approx(0.25)
    # AUROC: the two high positives beat every negative, the low ones 101 and 51 of 200.
    assert row["auroc"] == pytest.approx((200 + 200 + 101 + 51) / 800)


def test_no_negatives_gives_top1_only_and_the_table_marks_what_is_missing() -> None:
    labels = np.array([0, 1])
    row = open_set_row(labels, np.array([0, 0]), np.array([0.5, 0.4]),
                       np.array([True, True]), np.array([False, False]))
    assert row == {"queries": 2, "negatives": 0, "top1": 0.5}
    lines = ablation_lines({"all evidence": {"studio": row, "listing": {}}})
    assert lines[-1] == "| all evidence | 0.500 | - | - | - |"


def test_the_colour_choice_sentence_names_the_served_row_and_is_absent_without_a_choice(
) -> None:
    used = {"used": True, "correct_accepted_with": 0.9, "correct_accepted_without": 0.8,
            "served": "all evidence"}
    assert colour_choice_sentence(used).startswith("The colour gap is used")
    assert '0.900 with it and 0.800 without' in colour_choice_sentence(used)
    assert 'the "all evidence" row' in colour_choice_sentence(used)
    not_used = {**used, "used": False, "served": "without colour"}
    assert colour_choice_sentence(not_used).startswith("The colour gap is not used")
    assert 'the "without colour" row' in colour_choice_sentence(not_used)
    assert colour_choice_sentence({"used": False, "reason": "no verification",
                                   "served": "all evidence"}) is None


def _evidence_rows(n_objects: int, seed: int) -> QuerySet:
    """Out-of-fold queries whose verified evidence no single weight per feature can rank: a
    3-D object's right candidate is very similar with few inliers, a flat object's (small in a
    phone photo) barely similar with many, and the wrong candidates and the photos of
    uncatalogued objects sit in between on both. Three candidates a photo, all verified."""
    rng = np.random.default_rng(seed)
    col = {n: FEATURES.index(n) for n in FEATURES}
    rows, objects, kinds, labels, positive = [], [], [], [], []
    for obj in range(n_objects):
        for q in range(4):
            catalogued = obj % 5 != 0
            feats = np.zeros((3, len(FEATURES)))
            feats[:, col["verified"]] = 1.0
            feats[:, col["sim"]] = rng.uniform(0.55, 0.75, 3)
            feats[:, col["log_h_inliers"]] = np.log1p(rng.integers(6, 20, 3))
            feats[:, col["h_ratio"]] = rng.uniform(0.1, 0.3, 3)
            cands = [(obj + 1 + j) % n_objects for j in range(3)]
            if catalogued:
                right = int(rng.integers(0, 3))
                cands[right] = obj
                if q % 2:  # flat object in clutter
                    feats[right, col["sim"]] = rng.uniform(0.3, 0.45)
                    feats[right, col["log_h_inliers"]] = np.log1p(rng.integers(40, 80))
                else:  # 3-D object from another side
                    feats[right, col["sim"]] = rng.uniform(0.8, 0.9)
                    feats[right, col["log_h_inliers"]] = np.log1p(rng.integers(0, 5))
            feats[:, col["sim_norm"]] = feats[:, col["sim"]] - 0.3
            feats[:, col["margin"]] = feats[:, col["sim"]] - np.sort(feats[:, col["sim"]])[-2]
            feats[:, col["log_prob"]] = np.log(np.exp(feats[:, col["sim"]] / 0.05)
                                               / np.exp(feats[:, col["sim"]] / 0.05).sum())
            rows.append(feats)
            objects.append(cands)
            kinds.append("studio" if q < 2 else "listing")
            labels.append(obj)
            positive.append(catalogued)
    n = len(rows)
    obj_arr = np.array(objects, np.int64)
    sims = np.stack(rows)[..., col["sim"]]
    return QuerySet(
        objects=[f"o{i}" for i in range(n_objects)], world=np.arange(n) % 4,
        photo=np.arange(n), kind=np.array(kinds), label=np.array(labels),
        positive=np.array(positive),
        candidates=Candidates(obj_arr, np.zeros((n, 3), np.int64), np.stack(rows)),
        image_key=[str(i) for i in range(n)], ranked=obj_arr, ranked_sim=sims,
        baseline=obj_arr, baseline_sim=sims)


def test_trees_are_served_where_they_accept_more_out_of_fold() -> None:
    qs = _evidence_rows(1000, 0)
    choice, summary = photo_scores_chosen(qs)
    assert summary["served"] == "trees"
    assert summary["correct_accepted_trees"] > summary["correct_accepted_logistic"] + 0.2
    assert choice.scores.spec["verified"]["model"] == "trees"
    assert model_choice_sentence(summary).startswith("The verified photo model is trees")


def test_a_catalogue_too_small_for_trees_keeps_the_logistic_model() -> None:
    from matcher.boosted import MIN_LEAF

    qs = _evidence_rows(6, 1)  # 72 verified rows: trees need 2 x MIN_LEAF for one split
    assert qs.candidates.objects.size < 2 * MIN_LEAF
    choice, summary = photo_scores_chosen(qs)
    assert summary["served"] == "logistic"
    assert summary["correct_accepted_trees"] <= summary["correct_accepted_logistic"]
    assert choice.scores.spec["verified"].get("model", "logistic") == "logistic"
    assert model_choice_sentence({"served": "logistic", "reason": "no verification"}) is None
