"""How the suite is shared between pytest-xdist's workers (`-n auto --dist loadgroup`, pyproject.toml).

The suite spends most of its time waiting: for brokers to die and come back, for an outage to
last, for a whole month to be replayed. Two workers fill each other's waits with work.

A unit of work goes to one worker whole. It is one test file, so a file's module fixtures are
built once, except where a costly session fixture would otherwise be built by every worker
that needs it:

- the files that read the demo database (a minute to load) are one unit;
- tests/unit/demo, whose folds of the generated month are session fixtures, is one unit.

Units are handed out in the order of `_PRIORITY`, the longest kinds first, so that no worker is
left alone with a long unit at the end while the other idles; within a kind, the collection
order holds. The units only decide where and when a test runs: every test runs whatever they are.

The units are this module's scheduler's, not `xdist_group` marks: pytest-xdist 3.8 carries a
mark's group in the test's node id, which pytest 9.2 no longer lets a plugin change
(pytest-dev/pytest-xdist#1386), so marked tests are silently spread one by one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import PurePosixPath

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

DEMO_DATABASE = "demo-database"
DEMO_FOLDS = "demo-folds"
DEMO_DATABASE_FILES = frozenset(
    {
        "tests/integration/test_appointments_demo.py",
        "tests/integration/test_pages_demo.py",
        "tests/integration/test_quality_demo.py",
        "tests/monitoring/test_dashboards.py",
        "tests/monitoring/test_quality.py",
    }
)
"""The files with a test on the demo database (`demo_database_url`); checked at collection."""

# Fault tests (each starts brokers or a PostgreSQL of its own and waits out outages), then the
# units around a costly session fixture, then the rest.
_PRIORITY = ("tests/faults/", DEMO_DATABASE, DEMO_FOLDS)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: a costly session fixture's unit, else its file."""
    path = nodeid.split("::", 1)[0]
    if path in DEMO_DATABASE_FILES:
        return DEMO_DATABASE
    if PurePosixPath(path).parts[:3] == ("tests", "unit", "demo"):
        return DEMO_FOLDS
    return path


def _rank(unit: str) -> int:
    for rank, kind in enumerate(_PRIORITY):
        if unit == kind or unit.startswith(kind):
            return rank
    return len(_PRIORITY)


class UnitScheduling(LoadScopeScheduling):
    """xdist's scope scheduling with this suite's units as the scopes."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadScopeScheduling | None:
    """`--dist loadgroup` groups by this suite's units; any other mode is xdist's own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    return UnitScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest kinds of unit first, each unit's tests together, in collection order.

    Refused: a test on the demo database outside `DEMO_DATABASE_FILES` (it would build the
    database again on another worker), and, in a worker, two tests with one node id (xdist
    sends tests by id, so the second would silently never run: schemathesis' tests under
    pytest 9.2 did).
    """
    if hasattr(config, "workerinput"):
        ids = Counter(item.nodeid for item in items)
        duplicates = sorted(nodeid for nodeid, count in ids.items() if count > 1)
        if duplicates:
            raise pytest.UsageError(f"tests sharing a node id would not all run in workers: {duplicates}")
    strays = sorted(
        {
            item.nodeid.split("::", 1)[0]
            for item in items
            if "demo_database_url" in getattr(item, "fixturenames", ()) and unit_of(item.nodeid) != DEMO_DATABASE
        }
    )
    if strays:
        raise pytest.UsageError(
            f"{', '.join(strays)}: reads the demo database; add it to DEMO_DATABASE_FILES in tests/scheduling.py"
        )
    units = [unit_of(item.nodeid) for item in items]
    first_seen: dict[str, int] = {}
    for index, unit in enumerate(units):
        first_seen.setdefault(unit, index)
    order = sorted(range(len(items)), key=lambda i: (_rank(units[i]), first_seen[units[i]], i))
    items[:] = [items[i] for i in order]
