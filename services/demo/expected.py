"""What the platform's April 2020 reports must show once the demo stream is in.

Every expected figure is a bulletin cell (in the consistent reading of the hospital table),
or follows from bulletin cells alone: never from the generator's plan, never from the
platform's report code. Figures the bulletin does not print (conformance, districts' CDA
documents, hospitals' outpatient visits, discharges and health records) are not known here:
a caller that has them from its own fold of the events it posted passes them as `measured`
(the tests do), otherwise they are not checked. `ExpectedUploadRow.checked` names the fields
a row is compared on, `from_bulletin` those that are bulletin cells. `DEVIATIONS` lists where
the demo cannot, or does not, show what the bulletin printed, and why.

The sections of contract revision 2 (appointments, hotline, remote platforms) are expected
from their CSV cells in the same way (`expected_appointments`, `expected_hotline`,
`expected_remote_platforms`), with checkers for the reports' JSON (`compare_*`).

Rates are exact `Fraction`s; the checkers compare a report (JSON rows as returned by the
platform) with these rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal

from services.demo.bulletin import DISTRICT_FIGURES, REMOTE_PLATFORMS, Bulletin, load_bulletin
from services.demo.errors import PlanError
from services.demo.institutions import hotline_centre_of
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
    """One institution's row of `GET /v1/reports/uploads?month=2020-04`.

    A field not in `checked` is not known from the bulletin (and was not measured): None.
    """

    org_code: str
    name: str
    kind: Kind
    records_uploaded: int
    documents_uploaded: int | None
    upload_days: int
    uploaded_tables: int
    declared_tables: int | None
    required_tables: int
    table_coverage_rate: Fraction
    declared_coverage_rate: Fraction | None
    outpatient_visits: int | None
    discharges: int | None
    ehr_basic_cumulative: int | None
    ehr_hypertension_cumulative: int | None
    ehr_diabetes_cumulative: int | None
    conformance_rate: Fraction | None
    in_bulletin: bool
    """False for institutions the bulletin's upload table does not list (all zero)."""
    from_bulletin: frozenset[str]
    """Fields whose value is a bulletin cell."""
    checked: frozenset[str]
    """Fields the row is compared on: bulletin cells, figures that follow from them, and measured ones."""


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
        "not checked against the bulletin",
        "the columns headed 门急诊/出院 hold records and upload days in the consistent reading",
    ),
)

# Figures the bulletin does not print, by kind: checked only against a caller's own fold.
UNPRINTED: Mapping[str, frozenset[str]] = {
    "district": frozenset({"documents_uploaded", "conformance_rate"}),
    "hospital": frozenset(
        {
            "outpatient_visits",
            "discharges",
            "ehr_basic_cumulative",
            "ehr_hypertension_cumulative",
            "ehr_diabetes_cumulative",
            "conformance_rate",
        }
    ),
}
# Follow from bulletin cells: coverage = uploaded / required; declared coverage = uploaded /
# declared, as every uploaded table of the demo is a declared one (reference.py builds the
# declarations around the uploaded tables; a test checks it on the stream).
_DERIVED = frozenset({"table_coverage_rate", "declared_coverage_rate"})


def _zero_row(org_code: str, name: str, kind: Kind, ref: DemoReference) -> ExpectedUploadRow:
    # An institution the upload table does not list uploaded nothing in April: every figure 0.
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
        declared_coverage_rate=Fraction(0) if declared else None,
        outpatient_visits=0,
        discharges=0,
        ehr_basic_cumulative=0,
        ehr_hypertension_cumulative=0,
        ehr_diabetes_cumulative=0,
        conformance_rate=None,
        in_bulletin=False,
        from_bulletin=frozenset(),
        checked=frozenset(_UPLOAD_FIELDS),
    )


def _with_measured(row: ExpectedUploadRow, measured: Mapping[str, Mapping[str, object]] | None) -> ExpectedUploadRow:
    """The row with the unprinted figures a fold measured (if any), which are then checked too."""
    got = (measured or {}).get(row.org_code)
    if not got or not row.in_bulletin:
        return row
    unprinted = UNPRINTED[row.kind]
    values = {name: got[name] for name in unprinted if name in got}
    return replace(row, **values, checked=row.checked | frozenset(values))  # type: ignore[arg-type]


