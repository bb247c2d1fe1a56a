"""What the platform's April 2020 reports must show once the demo stream is in.

Every figure the bulletin prints (in the consistent reading of the hospital table) is
taken from the bulletin cell itself, not from the generator, so a test that computes
the metrics from the stream and compares them with these rows checks the generator
against the bulletin. Figures the bulletin does not print (conformance, a hospital's
outpatient visits and discharges, ...) are the demo plan's; `ExpectedUploadRow.from_bulletin`
names the fields that are bulletin cells. `DEVIATIONS` lists where the demo cannot,
or does not, show what the bulletin printed, and why.

Rates are exact `Fraction`s; `compare_upload_report` / `compare_kiosk_report` check a
report (JSON rows as returned by the platform) against these rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

from services.demo.bulletin import DISTRICT_FIGURES, Bulletin, load_bulletin
from services.demo.errors import PlanError
from services.demo.month import DEFAULT_SEED, MONTH_FIRST, MONTH_LAST, MonthPlan, kiosk_targets, plan_month
from services.demo.reference import REQUIRED_COUNTS, DemoReference, Kind, build_reference, org_code_of

KioskGroup = Literal["hospital", "district", "total"]

_UPLOAD_FIELDS = (
    "records_uploaded",
    "documents_uploaded",
    "upload_days",
    "uploaded_tables",
    "declared_tables",
    "required_tables",
    "table_coverage_rate",
    "declared_coverage_rate",
    "outpatient_visits",
    "discharges",
    "ehr_basic_cumulative",
    "ehr_hypertension_cumulative",
    "ehr_diabetes_cumulative",
    "conformance_rate",
)
_RATE_FIELDS = frozenset({"table_coverage_rate", "declared_coverage_rate", "conformance_rate"})
_KIOSK_FIELDS = ("kiosks", "registrations", "registration_amount", "payments", "payment_amount")
_DISTRICT_CELLS = frozenset(DISTRICT_FIGURES)
_HOSPITAL_CELLS = frozenset(
    {"declared_tables", "required_tables", "uploaded_tables", "records_uploaded", "upload_days", "documents_uploaded"}
)


@dataclass(frozen=True, slots=True)
class ExpectedUploadRow:
    """One institution's row of `GET /v1/reports/uploads?month=2020-04`."""

    org_code: str
    name: str
    kind: Kind
    records_uploaded: int
    documents_uploaded: int
    upload_days: int
    uploaded_tables: int
    declared_tables: int | None
    required_tables: int
    table_coverage_rate: Fraction
    declared_coverage_rate: Fraction | None
    outpatient_visits: int
    discharges: int
    ehr_basic_cumulative: int
    ehr_hypertension_cumulative: int
    ehr_diabetes_cumulative: int
    conformance_rate: Fraction | None
    in_bulletin: bool
    """False for institutions the bulletin's upload table does not list (all zero)."""
    from_bulletin: frozenset[str]
    """Fields whose value is a bulletin cell; the others are the demo plan's."""


@dataclass(frozen=True, slots=True)
class ExpectedKioskRow:
    """One row of `GET /v1/reports/kiosks?month=2020-04` (the total row has group `total`)."""

    group: KioskGroup
    org_code: str | None
    name: str
    kiosks: int
    registrations: int
    registration_amount: Decimal
    payments: int
    payment_amount: Decimal
    in_bulletin: bool


@dataclass(frozen=True, slots=True)
class Deviation:
    """A bulletin cell the demo does not reproduce as printed (or reproduces despite doubt)."""

    table: str
    unit: str
    field: str
    printed: str
    demo: str
    reason: str


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "kiosk_usage",
        "南京市口腔医院",
        "registration_amount",
        "80573.00",
        "0.00",
        "0 registrations cannot carry an amount; the demo generates 0 registrations (and 0.00)",
    ),
    Deviation(
        "kiosk_usage",
        "合计",
        "registration_amount",
        "14896149.37",
        "14815576.37",
        "the printed total adds the rows as printed, 南京市口腔医院's 80573.00 included",
    ),
    Deviation(
        "kiosk_usage",
        "合计",
        "payment_amount",
        "185976917.60",
        "185976917.64",
        "the rows add up to 185976917.64; exact decimal sums",
    ),
    Deviation(
        "district_uploads",
        "秦淮区 / 高淳区",
        "ehr_*_cumulative",
        "436030 / 5664 / 0 (both)",
        "as printed",
        "identical figures, most likely a copy error; nothing in the events could tell, so both are generated",
    ),
    Deviation(
        "hospital_uploads",
        "(all)",
        "col2..col6",
        "columns shifted against the header",
        "consistent reading",
        "col2 document types, col3 CDA documents, col4 uploaded tables, col5 records, col6 upload days",
    ),
    Deviation(
        "hospital_uploads",
        "(all)",
        "document types (col2)",
        "printed",
        "not reproduced",
        "the contract has no metric for distinct document types; documents_uploaded (col3) is reproduced",
    ),
    Deviation(
        "hospital_uploads",
        "(all)",
        "outpatient_visits, discharges",
        "not printed",
        "planned by the demo",
        "the columns headed 门急诊/出院 hold records and upload days in the consistent reading",
    ),
)


