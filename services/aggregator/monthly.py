"""Pure monthly metrics: from per-institution month inputs and reference data to report rows.

The database path (reports.py) and the in-memory path (`inputs_from_deltas`, used by tests and
by rebuild checks) both produce `MonthInputs`, so the contract's formulas live here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.aggregator.rollups import ChannelRecords, RollupDeltas, conformance_sums, month_of
from services.contract.models import (
    InstitutionKind,
    KioskReportRow,
    RequiredFor,
    TableCategory,
    UploadReportRow,
)

RATE_DIGITS = 6


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


@dataclass(frozen=True)
class Institution:
    """Reference data of one institution."""

    org_code: str
    name: str
    kind: InstitutionKind


@dataclass(frozen=True)
class ReferenceView:
    """The reference data the reports need."""

    institutions: list[Institution]
    table_category: Mapping[str, TableCategory]
    table_required_for: Mapping[str, RequiredFor]
    declarations: Mapping[str, frozenset[str]]
    kiosks: Mapping[str, int]

    def required_tables(self, kind: InstitutionKind) -> int:
        """How many tables an institution of `kind` must upload."""
        wanted = {RequiredFor.BOTH, RequiredFor(kind.value)}
        return sum(1 for req in self.table_required_for.values() if req in wanted)


EHR = (TableCategory.EHR_BASIC, TableCategory.EHR_HYPERTENSION, TableCategory.EHR_DIABETES)


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, RATE_DIGITS) if denominator > 0 else None


def upload_row(inst: Institution, month: date, inputs: MonthInputs, ref: ReferenceView) -> UploadReportRow:
    """One row of the uploads report, with every metric of the contract."""
    required = ref.required_tables(inst.kind)
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
        table_coverage_rate=_rate(len(inputs.uploaded_tables), required),
        declared_coverage_rate=_rate(declared_uploaded, declared_count) if declared_count else None,
        outpatient_visits=inputs.category_records.get(TableCategory.OUTPATIENT_VISIT, 0),
        discharges=inputs.category_records.get(TableCategory.DISCHARGE, 0),
        ehr_basic_cumulative=inputs.ehr_cumulative.get(TableCategory.EHR_BASIC, 0),
        ehr_hypertension_cumulative=inputs.ehr_cumulative.get(TableCategory.EHR_HYPERTENSION, 0),
        ehr_diabetes_cumulative=inputs.ehr_cumulative.get(TableCategory.EHR_DIABETES, 0),
        conformance_rate=_rate(inputs.conformance_low, inputs.conformance_high),
    )


def upload_report(
    kind: InstitutionKind, month: date, inputs: Mapping[str, MonthInputs], ref: ReferenceView
) -> list[UploadReportRow]:
    """Every institution of `kind`, sorted by records uploaded, most first (the bulletin's order)."""
    rows = [
        upload_row(inst, month, inputs.get(inst.org_code, MonthInputs()), ref)
        for inst in ref.institutions
        if inst.kind is kind
    ]
    rows.sort(key=lambda r: (-r.records_uploaded, r.org_code))
    return rows


@dataclass
class KioskInputs:
    """One institution's kiosk sums for a month."""

    registrations: int = 0
    registration_amount: Decimal = Decimal("0.00")
    payments: int = 0
    payment_amount: Decimal = Decimal("0.00")


def kiosk_report(inputs: Mapping[str, KioskInputs], ref: ReferenceView) -> list[KioskReportRow]:
    """One row per institution, hospitals then districts, each by kiosks, most first; then the total."""
    rows: list[KioskReportRow] = []
    for kind in (InstitutionKind.HOSPITAL, InstitutionKind.DISTRICT):
        group = []
        for inst in ref.institutions:
            if inst.kind is not kind:
                continue
            got = inputs.get(inst.org_code, KioskInputs())
            group.append(
                KioskReportRow(
                    group=kind.value,
                    org_code=inst.org_code,
                    name=inst.name,
                    kiosks=ref.kiosks.get(inst.org_code, 0),
                    registrations=got.registrations,
                    registration_amount=got.registration_amount,
                    payments=got.payments,
                    payment_amount=got.payment_amount,
                )
            )
        group.sort(key=lambda r: (-r.kiosks, -r.registrations, r.org_code or ""))
        rows.extend(group)
    rows.append(
        KioskReportRow(
            group="total",
            org_code=None,
            name="合计 Total",
            kiosks=sum(r.kiosks for r in rows),
            registrations=sum(r.registrations for r in rows),
            registration_amount=sum((r.registration_amount for r in rows), Decimal("0.00")),
            payments=sum(r.payments for r in rows),
            payment_amount=sum((r.payment_amount for r in rows), Decimal("0.00")),
        )
    )
    return rows


def inputs_from_deltas(
    deltas: RollupDeltas, month: date, categories: Mapping[str, TableCategory]
) -> dict[str, MonthInputs]:
    """Month inputs computed in memory from folded events: the oracle for the database path."""
    out: dict[str, MonthInputs] = {}
    for (org, day), totals in deltas.upload_daily.items():
        if month_of(day) == month and totals.records > 0:
            out.setdefault(org, MonthInputs()).upload_days += 1
    for (org, table_month, table), totals in deltas.upload_monthly_tables.items():
        category = categories.get(table, TableCategory.OTHER)
        if table_month <= month and category in EHR:
            inputs = out.setdefault(org, MonthInputs())
            inputs.ehr_cumulative[category] = inputs.ehr_cumulative.get(category, 0) + totals.records
        if table_month != month:
            continue
        inputs = out.setdefault(org, MonthInputs())
        inputs.records += totals.records
        inputs.documents += totals.documents
        if totals.records > 0:
            inputs.uploaded_tables.add(table)
        inputs.category_records[category] = inputs.category_records.get(category, 0) + totals.records
    pairs_by_org: dict[str, list[ChannelRecords]] = {}
    for (org, _table, business_date), pair in deltas.conformance.items():
        if month_of(business_date) == month:
            pairs_by_org.setdefault(org, []).append(pair)
    for org, pairs in pairs_by_org.items():
        low, high, _ = conformance_sums(pairs)
        inputs = out.setdefault(org, MonthInputs())
        inputs.conformance_low, inputs.conformance_high = low, high
    return out


def kiosk_inputs_from_deltas(deltas: RollupDeltas, month: date) -> dict[str, KioskInputs]:
    """Kiosk inputs computed in memory from folded events."""
    out: dict[str, KioskInputs] = {}
    for (org, kiosk_month, kind), totals in deltas.kiosk_monthly.items():
        if kiosk_month != month:
            continue
        inputs = out.setdefault(org, KioskInputs())
        if kind == "registration":
            inputs.registrations += totals.transactions
            inputs.registration_amount += totals.amount
        else:
            inputs.payments += totals.transactions
            inputs.payment_amount += totals.amount
    return out