def expected_upload_rows(
    kind: Kind,
    *,
    bulletin: Bulletin | None = None,
    reference: DemoReference | None = None,
    measured: Mapping[str, Mapping[str, object]] | None = None,
) -> list[ExpectedUploadRow]:
    """The upload report rows of every institution of `kind`, in the report's order.

    `measured` (org_code -> field -> value) gives the figures the bulletin does not print,
    from the caller's own fold of the stream it posted; without it they are not checked.
    """
    bulletin = bulletin if bulletin is not None else load_bulletin()
    ref = reference if reference is not None else build_reference(bulletin)
    rows: dict[str, ExpectedUploadRow] = {}
    if kind == "district":
        for d in bulletin.districts:
            code = org_code_of(d.unit)
            rows[code] = ExpectedUploadRow(
                org_code=code,
                name=ref.institution(code).name,
                kind=kind,
                records_uploaded=d.records_uploaded,
                documents_uploaded=None,
                upload_days=d.upload_days,
                uploaded_tables=d.uploaded_tables,
                declared_tables=d.declared_tables,
                required_tables=d.required_tables,
                table_coverage_rate=Fraction(d.uploaded_tables, d.required_tables),
                declared_coverage_rate=_declared_coverage(d.uploaded_tables, d.declared_tables),
                outpatient_visits=d.outpatient_visits,
                discharges=d.discharges,
                ehr_basic_cumulative=d.ehr_basic_cumulative,
                ehr_hypertension_cumulative=d.ehr_hypertension_cumulative,
                ehr_diabetes_cumulative=d.ehr_diabetes_cumulative,
                conformance_rate=None,
                in_bulletin=True,
                from_bulletin=_DISTRICT_CELLS,
                checked=_DISTRICT_CELLS | _DERIVED,
            )
    else:
        for h in bulletin.hospitals:
            code = org_code_of(h.unit)
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
                declared_coverage_rate=_declared_coverage(h.uploaded_tables, h.declared_tables),
                outpatient_visits=None,
                discharges=None,
                ehr_basic_cumulative=None,
                ehr_hypertension_cumulative=None,
                ehr_diabetes_cumulative=None,
                conformance_rate=None,
                in_bulletin=True,
                from_bulletin=_HOSPITAL_CELLS,
                checked=_HOSPITAL_CELLS | _DERIVED,
            )
    for row in rows.values():
        if len(ref.required(kind)) != row.required_tables:
            raise PlanError(f"{row.name}: the reference requires {len(ref.required(kind))} tables")
        if (len(ref.declared(row.org_code)) or None) != row.declared_tables:
            raise PlanError(f"{row.name}: the reference declares {len(ref.declared(row.org_code))} tables")
    for inst in ref.institutions:
        if inst.kind == kind and inst.org_code not in rows:
            rows[inst.org_code] = _zero_row(inst.org_code, inst.name, kind, ref)
    rows = {code: _with_measured(row, measured) for code, row in rows.items()}
    return sorted(rows.values(), key=lambda r: (-r.records_uploaded, r.org_code))


def _declared_coverage(uploaded: int, declared: int | None) -> Fraction | None:
    return Fraction(uploaded, declared) if declared else None


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

    Each row is compared on its `checked` fields. Rows of institutions outside the bulletin
    (all zero) may be missing from the report; the report must be sorted by records_uploaded
    descending.
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
            if field not in want.checked:
                continue
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


# --- contract revision 2: appointments, hotline, remote platforms -------------------------

CHANNELS = ("online_12320", "phone", "in_clinic", "third_party")


@dataclass(frozen=True, slots=True)
class ExpectedAppointmentRow:
    """One row of the appointments report (the total row has org_code None and name 合计)."""

    org_code: str | None
    name: str
    online_12320: int
    phone: int
    in_clinic: int
    third_party: int
    subtotal: int


@dataclass(frozen=True, slots=True)
class ExpectedPlatformRow:
    """One booking platform of the appointments report."""

    platform_code: str
    name: str
    appointments: int


@dataclass(frozen=True, slots=True)
class ExpectedAppointments:
    """`GET /v1/reports/appointments?month=2020-04`, from 预约挂号服务统计表 and 分途径预约情况统计."""

    rows: tuple[ExpectedAppointmentRow, ...]
    total: ExpectedAppointmentRow
    appointments_cumulative: int
    platforms: tuple[ExpectedPlatformRow, ...]
    platforms_total: int


