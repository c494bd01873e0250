"""The crawl process's GC tuning: start-up heap frozen, young objects collected less often."""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

from scrapy import signals
from scrapy.settings import Settings

from crawler.extensions import GcTuning


class _Signals:
    def __init__(self) -> None:
        self.connected: list[tuple[Any, Any]] = []

    def connect(self, receiver: Any, signal: Any) -> None:
        self.connected.append((receiver, signal))


def test_gc_tuning_freezes_and_raises_threshold() -> None:
    before = gc.get_threshold()
    crawler = SimpleNamespace(settings=Settings({"ARTWATCH_GC_THRESHOLD": 12345}),
                              signals=_Signals())
    tuning = GcTuning(crawler)  # type: ignore[arg-type]
    assert crawler.signals.connected == [(tuning.spider_opened, signals.spider_opened)]
    try:
        tuning.spider_opened(None)
        assert gc.get_threshold() == (12345, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_gc_tuning_off() -> None:
    crawler = SimpleNamespace(settings=Settings({"ARTWATCH_GC_THRESHOLD": 0}),
                              signals=_Signals())
    GcTuning(crawler)  # type: ignore[arg-type]
    assert crawler.signals.connected == []