def _declared_coverage(ref: DemoReference, org_code: str) -> Fraction | None:
    declared = set(ref.declared(org_code))
    if not declared:
        return None
    return Fraction(len(declared & set(ref.uploaded.get(org_code, ()))), len(declared))


def _zero_row(org_code: str, name: str, kind: Kind, ref: DemoReference) -> ExpectedUploadRow:
    declared = len(ref.declared(org_code)) or None
    return ExpectedUploadRow(
        org_code=org_code,
        name=name,
        kind=kind,
        records_uploaded=0,
        documents_uploaded=0,
        upload_days=0,
        uploaded_tables=0,
        declared_tables=declared,
        required_tables=REQUIRED_COUNTS[kind],
        table_coverage_rate=Fraction(0),
        declared_coverage_rate=_declared_coverage(ref, org_code),
        outpatient_visits=0,
        discharges=0,
        ehr_basic_cumulative=0,
        ehr_hypertension_cumulative=0,
        ehr_diabetes_cumulative=0,
        conformance_rate=None,
        in_bulletin=False,
        from_bulletin=frozenset(),
    )


def expected_upload_rows(
    kind: Kind, plan: MonthPlan | None = None, bulletin: Bulletin | None = None, *, seed: int = DEFAULT_SEED
) -> list[ExpectedUploadRow]:
    """The upload report rows of every institution of `kind`, in the report's order.

    The plan (of `seed`, unless given) supplies the figures the bulletin does not print;
    it must be the plan of the stream that was replayed.
    """
    bulletin = bulletin if bulletin is not None else load_bulletin()
    plan = plan if plan is not None else plan_month(seed, bulletin)
    ref = plan.reference
    rows: dict[str, ExpectedUploadRow] = {}
    if kind == "district":
        for d in bulletin.districts:
            code = org_code_of(d.unit)
            planned = plan.upload_targets[code]
            rows[code] = ExpectedUploadRow(
                org_code=code,
                name=ref.institution(code).name,
                kind=kind,
                records_uploaded=d.records_uploaded,
                documents_uploaded=planned.documents_uploaded,
                upload_days=d.upload_days,
                uploaded_tables=d.uploaded_tables,
                declared_tables=d.declared_tables,
                required_tables=d.required_tables,
                table_coverage_rate=Fraction(d.uploaded_tables, d.required_tables),
                declared_coverage_rate=_declared_coverage(ref, code),
                outpatient_visits=d.outpatient_visits,
                discharges=d.discharges,
                ehr_basic_cumulative=d.ehr_basic_cumulative,
                ehr_hypertension_cumulative=d.ehr_hypertension_cumulative,
                ehr_diabetes_cumulative=d.ehr_diabetes_cumulative,
                conformance_rate=planned.conformance_rate,
                in_bulletin=True,
                from_bulletin=_DISTRICT_CELLS,
            )
    else:
        for h in bulletin.hospitals:
            code = org_code_of(h.unit)
            planned = plan.upload_targets[code]
            rows[code] = ExpectedUploadRow(
                org_code=code,
                name=ref.institution(code).name,
                kind=kind,
                records_uploaded=h.records_uploaded,
                documents_uploaded=h.documents_uploaded,
                upload_days=h.upload_days,
                uploaded_tables=h.uploaded_tables,
                declared_tables=h.declared_tables,
                required_tables=h.required_tables,
                table_coverage_rate=Fraction(h.uploaded_tables, h.required_tables),
                declared_coverage_rate=_declared_coverage(ref, code),
                outpatient_visits=planned.outpatient_visits,
                discharges=planned.discharges,
                ehr_basic_cumulative=planned.ehr_basic_cumulative,
                ehr_hypertension_cumulative=planned.ehr_hypertension_cumulative,
                ehr_diabetes_cumulative=planned.ehr_diabetes_cumulative,
                conformance_rate=planned.conformance_rate,
                in_bulletin=True,
                from_bulletin=_HOSPITAL_CELLS,
            )
    for row in rows.values():
        if len(ref.required(kind)) != row.required_tables:
            raise PlanError(f"{row.name}: the reference requires {len(ref.required(kind))} tables")
        if (len(ref.declared(row.org_code)) or None) != row.declared_tables:
            raise PlanError(f"{row.name}: the reference declares {len(ref.declared(row.org_code))} tables")
    for inst in ref.institutions:
        if inst.kind == kind and inst.org_code not in rows:
            rows[inst.org_code] = _zero_row(inst.org_code, inst.name, kind, ref)
    return sorted(rows.values(), key=lambda r: (-r.records_uploaded, r.org_code))


def expected_missing_uploads(day: date, plan: MonthPlan | None = None, *, seed: int = DEFAULT_SEED) -> list[str]:
    """org_codes `GET /v1/alerts/missing-uploads?date=day` must list, for a day of April 2020.

    An institution is expected on a day when it uploaded records on one of the 7 days
    before; it is missing when it uploaded none that day (liveness events do not count).
    """
    if not MONTH_FIRST <= day <= MONTH_LAST:
        raise ValueError(f"the demo stream covers the days of April 2020, not {day}")
    plan = plan if plan is not None else plan_month(seed)
    before = {day - timedelta(days=n) for n in range(1, 8)}
    return sorted(
        code
        for code, targets in plan.upload_targets.items()
        if day not in targets.upload_dates and before & targets.upload_dates
    )


