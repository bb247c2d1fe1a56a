"""The hotline report: the monthly figures per 12320 centre (pure) and the queries that feed them.

The database path (`month_counts`, from `hotline_daily`) and the in-memory path
(`counts_from_deltas`, from folded events) both produce per-centre category counts, so the
contract's figures are computed once, by `hotline_report`. The aggregator's route, the bulletin
and the command line all call `hotline_report_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from services.contract.models import Region
from services.reports.common import next_month
from services.storage.connection import Connection
from services.streams.hotline.fold import HOTLINE_DAILY
from services.streams.hotline.model import (
    CALL_CATEGORIES,
    WORK_ORDER_CATEGORIES,
    ContactCategory,
    HotlineReport,
    HotlineRow,
)
from services.streams.rollups import Deltas, month_of

FIGURE_OF: Mapping[ContactCategory, str] = {
    **{c: c.value for c in CALL_CATEGORIES},
    **{c: f"work_orders_{c.value}" for c in WORK_ORDER_CATEGORIES},
}
"""The report field each category is counted in: a call category's own name, `work_orders_<category>`."""
FIGURES = ("calls", *FIGURE_OF.values())
"""Every figure of a row, in the report's (and the bulletin's) order."""
TOTAL_NAME = "合计"

Counts = Mapping[str, Mapping[str, int]]
"""org_code -> category -> contacts of the month."""


@dataclass(frozen=True, slots=True)
class Centre:
    """A 12320 centre of the reference data: the institutions of kind `hotline`."""

    org_code: str
    name: str
    city: str | None
    region: Region = Region.CITY
    """`city` for the platform's own city's centre (an empty region is the city, the contract's default)."""


def _figures(by_category: Mapping[str, int]) -> dict[str, int]:
    figures = {FIGURE_OF[category]: by_category.get(category.value, 0) for category in FIGURE_OF}
    figures["calls"] = sum(figures[c.value] for c in CALL_CATEGORIES)
    return figures


def hotline_report(centres: Iterable[Centre], counts: Counts) -> HotlineReport:
    """Every centre (zero rows included), most calls first (ties by org_code), and their total.

    Contacts of institutions that are not among `centres` are not shown: an institution
    reclassified after its contacts were accepted, or one outside an institution's own view.
    """
    rows = [
        HotlineRow(org_code=c.org_code, name=c.name, city=c.city, **_figures(counts.get(c.org_code, {})))
        for c in centres
    ]
    rows.sort(key=lambda r: (-r.calls, r.org_code or ""))
    total = {figure: sum(getattr(r, figure) for r in rows) for figure in FIGURES}
    return HotlineReport(rows=rows, total=HotlineRow(org_code=None, name=TOTAL_NAME, city=None, **total))


def csv_rows(report: HotlineReport) -> list[HotlineRow]:
    """The report as one table: the centres, then the total row (`&format=csv`, `--format csv`)."""
    return [*report.rows, report.total]


def appointment_calls_by_city(report: HotlineReport) -> dict[str | None, int]:
    """`appointment` calls per city of the centres (None: a centre of unknown city).

    The figure the cross-stream check sets against the `phone` bookings of the city's
    institutions (contract revision 2, `cross_stream_mismatch`).
    """
    out: dict[str | None, int] = {}
    for row in report.rows:
        out[row.city] = out.get(row.city, 0) + row.appointment
    return out


def counts_from_deltas(deltas: Deltas, month: date) -> dict[str, dict[str, int]]:
    """Per-centre category counts of `month` computed in memory from folded events."""
    out: dict[str, dict[str, int]] = {}
    for (org, day, _kind, category), (contacts,) in deltas.tables.get(HOTLINE_DAILY.name, {}).items():
        if month_of(day) == month:
            by_category = out.setdefault(org, {})
            by_category[category] = by_category.get(category, 0) + contacts
    return out


async def hotline_centres(conn: Connection, org_code: str | None) -> list[Centre]:
    """The centres of the reference set in force (only `org_code`'s, when given)."""
    rows = await conn.fetch(
        """SELECT org_code, name, city, region FROM cur_institutions
           WHERE kind = 'hotline' AND ($1::text IS NULL OR org_code = $1) ORDER BY org_code""",
        org_code,
    )
    return [
        Centre(r["org_code"], r["name"], r["city"], Region(r["region"]) if r["region"] else Region.CITY) for r in rows
    ]


