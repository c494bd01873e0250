"""The deploy recipe's view budget: large catalogues get fewer synthetic views, never too few."""

from __future__ import annotations

import pytest

from training.crossfit import whitening_views
from training.deploy import query_views_for, views_per_photo


@pytest.mark.parametrize(
    ("photos", "asked", "budget", "expected"),
    [
        (200, 4, 20_000, 4),  # a small catalogue gets every view asked for
        (2_857, 4, 20_000, 4),  # 2,857 x 7 = 19,999 images: still inside the budget
        (3_740, 4, 20_000, 2),  # the 4,000-photo catalogue: 5 images per photo
        (50_000, 4, 20_000, 2),  # never below 2 however large
        (3_740, 1, 20_000, 1),  # never more than asked, even when 2 is the floor
        (0, 4, 20_000, 4),
    ],
)
def test_views_per_photo(photos: int, asked: int, budget: int, expected: int) -> None:
    assert views_per_photo(photos, asked, budget) == expected


def test_budget_is_kept_where_the_floor_allows() -> None:
    for photos in range(1, 6_000, 97):
        views = views_per_photo(photos, 4, 20_000)
        assert views == 2 or photos * (views + 3) <= 20_000


@pytest.mark.parametrize("photos", [100, 3_740, 50_000])
def test_query_views_never_train_the_whitening(photos: int) -> None:
    views = views_per_photo(photos, 4, 20_000)
    query = query_views_for(views, 2)
    assert set(whitening_views(views, query)).isdisjoint(range(query))
    assert whitening_views(views, query), "at least one view trains the whitening"
    assert whitening_views(2, 2) == []  # every view a query: none trains
