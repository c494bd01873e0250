"""Fixtures for the crawler tests: local auction houses on loopback.

Crawls are real: a loopback HTTP server per house, `scrapy crawl` subprocesses, the test
PostgreSQL and Redis, and Chromium for the JavaScript house.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def houses() -> Iterator[Callable[..., Any]]:
    """Start auction houses: `houses(style="html", lots=20, ...)`; all stopped afterwards."""
    from artwatch.demo.auction_house import AuctionHouse, HouseConfig

    started: list[AuctionHouse] = []

    def start(name: str = "house", **config: Any) -> AuctionHouse:
        house = AuctionHouse(HouseConfig(name=name, **config))
        house.start()
        started.append(house)
        return house

    yield start
    for house in started:
        house.stop()
