"""The uploads reports: the contract's monthly formulas (pure) and the queries that feed them.

The database path (`month_inputs`, from the rollup tables) and the in-memory path
(`inputs_from_deltas`, from folded events) both produce `MonthInputs`, so the formulas of
`upload_row` exist once; the aggregator's routes, the bulletin, the data-quality gauges and
the command line all call `uploads_report`.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from services.contract.models import InstitutionKind, TableCategory
from services.reports.common import next_month, rate
from services.reports.reference import Institution, ReferenceView, load_reference_view
from services.storage.connection import Connection
from services.streams.rollups import Deltas, month_of
from services.streams.uploads.fold import (
    CONFORMANCE_DAILY,
    UPLOAD_DAILY,
    UPLOAD_MONTHLY_TABLES,
    UPLOAD_SLOTS,
    ChannelRecords,
    conformance_sums,
)
from services.streams.uploads.model import MissingUploadRow, Mode, UploadReportRow

EHR = (TableCategory.EHR_BASIC, TableCategory.EHR_HYPERTENSION, TableCategory.EHR_DIABETES)


@dataclass
class MonthInputs:
    """One institution's aggregates for one month."""

    records: int = 0
    documents: int = 0
    upload_days: int = 0
    uploaded_tables: set[str] = field(default_factory=set)
    category_records: dict[TableCategory, int] = field(default_factory=dict)
    ehr_cumulative: dict[TableCategory, int] = field(default_factory=dict)
    conformance_low: int = 0
    conformance_high: int = 0
    incomplete: int = 0
    nonconforming: int = 0
    unlinked: int = 0
    slot_lags: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(table, mode) -> the first-arrival lag (seconds after the business day) of each filled slot
    of the month's business days (no_upload_days left out)."""


SCHEDULED_DEADLINE_H = 6
"""A scheduled slot is on time when it arrives by 06:00 of the next day: the contract's default, a
constant here, because a closed month's frozen uploads report must not change its meaning with a
setting (docs/contract-decisions.md)."""


