"""The services' garbage-collector settings (services.gcsettings)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.gcsettings import YOUNG_THRESHOLD, tune_for_batches


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_start_up_heap_is_frozen_and_young_collections_are_rarer() -> None:
    _, middle, old = gc.get_threshold()
    tune_for_batches()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected_automatically() -> None:
    tune_for_batches()
    collected_before = sum(s["collected"] for s in gc.get_stats())

    class Node:
        def __init__(self) -> None:
            self.me = self

    for _ in range(3 * YOUNG_THRESHOLD):
        Node()
    assert sum(s["collected"] for s in gc.get_stats()) - collected_before >= YOUNG_THRESHOLD