def _cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def expected_kiosk_rows(
    reference: DemoReference | None = None, bulletin: Bulletin | None = None
) -> list[ExpectedKioskRow]:
    """The kiosk report rows: hospitals, then districts, then the total row."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    reference = reference if reference is not None else build_reference(bulletin)
    by_org: dict[str, ExpectedKioskRow] = {}
    for row in bulletin.kiosks:
        code = org_code_of(row.unit)
        registrations, reg_cents, payments, pay_cents = kiosk_targets(row)
        if len(reference.kiosk_ids(code)) != row.kiosks:
            raise PlanError(f"{row.unit}: {len(reference.kiosk_ids(code))} kiosks registered, {row.kiosks} printed")
        by_org[code] = ExpectedKioskRow(
            group=row.group,
            org_code=code,
            name=reference.institution(code).name,
            kiosks=row.kiosks,
            registrations=registrations,
            registration_amount=_cents(reg_cents),
            payments=payments,
            payment_amount=_cents(pay_cents),
            in_bulletin=True,
        )
    rows: list[ExpectedKioskRow] = []
    for group in ("hospital", "district"):
        rows.extend(r for r in by_org.values() if r.group == group)
        rows.extend(
            ExpectedKioskRow(
                group=group,
                org_code=inst.org_code,
                name=inst.name,
                kiosks=0,
                registrations=0,
                registration_amount=Decimal("0.00"),
                payments=0,
                payment_amount=Decimal("0.00"),
                in_bulletin=False,
            )
            for inst in reference.institutions
            if inst.kind == group and inst.org_code not in by_org
        )
    rows.append(
        ExpectedKioskRow(
            group="total",
            org_code=None,
            name="合计",
            kiosks=sum(r.kiosks for r in rows),
            registrations=sum(r.registrations for r in rows),
            registration_amount=sum((r.registration_amount for r in rows), Decimal("0.00")),
            payments=sum(r.payments for r in rows),
            payment_amount=sum((r.payment_amount for r in rows), Decimal("0.00")),
            in_bulletin=True,
        )
    )
    return rows


def _as_decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _same(field: str, expected: object, actual: object, rate_tolerance: float) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if field in _RATE_FIELDS:
        got = _as_decimal(actual)
        return got is not None and abs(float(got) - float(expected)) <= rate_tolerance  # type: ignore[arg-type]
    return _as_decimal(actual) == _as_decimal(expected)


def compare_upload_report(
    expected: Iterable[ExpectedUploadRow], rows: Iterable[Mapping[str, object]], *, rate_tolerance: float = 1e-6
) -> list[str]:
    """Differences between expected rows and a report's rows (empty when they agree).

    Rows of institutions outside the bulletin (all zero) may be missing from the report;
    the report must be sorted by records_uploaded descending.
    """
    actual = list(rows)
    by_org = {str(r.get("org_code")): r for r in actual}
    problems = []
    expected_codes = set()
    for want in expected:
        expected_codes.add(want.org_code)
        got = by_org.get(want.org_code)
        if got is None:
            if want.in_bulletin:
                problems.append(f"{want.org_code} {want.name}: missing from the report")
            continue
        for field in _UPLOAD_FIELDS:
            if not _same(field, getattr(want, field), got.get(field), rate_tolerance):
                problems.append(
                    f"{want.org_code} {want.name}: {field} is {got.get(field)!r}, expected {getattr(want, field)}"
                )
    problems.extend(f"{code}: not expected in this report" for code in by_org if code not in expected_codes)
    records = [_as_decimal(r.get("records_uploaded")) or Decimal(0) for r in actual]
    if records != sorted(records, reverse=True):
        problems.append("rows are not sorted by records_uploaded descending")
    return problems


def compare_kiosk_report(expected: Iterable[ExpectedKioskRow], rows: Iterable[Mapping[str, object]]) -> list[str]:
    """Differences between expected kiosk rows and a report's rows (empty when they agree)."""
    by_key = {("total" if r.get("group") == "total" else str(r.get("org_code"))): r for r in rows}
    problems = []
    for want in expected:
        key = "total" if want.group == "total" else str(want.org_code)
        got = by_key.pop(key, None)
        if got is None:
            if want.in_bulletin:
                problems.append(f"{key} {want.name}: missing from the report")
            continue
        if got.get("group") != want.group:
            problems.append(f"{key} {want.name}: group is {got.get('group')!r}, expected {want.group}")
        for field in _KIOSK_FIELDS:
            if not _same(field, getattr(want, field), got.get(field), 0.0):
                problems.append(f"{key} {want.name}: {field} is {got.get(field)!r}, expected {getattr(want, field)}")
    problems.extend(f"{key}: not expected in this report" for key in by_key)
    return problems
