"""The services' garbage-collector and malloc settings (services.gcsettings, services.mallocsettings)."""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterator

import pytest

from services.gcsettings import YOUNG_THRESHOLD, tune_for_batches
from services.mallocsettings import fix_mmap_threshold


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


def test_the_mmap_threshold_is_fixed_on_glibc() -> None:
    # This machine (and the services' image) runs glibc: mallopt must take the setting.
    assert platform.libc_ver()[0] == "glibc"
    assert fix_mmap_threshold() is True