async def month_counts(conn: Connection, first: date, end: date, org_code: str | None) -> dict[str, dict[str, int]]:
    """Contacts per centre and category on the days `first` <= day < `end`."""
    out: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(
        """SELECT org_code, category, sum(contacts) AS contacts FROM hotline_daily
           WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)
           GROUP BY org_code, category""",
        first,
        end,
        org_code,
    ):
        out.setdefault(row["org_code"], {})[row["category"]] = int(row["contacts"])
    return out


async def hotline_report_of(conn: Connection, month: date, org_code: str | None) -> HotlineReport:
    """`GET /v1/reports/hotline`: every centre (or only `org_code`'s) and the total of the rows shown."""
    # One snapshot, so the centres and their figures come from the same reference version and batches.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        centres = await hotline_centres(conn, org_code)
        counts = await month_counts(conn, month, next_month(month), org_code)
    return hotline_report(centres, counts)


@dataclass(frozen=True)
class HotlineHistory:
    """What the bulletin's problem list compares a month with, per centre."""

    daily: Mapping[str, Mapping[date, int]]
    """org_code -> day of the month -> contacts of every kind (days without any are absent)."""
    previous: Mapping[str, Mapping[date, Mapping[str, int]]]
    """org_code -> each of the previous months (first day) -> category -> contacts."""


PREVIOUS_MONTHS = 3
"""How many months before a month the bulletin compares it with (the contract's volume_outlier)."""


def months_before(month: date, count: int = PREVIOUS_MONTHS) -> list[date]:
    """The `count` months before `month`, nearest first."""
    out: list[date] = []
    current = month
    for _ in range(count):
        current = (current.replace(day=1) - timedelta(days=1)).replace(day=1)
        out.append(current)
    return out


async def hotline_history(conn: Connection, month: date, org_code: str | None) -> HotlineHistory:
    """Contacts per day of `month` and per category of the months before it (call inside a snapshot)."""
    daily: dict[str, dict[date, int]] = {}
    for row in await conn.fetch(
        """SELECT org_code, day, sum(contacts) AS contacts FROM hotline_daily
           WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)
           GROUP BY org_code, day""",
        month,
        next_month(month),
        org_code,
    ):
        daily.setdefault(row["org_code"], {})[row["day"]] = int(row["contacts"])
    previous: dict[str, dict[date, dict[str, int]]] = {}
    earliest = months_before(month)[-1]
    for row in await conn.fetch(
        """SELECT org_code, date_trunc('month', day::timestamp)::date AS month, category, sum(contacts) AS contacts
           FROM hotline_daily
           WHERE day >= $1 AND day < $2 AND ($3::text IS NULL OR org_code = $3)
           GROUP BY 1, 2, 3""",
        earliest,
        month,
        org_code,
    ):
        by_month = previous.setdefault(row["org_code"], {})
        by_month.setdefault(row["month"], {})[row["category"]] = int(row["contacts"])
    return HotlineHistory(daily, previous)


def previous_figures(history: HotlineHistory, org_code: str, month: date) -> dict[str, int] | None:
    """A centre's figures (`calls`, each category's field) in an earlier `month`; None if it had no contact."""
    counts = history.previous.get(org_code, {}).get(month)
    return _figures(counts) if counts else None


@dataclass(frozen=True)
class HotlineInputs:
    """Everything the bulletin shows and checks of the hotline for a month, read in one snapshot."""

    month: date
    centres: list[Centre]
    report: HotlineReport
    history: HotlineHistory


async def hotline_bulletin_inputs(conn: Connection, month: date, org_code: str | None) -> HotlineInputs:
    """The month's report, the centres and their history, in one repeatable-read snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        centres = await hotline_centres(conn, org_code)
        counts = await month_counts(conn, month, next_month(month), org_code)
        history = await hotline_history(conn, month, org_code)
    return HotlineInputs(month, centres, hotline_report(centres, counts), history)
