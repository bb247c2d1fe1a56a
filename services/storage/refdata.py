"""Pure rules of the reference data: where a problem is, what is inconsistent, who is connected when.

No I/O here: `reference.py` reads and stores reference sets and builds the in-memory
`ReferenceSnapshot` from these pieces; the rules are tested without a database.

Problems name their place the way the set arrived: `platform_connections[3] disconnected_on`
for a JSON body, `platform_connections.csv line 5, disconnected_on` for a CSV folder (line 1
is the header).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.contract.models import BalanceMetric, ReferenceSet, RemotePlatform

Locator = Callable[[str, int], str]
"""(section, index) -> the place of that row in the set as it arrived."""


def json_location(section: str, index: int) -> str:
    """`section[index]`: a row of a JSON body."""
    return f"{section}[{index}]"


def csv_location(section: str, index: int) -> str:
    """`section.csv line N`: a row of a CSV file, whose line 1 is the header."""
    return f"{section}.csv line {index + 2}"


@dataclass(frozen=True, slots=True)
class Interval:
    """A connection to a platform: from `start`, up to but not including `end` (None: still open)."""

    start: date
    end: date | None

    def covers(self, day: date) -> bool:
        """Connected on `day`."""
        return self.start <= day and (self.end is None or day < self.end)


@dataclass(frozen=True, slots=True)
class OpeningBalance:
    """Everything of a metric before the month `as_of` (its first day)."""

    as_of: date
    value: int


def last_day_of_month(month: date) -> date:
    """The last day of the month that `month` falls in."""
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def connected_at_month_end(intervals: Mapping[str, Sequence[Interval]], month: date) -> frozenset[str]:
    """Institutions connected at the end of `month`: some interval covers its last day."""
    last = last_day_of_month(month)
    return frozenset(org for org, spans in intervals.items() if any(span.covers(last) for span in spans))


def balance_for(balances: Sequence[OpeningBalance], month: date) -> OpeningBalance | None:
    """The balance a cumulative figure of `month` starts from: the latest with `as_of` <= month."""
    first = month.replace(day=1)
    usable = [b for b in balances if b.as_of <= first]
    return max(usable, key=lambda b: b.as_of) if usable else None


def connection_intervals(ref: ReferenceSet) -> dict[RemotePlatform, dict[str, tuple[Interval, ...]]]:
    """Per platform and institution, its connection intervals in time order."""
    out: dict[RemotePlatform, dict[str, list[Interval]]] = {}
    for row in ref.platform_connections:
        out.setdefault(row.platform, {}).setdefault(row.org_code, []).append(
            Interval(row.connected_on, row.disconnected_on)
        )
    return {
        p: {org: tuple(sorted(spans, key=lambda s: s.start)) for org, spans in orgs.items()} for p, orgs in out.items()
    }


def opening_balances(ref: ReferenceSet) -> dict[BalanceMetric, tuple[OpeningBalance, ...]]:
    """Per metric, its opening balances by `as_of`."""
    out: dict[BalanceMetric, list[OpeningBalance]] = {}
    for row in ref.opening_balances:
        out.setdefault(row.metric, []).append(OpeningBalance(row.as_of, row.value))
    return {m: tuple(sorted(rows, key=lambda b: b.as_of)) for m, rows in out.items()}


def _duplicates(section: str, keys: Iterable[Hashable], what: str, locate: Locator) -> list[str]:
    first: dict[Hashable, int] = {}
    problems = []
    for index, key in enumerate(keys):
        if key in first:
            problems.append(
                f"{locate(section, index)}: duplicate {what} {_show(key)} (first at {locate(section, first[key])})"
            )
        else:
            first[key] = index
    return problems


def _show(key: Hashable) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(str(part) for part in key) + ")"
    return str(key)


def _overlaps(ref: ReferenceSet, locate: Locator) -> list[str]:
    """Two connections of one institution to one platform that share a day."""
    rows: dict[tuple[RemotePlatform, str], list[int]] = {}
    for index, row in enumerate(ref.platform_connections):
        rows.setdefault((row.platform, row.org_code), []).append(index)
    problems = []
    for (platform, org), indexes in rows.items():
        spans = sorted(indexes, key=lambda i: ref.platform_connections[i].connected_on)
        # Sorted by start, some neighbours overlap whenever any two rows do.
        for before, after in itertools.pairwise(spans):
            earlier, later = ref.platform_connections[before], ref.platform_connections[after]
            if earlier.connected_on == later.connected_on:
                continue  # a duplicate key, reported as such
            if earlier.disconnected_on is None or earlier.disconnected_on > later.connected_on:
                problems.append(
                    f"{locate('platform_connections', after)}: {org} is connected to {platform.value} from "
                    f"{later.connected_on} while still connected since {earlier.connected_on} "
                    f"({locate('platform_connections', before)}); end that connection first"
                )
    return problems


def _nul_problems(ref: ReferenceSet, locate: Locator) -> list[str]:
    # Codes are held to their pattern by the model; free text is not, and PostgreSQL text
    # cannot store U+0000, which would otherwise fail the load with a database error.
    texts: list[tuple[str, int, str, str | None]] = []
    for n, i in enumerate(ref.institutions):
        texts += [("institutions", n, "name", i.name), ("institutions", n, "city", i.city)]
        texts.append(("institutions", n, "district", i.district))
    texts += [("tables", n, "name", t.name) for n, t in enumerate(ref.tables)]
    texts += [("booking_platforms", n, "name", b.name) for n, b in enumerate(ref.booking_platforms)]
    texts += [("no_upload_days", n, "reason", d.reason) for n, d in enumerate(ref.no_upload_days)]
    return [
        f"{locate(section, n)} {field}: must not contain the NUL character (U+0000)"
        for section, n, field, text in texts
        if text is not None and "\x00" in text
    ]


def check_consistency(ref: ReferenceSet, locate: Locator = json_location) -> list[str]:
    """Every problem that would leave a dangling, duplicate or contradictory reference."""
    problems: list[str] = _nul_problems(ref, locate)
    problems += _duplicates("institutions", (i.org_code for i in ref.institutions), "org_code", locate)
    problems += _duplicates("tables", (t.table_code for t in ref.tables), "table_code", locate)
    problems += _duplicates(
        "declarations", ((d.org_code, d.table_code) for d in ref.declarations), "(org_code, table_code)", locate
    )
    problems += _duplicates("kiosks", (k.kiosk_id for k in ref.kiosks), "kiosk_id", locate)
    problems += _duplicates(
        "platform_connections",
        ((c.platform.value, c.org_code, c.connected_on) for c in ref.platform_connections),
        "(platform, org_code, connected_on)",
        locate,
    )
    problems += _duplicates(
        "booking_platforms", (b.platform_code for b in ref.booking_platforms), "platform_code", locate
    )
    problems += _duplicates("booking_platforms", (b.name for b in ref.booking_platforms), "name", locate)
    problems += _duplicates(
        "opening_balances",
        ((b.metric.value, b.as_of.strftime("%Y-%m")) for b in ref.opening_balances),
        "(metric, as_of)",
        locate,
    )
    problems += _duplicates("no_upload_days", (d.date for d in ref.no_upload_days), "date", locate)
    orgs = {i.org_code for i in ref.institutions}
    tables = {t.table_code for t in ref.tables}
    for n, d in enumerate(ref.declarations):
        if d.org_code not in orgs:
            problems.append(f"{locate('declarations', n)} org_code: unknown institution {d.org_code}")
        if d.table_code not in tables:
            problems.append(f"{locate('declarations', n)} table_code: unknown table {d.table_code}")
    for n, k in enumerate(ref.kiosks):
        if k.org_code not in orgs:
            problems.append(f"{locate('kiosks', n)} org_code: unknown institution {k.org_code}")
    for n, c in enumerate(ref.platform_connections):
        if c.org_code not in orgs:
            problems.append(f"{locate('platform_connections', n)} org_code: unknown institution {c.org_code}")
        if c.disconnected_on is not None and c.disconnected_on <= c.connected_on:
            problems.append(
                f"{locate('platform_connections', n)} disconnected_on: {c.disconnected_on} is not after "
                f"connected_on {c.connected_on}"
            )
    problems += _overlaps(ref, locate)
    return problems