def expected_appointments(
    bulletin: Bulletin | None = None, reference: DemoReference | None = None
) -> ExpectedAppointments:
    """The appointments report as printed: every cell, the printed totals, the total to date."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    reference = reference if reference is not None else build_reference(bulletin)
    rows = tuple(
        ExpectedAppointmentRow(
            org_code_of(r.unit),
            reference.institution(org_code_of(r.unit)).name,
            r.online_12320,
            r.phone,
            r.in_clinic,
            r.third_party,
            r.subtotal,
        )
        for r in bulletin.appointments
    )
    t = bulletin.appointments_printed_total
    codes = {name: code for code, name in reference.booking_platforms}
    return ExpectedAppointments(
        rows=rows,
        total=ExpectedAppointmentRow(None, "合计", t.online_12320, t.phone, t.in_clinic, t.third_party, t.subtotal),
        appointments_cumulative=bulletin.appointments_to_date,
        platforms=tuple(
            ExpectedPlatformRow(codes[p.platform], p.platform, p.appointments) for p in bulletin.appointment_platforms
        ),
        platforms_total=bulletin.appointment_platforms_printed_total,
    )


def _differs(where: str, field: str, want: object, got: object) -> list[str]:
    return [] if _same(field, want, got, 0.0) else [f"{where}: {field} is {got!r}, expected {want}"]


def compare_appointment_report(expected: ExpectedAppointments, report: Mapping[str, Any]) -> list[str]:
    """Differences between the expected appointments and a report's JSON (empty when they agree).

    Institutions the table does not list may be in `rows` with zeros; platforms must be sorted
    by appointments, most first.
    """
    problems: list[str] = []
    got_rows = {str(r.get("org_code")): r for r in report.get("rows", [])}
    for want in expected.rows:
        got = got_rows.pop(str(want.org_code), None)
        if got is None:
            problems.append(f"{want.org_code} {want.name}: missing from the report")
            continue
        for field in (*CHANNELS, "subtotal"):
            problems += _differs(f"{want.org_code} {want.name}", field, getattr(want, field), got.get(field))
    for code, got in got_rows.items():
        if any(_as_decimal(got.get(field)) for field in (*CHANNELS, "subtotal")):
            problems.append(f"{code}: bookings the bulletin does not list")
    total = report.get("total") or {}
    for field in (*CHANNELS, "subtotal"):
        problems += _differs("合计", field, getattr(expected.total, field), total.get(field))
    problems += _differs(
        "total to date",
        "appointments_cumulative",
        expected.appointments_cumulative,
        report.get("appointments_cumulative"),
    )
    got_platforms = list(report.get("platforms", []))
    by_code = {str(p.get("platform_code")): p for p in got_platforms}
    for platform in expected.platforms:
        got = by_code.get(platform.platform_code)
        if got is None:
            problems.append(f"platform {platform.platform_code} {platform.name}: missing from the report")
            continue
        problems += _differs(f"platform {platform.platform_code}", "name", platform.name, got.get("name"))
        problems += _differs(
            f"platform {platform.platform_code}", "appointments", platform.appointments, got.get("appointments")
        )
    counts = [_as_decimal(p.get("appointments")) or Decimal(0) for p in got_platforms]
    if counts != sorted(counts, reverse=True):
        problems.append("platforms are not sorted by appointments descending")
    problems += _differs("platforms 合计", "platforms_total", expected.platforms_total, report.get("platforms_total"))
    return problems


@dataclass(frozen=True, slots=True)
class ExpectedHotlineRow:
    """One centre of the hotline report; a figure not printed for the centre is None (not checked)."""

    org_code: str
    name: str
    city: str | None
    figures: Mapping[str, int]
    """The printed figures of the centre: calls for every centre, everything for 南京12320."""


@dataclass(frozen=True, slots=True)
class ExpectedHotline:
    """`GET /v1/reports/hotline?month=2020-04`, from the hotline paragraph and the province table."""

    rows: tuple[ExpectedHotlineRow, ...]
    total_calls: int


def expected_hotline(bulletin: Bulletin | None = None, reference: DemoReference | None = None) -> ExpectedHotline:
    """Every centre's calls (the province table), and the Nanjing centre's every printed figure."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    reference = reference if reference is not None else build_reference(bulletin)
    rows = []
    for row in bulletin.province_calls:
        code = hotline_centre_of(row.city)
        centre = reference.institution(code)
        figures = {"calls": row.calls}
        if centre.name in {f.section for f in bulletin.hotline}:
            figures |= {f.figure: f.value for f in bulletin.hotline if f.section == centre.name}
            if figures["calls"] != row.calls:
                raise PlanError(f"{centre.name}: {figures['calls']} calls in the paragraph, {row.calls} in the table")
        rows.append(ExpectedHotlineRow(code, centre.name, centre.city, figures))
    return ExpectedHotline(tuple(rows), bulletin.province_calls_printed_total)