def nearest_rank(values: list[int], share: float) -> int | None:
    """The nearest-rank percentile: the smallest value with at least `share` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Timeliness:
    """One institution's expected uploads of a month: DHIS2's reporting rate and reporting rate on time."""

    expected_slots: int
    """Per channel: expected tables × business days of the month."""
    reporting_rate_realtime: float | None
    on_time_rate_realtime: float | None
    reporting_rate_scheduled: float | None
    on_time_rate_scheduled: float | None
    scheduled_lag_p50_hours: float | None
    scheduled_lag_p90_hours: float | None


def _hours(seconds: int | None) -> float | None:
    return round(seconds / 3600, 2) if seconds is not None else None


def timeliness(
    expected_tables: frozenset[str], business_days: int, slot_lags: Mapping[tuple[str, str], list[int]], deadline_h: int
) -> Timeliness:
    """The expected-upload figures: slots of the expected tables, filled (and on time) per channel."""
    expected = len(expected_tables) * business_days
    deadlines = {Mode.REALTIME.value: 0, Mode.SCHEDULED.value: deadline_h * 3600}
    filled = {mode: 0 for mode in deadlines}
    on_time = {mode: 0 for mode in deadlines}
    scheduled: list[int] = []
    for (table, mode), lags in slot_lags.items():
        if table not in expected_tables or mode not in deadlines:
            continue
        filled[mode] += len(lags)
        on_time[mode] += sum(1 for lag in lags if lag <= deadlines[mode])
        if mode == Mode.SCHEDULED.value:
            scheduled += lags
    realtime, nightly = Mode.REALTIME.value, Mode.SCHEDULED.value
    return Timeliness(
        expected_slots=expected,
        reporting_rate_realtime=rate(filled[realtime], expected),
        on_time_rate_realtime=rate(on_time[realtime], expected),
        reporting_rate_scheduled=rate(filled[nightly], expected),
        on_time_rate_scheduled=rate(on_time[nightly], expected),
        scheduled_lag_p50_hours=_hours(nearest_rank(scheduled, 0.5)),
        scheduled_lag_p90_hours=_hours(nearest_rank(scheduled, 0.9)),
    )


def business_days(month: date, no_upload_days: frozenset[date]) -> list[date]:
    """The days of `month` on which uploads are expected."""
    count = calendar.monthrange(month.year, month.month)[1]
    days = [month.replace(day=n) for n in range(1, count + 1)]
    return [d for d in days if d not in no_upload_days]


def complement_rate(flawed: int, records: int) -> float | None:
    """1 − flawed / records, None without records (completeness, conformity, linkage)."""
    return rate(records - flawed, records)


def upload_row(inst: Institution, month: date, inputs: MonthInputs, ref: ReferenceView) -> UploadReportRow:
    """One row of the uploads report, with every metric of the contract."""
    required = ref.required_tables(inst.kind)
    days = business_days(month, ref.no_upload_days)
    timely = timeliness(ref.expected_tables(inst), len(days), inputs.slot_lags, SCHEDULED_DEADLINE_H)
    declared = ref.declarations.get(inst.org_code)
    declared_count = len(declared) if declared else None
    declared_uploaded = len(declared & inputs.uploaded_tables) if declared else 0
    return UploadReportRow(
        org_code=inst.org_code,
        name=inst.name,
        kind=inst.kind,
        month=month.strftime("%Y-%m"),
        records_uploaded=inputs.records,
        documents_uploaded=inputs.documents,
        upload_days=inputs.upload_days,
        uploaded_tables=len(inputs.uploaded_tables),
        declared_tables=declared_count,
        required_tables=required,
        table_coverage_rate=rate(len(inputs.uploaded_tables), required),
        declared_coverage_rate=rate(declared_uploaded, declared_count) if declared_count else None,
        outpatient_visits=inputs.category_records.get(TableCategory.OUTPATIENT_VISIT, 0),
        discharges=inputs.category_records.get(TableCategory.DISCHARGE, 0),
        ehr_basic_cumulative=inputs.ehr_cumulative.get(TableCategory.EHR_BASIC, 0),
        ehr_hypertension_cumulative=inputs.ehr_cumulative.get(TableCategory.EHR_HYPERTENSION, 0),
        ehr_diabetes_cumulative=inputs.ehr_cumulative.get(TableCategory.EHR_DIABETES, 0),
        conformance_rate=rate(inputs.conformance_low, inputs.conformance_high),
        completeness_rate=complement_rate(inputs.incomplete, inputs.records),
        conformity_rate=complement_rate(inputs.nonconforming, inputs.records),
        linkage_rate=complement_rate(inputs.unlinked, inputs.records),
        # Null without records like the other three (the contract's "null when records_uploaded = 0").
        continuity_rate=(
            rate(inputs.upload_days, calendar.monthrange(month.year, month.month)[1]) if inputs.records else None
        ),
        expected_slots=timely.expected_slots,
        reporting_rate_realtime=timely.reporting_rate_realtime,
        on_time_rate_realtime=timely.on_time_rate_realtime,
        reporting_rate_scheduled=timely.reporting_rate_scheduled,
        on_time_rate_scheduled=timely.on_time_rate_scheduled,
        scheduled_lag_p50_hours=timely.scheduled_lag_p50_hours,
        scheduled_lag_p90_hours=timely.scheduled_lag_p90_hours,
    )


def upload_report(
    kind: InstitutionKind,
    month: date,
    inputs: Mapping[str, MonthInputs],
    ref: ReferenceView,
) -> list[UploadReportRow]:
    """Every institution of `kind`, sorted by records uploaded, most first (the bulletin's order)."""
    rows = [
        upload_row(inst, month, inputs.get(inst.org_code, MonthInputs()), ref)
        for inst in ref.institutions
        if inst.kind is kind
    ]
    rows.sort(key=lambda r: (-r.records_uploaded, r.org_code))
    return rows


def inputs_from_deltas(
    deltas: Deltas,
    month: date,
    categories: Mapping[str, TableCategory],
    no_upload_days: frozenset[date] = frozenset(),
) -> dict[str, MonthInputs]:
    """Month inputs computed in memory from folded events (the rollup rows before they are stored)."""
    out: dict[str, MonthInputs] = {}
    for (org, table, mode, business), (lag,) in deltas.tables.get(UPLOAD_SLOTS.name, {}).items():
        if month_of(business) == month and business not in no_upload_days:
            out.setdefault(org, MonthInputs()).slot_lags.setdefault((table, mode), []).append(lag)
    for (org, day), (records, _, _) in deltas.tables.get(UPLOAD_DAILY.name, {}).items():
        if month_of(day) == month and records > 0:
            out.setdefault(org, MonthInputs()).upload_days += 1
    for (org, table_month, table), values in deltas.tables.get(UPLOAD_MONTHLY_TABLES.name, {}).items():
        records, documents, _, incomplete, nonconforming, unlinked = values
        category = categories.get(table, TableCategory.OTHER)
        if table_month <= month and category in EHR:
            inputs = out.setdefault(org, MonthInputs())
            inputs.ehr_cumulative[category] = inputs.ehr_cumulative.get(category, 0) + records
        if table_month != month:
            continue
        inputs = out.setdefault(org, MonthInputs())
        inputs.records += records
        inputs.documents += documents
        inputs.incomplete += incomplete
        inputs.nonconforming += nonconforming
        inputs.unlinked += unlinked
        if records > 0:
            inputs.uploaded_tables.add(table)
        inputs.category_records[category] = inputs.category_records.get(category, 0) + records
    pairs_by_org: dict[str, list[ChannelRecords]] = {}
    for (org, _table, business_date), (realtime, scheduled) in deltas.tables.get(CONFORMANCE_DAILY.name, {}).items():
        if month_of(business_date) == month:
            pairs_by_org.setdefault(org, []).append(ChannelRecords(realtime, scheduled))
    for org, pairs in pairs_by_org.items():
        low, high, _ = conformance_sums(pairs)
        inputs = out.setdefault(org, MonthInputs())
        inputs.conformance_low, inputs.conformance_high = low, high
    return out


async def month_inputs(conn: Connection, month: date, ref: ReferenceView) -> dict[str, MonthInputs]:
    """Per-institution aggregates of `month` from the rollup tables."""
    end = next_month(month)
    out: dict[str, MonthInputs] = {}
    for row in await conn.fetch(
        """SELECT org_code, table_code, records, documents, incomplete, nonconforming, unlinked
           FROM upload_monthly_tables WHERE month = $1""",
        month,
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        inputs.records += row["records"]
        inputs.documents += row["documents"]
        inputs.incomplete += row["incomplete"]
        inputs.nonconforming += row["nonconforming"]
        inputs.unlinked += row["unlinked"]
        if row["records"] > 0:
            inputs.uploaded_tables.add(row["table_code"])
        category = ref.table_category.get(row["table_code"], TableCategory.OTHER)
        inputs.category_records[category] = inputs.category_records.get(category, 0) + row["records"]
    for row in await conn.fetch(
        """SELECT org_code, count(*) FILTER (WHERE records > 0) AS days FROM upload_daily
           WHERE day >= $1 AND day < $2 GROUP BY org_code""",
        month,
        end,
    ):
        out.setdefault(row["org_code"], MonthInputs()).upload_days = row["days"]
    ehr_tables = [code for code, cat in ref.table_category.items() if cat in EHR]
    for row in await conn.fetch(
        """SELECT org_code, table_code, sum(records) AS records FROM upload_monthly_tables
           WHERE month <= $1 AND table_code = ANY($2::text[]) GROUP BY org_code, table_code""",
        month,
        ehr_tables,
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        category = ref.table_category[row["table_code"]]
        inputs.ehr_cumulative[category] = inputs.ehr_cumulative.get(category, 0) + row["records"]
    for row in await conn.fetch(
        """SELECT org_code, table_code, mode, array_agg(first_lag_s) AS lags FROM upload_slots
           WHERE business_date >= $1 AND business_date < $2 AND NOT business_date = ANY($3::date[])
           GROUP BY org_code, table_code, mode""",
        month,
        end,
        sorted(ref.no_upload_days),
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        inputs.slot_lags[(row["table_code"], row["mode"])] = list(row["lags"])
    # Mirrors fold.conformance_sums: only pairs where max(R, S) > 0 contribute.
    for row in await conn.fetch(
        """SELECT org_code,
                  sum(least(realtime_records, scheduled_records)) AS low,
                  sum(greatest(realtime_records, scheduled_records)) AS high
           FROM conformance_daily
           WHERE business_date >= $1 AND business_date < $2
             AND greatest(realtime_records, scheduled_records) > 0
           GROUP BY org_code""",
        month,
        end,
    ):
        inputs = out.setdefault(row["org_code"], MonthInputs())
        inputs.conformance_low, inputs.conformance_high = int(row["low"]), int(row["high"])
    return out


async def uploads_report(
    conn: Connection, month: date, kind: InstitutionKind, org_code: str | None
) -> list[UploadReportRow]:
    """`GET /v1/reports/uploads`: every institution of `kind` (or only `org_code`'s)."""
    # One snapshot, so every figure of a row comes from the same batches and reference version.
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ref = await load_reference_view(conn, org_code)
        inputs = await month_inputs(conn, month, ref)
    return upload_report(kind, month, inputs, ref)


async def missing_uploads(conn: Connection, day: date, org_code: str | None) -> list[MissingUploadRow]:
    """Institutions with records on any of the 7 days before `day` and none on `day`."""
    rows = await conn.fetch(
        """SELECT i.org_code, i.name, i.kind, max(d.day) AS last_day, count(*) AS active_days
           FROM upload_daily d JOIN cur_institutions i USING (org_code)
           WHERE d.day >= $1::date - 7 AND d.day < $1::date AND d.records > 0
             AND ($2::text IS NULL OR i.org_code = $2)
             AND NOT EXISTS (SELECT 1 FROM upload_daily t
                             WHERE t.org_code = d.org_code AND t.day = $1::date AND t.records > 0)
           GROUP BY i.org_code, i.name, i.kind
           ORDER BY i.org_code""",
        day,
        org_code,
    )
    return [
        MissingUploadRow(
            org_code=r["org_code"],
            name=r["name"],
            kind=InstitutionKind(r["kind"]),
            date=day,
            last_upload_day=r["last_day"],
            active_days_in_previous_7=r["active_days"],
        )
        for r in rows
    ]


async def daily_channel_records(conn: Connection, month: date, org_code: str) -> dict[date, ChannelRecords]:
    """Records per business date of `month` and channel, of one institution (the page's heatmap).

    From `conformance_daily`, the one upload rollup kept per channel: its days are the dates the
    records describe, so a nightly batch sent on the 11th shows on the 10th, beside the real-time
    records of the same day (the pairs conformance compares).
    """
    rows = await conn.fetch(
        """SELECT business_date, sum(realtime_records)::bigint AS realtime,
                  sum(scheduled_records)::bigint AS scheduled
           FROM conformance_daily
           WHERE org_code = $1 AND business_date >= $2 AND business_date < $3
           GROUP BY business_date""",
        org_code,
        month,
        next_month(month),
    )
    return {r["business_date"]: ChannelRecords(int(r["realtime"]), int(r["scheduled"])) for r in rows}
