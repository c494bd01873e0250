"""The open-set figures the evidence ablation reports (`training.ablation.open_set_row`)."""

from __future__ import annotations

import numpy as np
import pytest

from training.ablation import ablation_lines, colour_choice_sentence, open_set_row


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