def compare_hotline_report(expected: ExpectedHotline, report: Mapping[str, Any]) -> list[str]:
    """Differences between the expected hotline figures and a report's JSON; rows sorted by calls."""
    problems: list[str] = []
    got_rows = list(report.get("rows", []))
    by_org = {str(r.get("org_code")): r for r in got_rows}
    for want in expected.rows:
        got = by_org.pop(want.org_code, None)
        if got is None:
            problems.append(f"{want.org_code} {want.name}: missing from the report")
            continue
        for field, value in want.figures.items():
            problems += _differs(f"{want.org_code} {want.name}", field, value, got.get(field))
        problems += _differs(f"{want.org_code} {want.name}", "city", want.city, got.get("city"))
    problems.extend(f"{code}: a centre the bulletin does not list" for code in by_org)
    calls = [_as_decimal(r.get("calls")) or Decimal(0) for r in got_rows]
    if calls != sorted(calls, reverse=True):
        problems.append("rows are not sorted by calls descending")
    problems += _differs("合计", "calls", expected.total_calls, (report.get("total") or {}).get("calls"))
    return problems


@dataclass(frozen=True, slots=True)
class ExpectedRemotePlatform:
    """One platform of `GET /v1/reports/remote-platforms?month=2020-04`, as printed."""

    platform: str
    printed: Mapping[str, int]
    """Every printed figure, by the bulletin's name for it (`REMOTE_FIGURES`)."""
    top_uploaders: tuple[tuple[str, str, int], ...]
    """(org_code, name, value), rank 1 first."""


def expected_remote_platforms(
    bulletin: Bulletin | None = None, reference: DemoReference | None = None
) -> tuple[ExpectedRemotePlatform, ...]:
    """The four platforms' printed figures and top uploaders."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    reference = reference if reference is not None else build_reference(bulletin)
    out = []
    for platform in REMOTE_PLATFORMS:
        top = sorted((t for t in bulletin.top_uploaders if t.platform == platform), key=lambda t: t.rank)
        out.append(
            ExpectedRemotePlatform(
                platform,
                bulletin.remote_figures(platform),
                tuple((org_code_of(t.unit), reference.institution(org_code_of(t.unit)).name, t.value) for t in top),
            )
        )
    return tuple(out)


def printed_figure(figure: str, platform: Mapping[str, Any]) -> object:
    """A printed figure read from one platform object of the report (contract revision 2).

    The counts by kind and place are sums of `by_region_level` rows (`region`, `level`,
    `count`; an unknown region is the city): 二级以上 = secondary + tertiary, 社区卫生服务中心 =
    primary, 其他机构 = the city's institutions of level other.
    """
    rows = [
        (r.get("region") or "city", r.get("level"), int(r.get("count", 0))) for r in platform.get("by_region_level", [])
    ]

    def count(region: str | None, levels: frozenset[str] | None) -> int:
        return sum(
            n for reg, level, n in rows if (region is None or reg == region) and (levels is None or level in levels)
        )

    plus = frozenset({"secondary", "tertiary"})
    derived = {
        "city_secondary_plus": lambda: count("city", plus),
        "city_tertiary": lambda: count("city", frozenset({"tertiary"})),
        "city_primary": lambda: count("city", frozenset({"primary"})),
        "secondary_plus": lambda: count(None, plus),
        "metro": lambda: count("metro", None),
        "aided": lambda: count("aided", None),
        "other": lambda: count("city", frozenset({"other"})),
    }
    return derived[figure]() if figure in derived else platform.get(figure)


def compare_remote_report(expected: Iterable[ExpectedRemotePlatform], report: Mapping[str, Any]) -> list[str]:
    """Differences between the printed remote-platform figures and a report's JSON."""
    problems: list[str] = []
    by_platform = {str(p.get("platform")): p for p in report.get("platforms", [])}
    for want in expected:
        got = by_platform.get(want.platform)
        if got is None:
            problems.append(f"platform {want.platform}: missing from the report")
            continue
        for figure, value in want.printed.items():
            problems += _differs(want.platform, figure, value, printed_figure(figure, got))
        top = [(str(t.get("org_code")), t.get("name"), t.get("value")) for t in got.get("top_uploaders", [])]
        if [(o, n, _as_decimal(v)) for o, n, v in top] != [(o, n, Decimal(v)) for o, n, v in want.top_uploaders]:
            problems.append(f"{want.platform}: top_uploaders are {top}, expected {list(want.top_uploaders)}")
    return problems
