"""Shared fixtures of the demo tests: the generated month, summarised once per session.

The folds themselves are plain modules (tests/fixtures/uploads_fold.py, streams_fold.py), so
that the integration tests use them too.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.demo.month import MonthPlan, plan_month
from services.demo.stream import DemoMonth, plan_demo_month
from tests.fixtures.streams_fold import NEW_KINDS, StreamsFold, fold_streams
from tests.fixtures.uploads_fold import StreamSummary, read_csv, summarise


@pytest.fixture(name="read_csv", scope="session")
def read_csv_fixture() -> Callable[[str], list[dict[str, str]]]:
    """`read_csv(name)`: rows of a committed reference CSV file."""
    return read_csv


@pytest.fixture(scope="session")
def month_plan() -> MonthPlan:
    """The demo's April 2020 plan (default seed)."""
    return plan_month()


@pytest.fixture(scope="session")
def summary(month_plan: MonthPlan) -> StreamSummary:
    """The whole generated month, summarised by the tests' own metric implementation."""
    return summarise(month_plan.events())


@pytest.fixture(scope="session")
def demo_month() -> DemoMonth:
    """Every stream of the demo month, planned (default seed)."""
    return plan_demo_month()


@pytest.fixture(scope="session")
def streams(demo_month: DemoMonth) -> StreamsFold:
    """The three streams of revision 2 folded by the tests' own implementation of its definitions."""
    return fold_streams(demo_month.events(NEW_KINDS))
