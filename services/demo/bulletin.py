"""The April 2020 Nanjing bulletin tables, parsed into typed rows.

The CSV files in `data/bulletin-2020-04/` are the bulletin's tables transcribed as printed
(see `services/demo/README.md`): the uploads per district and per hospital, the kiosks, the
appointments per hospital and channel and per booking platform, the 12320 hotline and the
province's centres, and the remote-medicine platforms' figures and top uploaders. This
module reads them strictly: a header that is not the transcribed one, or a cell that does
not parse, is a `BulletinError`, because every figure of the demo is derived from these cells.

The hospital upload table is printed with its columns shifted against its header; it
is read here in the consistent reading (`col2` document types, `col3` CDA documents,
`col4` uploaded tables, `col5` records uploaded, `col6` upload days). `check_bulletin`
lists what does not add up in the tables as printed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from services.demo.errors import BulletinError
from services.quality.identical import UPLOAD_FIELDS, Compared, identical_figures
from services.quality.uploads import amount_without_count

BULLETIN_DIR = Path(__file__).resolve().parent / "data" / "bulletin-2020-04"
DAYS_IN_MONTH = 30

DISTRICT_FILE = "district_uploads_2020-04.csv"
HOSPITAL_FILE = "hospital_uploads_2020-04.csv"
KIOSK_FILE = "kiosk_usage_2020-04.csv"
APPOINTMENTS_FILE = "appointments_2020-04.csv"
APPOINTMENT_PLATFORMS_FILE = "appointment_platforms_2020-04.csv"
HOTLINE_FILE = "hotline_2020-04.csv"
HOTLINE_PROVINCE_FILE = "hotline_province_2020-04.csv"
REMOTE_PLATFORMS_FILE = "remote_platforms_2020-04.csv"
REMOTE_TOP_UPLOADERS_FILE = "remote_top_uploaders_2020-04.csv"
BULLETIN_FILES = (
    DISTRICT_FILE,
    HOSPITAL_FILE,
    KIOSK_FILE,
    APPOINTMENTS_FILE,
    APPOINTMENT_PLATFORMS_FILE,
    HOTLINE_FILE,
    HOTLINE_PROVINCE_FILE,
    REMOTE_PLATFORMS_FILE,
    REMOTE_TOP_UPLOADERS_FILE,
)

# Printed under the appointments table, not in a table of its own (no CSV holds it):
# "（截止4月底，总预约挂号量为19238954次）" — every booking to the end of April, all channels.
APPOINTMENTS_TO_DATE = 19_238_954
APPOINTMENTS_TO_DATE_PRINTED = "（截止4月底，总预约挂号量为19238954次）"

_DISTRICT_HEADER = (
    "unit",
    "declared_tables",
    "required_tables",
    "uploaded_tables",
    "records_uploaded",
    "upload_days",
    "outpatient_visits",
    "discharges",
    "ehr_basic_cumulative",
    "ehr_hypertension_cumulative",
    "ehr_diabetes_cumulative",
)
# The district table's figures, by the report field each column holds.
DISTRICT_FIGURES = _DISTRICT_HEADER[1:]
_HOSPITAL_HEADER = (
    "unit",
    "declared_tables",
    "required_tables",
    "col2",
    "col3",
    "col4",
    "col5",
    "col6",
)
_KIOSK_HEADER = (
    "group",
    "unit",
    "kiosks",
    "registrations",
    "registration_amount_cny",
    "payments",
    "payment_amount_cny",
)
_APPOINTMENTS_HEADER = (
    "no",
    "unit",
    "online_12320",
    "phone",
    "in_clinic",
    "third_party",
    "subtotal",
)

_APPOINTMENT_PLATFORMS_HEADER = ("no", "platform", "appointments")
_HOTLINE_HEADER = ("centre", "figure", "value", "printed_as")
_HOTLINE_PROVINCE_HEADER = ("city", "calls")
_REMOTE_PLATFORMS_HEADER = ("platform", "figure", "value", "printed_as")
_REMOTE_TOP_HEADER = ("platform", "rank", "unit", "value")

# The hotline's figures, by the report field each is (contract revision 2).
HOTLINE_CALL_CATEGORIES = (
    "consultation",
    "complaint",
    "appointment",
    "crisis_intervention",
    "satisfaction_survey",
    "voice_qa",
)
HOTLINE_FIGURES = ("calls", *HOTLINE_CALL_CATEGORIES, "work_orders_city_12345", "work_orders_province_12345")
REMOTE_PLATFORMS = ("consultation", "ecg", "lab", "imaging")
# The remote-platform section's figures: a count of connected institutions (by place and
# level, in the bulletin's words), a volume of the month, or the cumulative consultations.
REMOTE_CONNECTED_FIGURES = (
    "connected",
    "cities",
    "districts",
    "districts_primary",
    "city_secondary_plus",
    "city_tertiary",
    "city_primary",
    "secondary_plus",
    "metro",
    "aided",
    "other",
)
REMOTE_VOLUME_FIGURES = ("consultations", "cases", "reports", "specimens", "images")
REMOTE_FIGURES = (*REMOTE_CONNECTED_FIGURES, *REMOTE_VOLUME_FIGURES, "consultations_cumulative")

KioskGroup = Literal["hospital", "district"]


@dataclass(frozen=True, slots=True)
class DistrictUploadRow:
    """One row of 2020年4月南京市卫生信息平台数据采集情况（区）."""

    unit: str
    declared_tables: int | None
    required_tables: int
    uploaded_tables: int
    records_uploaded: int
    upload_days: int
    outpatient_visits: int
    discharges: int
    ehr_basic_cumulative: int
    ehr_hypertension_cumulative: int
    ehr_diabetes_cumulative: int


@dataclass(frozen=True, slots=True)
class HospitalUploadRow:
    """One row of 2020年4月南京市卫生信息平台数据采集情况（医院）, in the consistent reading.

    The printed header names col2..col6 differently; see the module docstring.
    """

    unit: str
    declared_tables: int | None
    required_tables: int
    document_types: int
    documents_uploaded: int
    uploaded_tables: int
    records_uploaded: int
    upload_days: int


@dataclass(frozen=True, slots=True)
class KioskUsageRow:
    """One institution row of 2020年4月自助智能医疗服务终端医院使用情况表."""

    group: KioskGroup
    unit: str
    kiosks: int
    registrations: int
    registration_amount: Decimal
    payments: int
    payment_amount: Decimal


@dataclass(frozen=True, slots=True)
class KioskTotals:
    """The printed 合计 row of the kiosk table (or a computed sum of rows)."""

    kiosks: int
    registrations: int
    registration_amount: Decimal
    payments: int
    payment_amount: Decimal


@dataclass(frozen=True, slots=True)
class AppointmentRow:
    """One row of 2020年4月预约挂号服务统计表 (appointments by channel)."""

    no: int
    unit: str
    online_12320: int
    phone: int
    in_clinic: int
    third_party: int
    subtotal: int


@dataclass(frozen=True, slots=True)
class PlatformAppointmentsRow:
    """One row of 2020年4月分途径预约情况统计 (appointments by booking platform)."""

    no: int
    platform: str
    appointments: int


@dataclass(frozen=True, slots=True)
class PrintedFigure:
    """One figure of a section printed as prose (the hotline, the remote platforms), with its words."""

    section: str
    """The hotline centre (南京12320) or the remote platform (consultation, ecg, lab, imaging)."""
    figure: str
    value: int
    printed_as: str


@dataclass(frozen=True, slots=True)
class ProvinceCallsRow:
    """One city of 4月全省12320 (calls per city's 12320 centre)."""

    city: str
    calls: int


@dataclass(frozen=True, slots=True)
class TopUploader:
    """One of a remote platform's three institutions with the most uploads in April."""

    platform: str
    rank: int
    unit: str
    value: int


@dataclass(frozen=True, slots=True)
class Bulletin:
    """All tables of the April 2020 bulletin."""

    districts: tuple[DistrictUploadRow, ...]
    hospitals: tuple[HospitalUploadRow, ...]
    kiosks: tuple[KioskUsageRow, ...]
    kiosk_printed_total: KioskTotals
    appointments: tuple[AppointmentRow, ...]
    appointments_printed_total: AppointmentRow
    appointments_to_date: int
    appointment_platforms: tuple[PlatformAppointmentsRow, ...]
    appointment_platforms_printed_total: int
    hotline: tuple[PrintedFigure, ...]
    province_calls: tuple[ProvinceCallsRow, ...]
    province_calls_printed_total: int
    remote: tuple[PrintedFigure, ...]
    top_uploaders: tuple[TopUploader, ...]

    def hotline_figure(self, figure: str) -> int:
        """A figure of the Nanjing hotline paragraph (KeyError if not printed)."""
        for row in self.hotline:
            if row.figure == figure:
                return row.value
        raise KeyError(figure)

    def remote_figures(self, platform: str) -> dict[str, int]:
        """The printed figures of one remote platform, by figure name."""
        return {row.figure: row.value for row in self.remote if row.section == platform}


@dataclass(frozen=True, slots=True)
class Finding:
    """Something in the bulletin as printed that does not add up."""

    table: str
    unit: str
    what: str


def _read(folder: Path, name: str, header: tuple[str, ...]) -> list[dict[str, str]]:
    path = folder / name
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != header:
                raise BulletinError(f"{path}: header {reader.fieldnames} is not {list(header)}")
            return list(reader)
    except OSError as exc:
        raise BulletinError(f"{path}: cannot read: {exc}") from exc


def _int(row: dict[str, str], key: str, where: str) -> int:
    text = row[key].strip()
    if not text.isdigit():
        raise BulletinError(f"{where}: {key}={row[key]!r} is not a non-negative integer")
    return int(text)


def _declared(row: dict[str, str], where: str) -> int | None:
    # An empty cell is the bulletin's 未反馈: the institution has declared nothing.
    if not row["declared_tables"].strip():
        return None
    return _int(row, "declared_tables", where)


def _money(row: dict[str, str], key: str, where: str) -> Decimal:
    text = row[key].strip()
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise BulletinError(f"{where}: {key}={text!r} is not a decimal amount") from exc
    exponent = value.as_tuple().exponent
    if value < 0 or not isinstance(exponent, int) or exponent < -2:
        raise BulletinError(f"{where}: {key}={text!r} is not an amount >= 0 with at most 2 decimals")
    return value.quantize(Decimal("0.01"))


def _unit(row: dict[str, str], where: str) -> str:
    unit = row["unit"].strip()
    if not unit:
        raise BulletinError(f"{where}: empty unit name")
    return unit


def load_bulletin(folder: Path = BULLETIN_DIR) -> Bulletin:
    """Parse the four bulletin CSV files of `folder` (the package's copy by default)."""
    districts = []
    for n, row in enumerate(_read(folder, DISTRICT_FILE, _DISTRICT_HEADER), start=2):
        where = f"{DISTRICT_FILE}:{n}"
        districts.append(
            DistrictUploadRow(
                unit=_unit(row, where),
                declared_tables=_declared(row, where),
                **{key: _int(row, key, where) for key in _DISTRICT_HEADER[2:]},
            )
        )
    hospitals = []
    for n, row in enumerate(_read(folder, HOSPITAL_FILE, _HOSPITAL_HEADER), start=2):
        where = f"{HOSPITAL_FILE}:{n}"
        hospitals.append(
            HospitalUploadRow(
                unit=_unit(row, where),
                declared_tables=_declared(row, where),
                required_tables=_int(row, "required_tables", where),
                document_types=_int(row, "col2", where),
                documents_uploaded=_int(row, "col3", where),
                uploaded_tables=_int(row, "col4", where),
                records_uploaded=_int(row, "col5", where),
                upload_days=_int(row, "col6", where),
            )
        )
    kiosks: list[KioskUsageRow] = []
    kiosk_total: KioskTotals | None = None
    for n, row in enumerate(_read(folder, KIOSK_FILE, _KIOSK_HEADER), start=2):
        where = f"{KIOSK_FILE}:{n}"
        values = KioskTotals(
            kiosks=_int(row, "kiosks", where),
            registrations=_int(row, "registrations", where),
            registration_amount=_money(row, "registration_amount_cny", where),
            payments=_int(row, "payments", where),
            payment_amount=_money(row, "payment_amount_cny", where),
        )
        group = row["group"]
        if group == "total":
            if kiosk_total is not None:
                raise BulletinError(f"{where}: a second total row")
            kiosk_total = values
            continue
        if group not in {"hospital", "district"}:
            raise BulletinError(f"{where}: group {group!r} is not hospital, district or total")
        kiosks.append(
            KioskUsageRow(
                group="hospital" if group == "hospital" else "district",
                unit=_unit(row, where),
                kiosks=values.kiosks,
                registrations=values.registrations,
                registration_amount=values.registration_amount,
                payments=values.payments,
                payment_amount=values.payment_amount,
            )
        )
    if kiosk_total is None:
        raise BulletinError(f"{KIOSK_FILE}: no total row")
    appointments: list[AppointmentRow] = []
    appointments_total: AppointmentRow | None = None
    for n, row in enumerate(_read(folder, APPOINTMENTS_FILE, _APPOINTMENTS_HEADER), start=2):
        where = f"{APPOINTMENTS_FILE}:{n}"
        # The printed 合计 row has no number; it is kept apart with no=0.
        is_total = not row["no"].strip()
        parsed = AppointmentRow(
            no=0 if is_total else _int(row, "no", where),
            unit=_unit(row, where),
            **{key: _int(row, key, where) for key in _APPOINTMENTS_HEADER[2:]},
        )
        if is_total:
            appointments_total = parsed
        else:
            appointments.append(parsed)
    if appointments_total is None:
        raise BulletinError(f"{APPOINTMENTS_FILE}: no total row")
    platforms, platforms_total = _appointment_platforms(folder)
    province, province_total = _province_calls(folder)
    return Bulletin(
        districts=tuple(districts),
        hospitals=tuple(hospitals),
        kiosks=tuple(kiosks),
        kiosk_printed_total=kiosk_total,
        appointments=tuple(appointments),
        appointments_printed_total=appointments_total,
        appointments_to_date=APPOINTMENTS_TO_DATE,
        appointment_platforms=platforms,
        appointment_platforms_printed_total=platforms_total,
        hotline=_figures(folder, HOTLINE_FILE, _HOTLINE_HEADER, "centre", frozenset({"南京12320"}), HOTLINE_FIGURES),
        province_calls=province,
        province_calls_printed_total=province_total,
        remote=_figures(
            folder,
            REMOTE_PLATFORMS_FILE,
            _REMOTE_PLATFORMS_HEADER,
            "platform",
            frozenset(REMOTE_PLATFORMS),
            REMOTE_FIGURES,
        ),
        top_uploaders=_top_uploaders(folder),
    )


def _appointment_platforms(folder: Path) -> tuple[tuple[PlatformAppointmentsRow, ...], int]:
    rows = _read(folder, APPOINTMENT_PLATFORMS_FILE, _APPOINTMENT_PLATFORMS_HEADER)
    parsed, total = [], None
    for n, row in enumerate(rows, start=2):
        where = f"{APPOINTMENT_PLATFORMS_FILE}:{n}"
        if not row["no"].strip():
            if total is not None or row["platform"].strip() != "合计":
                raise BulletinError(f"{where}: an unnumbered row that is not the one 合计 row")
            total = _int(row, "appointments", where)
            continue
        name = row["platform"].strip()
        if not name:
            raise BulletinError(f"{where}: empty platform name")
        parsed.append(PlatformAppointmentsRow(_int(row, "no", where), name, _int(row, "appointments", where)))
    if total is None:
        raise BulletinError(f"{APPOINTMENT_PLATFORMS_FILE}: no total row")
    return tuple(parsed), total


def _province_calls(folder: Path) -> tuple[tuple[ProvinceCallsRow, ...], int]:
    rows = _read(folder, HOTLINE_PROVINCE_FILE, _HOTLINE_PROVINCE_HEADER)
    parsed, total = [], None
    for n, row in enumerate(rows, start=2):
        where = f"{HOTLINE_PROVINCE_FILE}:{n}"
        city = row["city"].strip()
        if not city:
            raise BulletinError(f"{where}: empty city")
        if city == "合计":
            if total is not None:
                raise BulletinError(f"{where}: a second total row")
            total = _int(row, "calls", where)
        else:
            parsed.append(ProvinceCallsRow(city, _int(row, "calls", where)))
    if total is None:
        raise BulletinError(f"{HOTLINE_PROVINCE_FILE}: no total row")
    return tuple(parsed), total


def _figures(
    folder: Path,
    name: str,
    header: tuple[str, ...],
    section_column: str,
    sections: frozenset[str],
    figures: tuple[str, ...],
) -> tuple[PrintedFigure, ...]:
    parsed = []
    seen: set[tuple[str, str]] = set()
    for n, row in enumerate(_read(folder, name, header), start=2):
        where = f"{name}:{n}"
        section, figure = row[section_column].strip(), row["figure"].strip()
        if section not in sections:
            raise BulletinError(f"{where}: {section_column} {section!r} is not one of {sorted(sections)}")
        if figure not in figures:
            raise BulletinError(f"{where}: figure {figure!r} is not one of {list(figures)}")
        if (section, figure) in seen:
            raise BulletinError(f"{where}: {section} {figure} printed twice")
        seen.add((section, figure))
        printed_as = row["printed_as"].strip()
        value = _int(row, "value", where)
        # The words must carry the number: a transcription slip in either shows up here.
        if str(value) not in printed_as:
            raise BulletinError(f"{where}: value {value} is not in the printed words {printed_as!r}")
        parsed.append(PrintedFigure(section, figure, value, printed_as))
    return tuple(parsed)


def _top_uploaders(folder: Path) -> tuple[TopUploader, ...]:
    parsed = []
    for n, row in enumerate(_read(folder, REMOTE_TOP_UPLOADERS_FILE, _REMOTE_TOP_HEADER), start=2):
        where = f"{REMOTE_TOP_UPLOADERS_FILE}:{n}"
        platform = row["platform"].strip()
        if platform not in REMOTE_PLATFORMS:
            raise BulletinError(f"{where}: platform {platform!r} is not one of {list(REMOTE_PLATFORMS)}")
        parsed.append(TopUploader(platform, _int(row, "rank", where), _unit(row, where), _int(row, "value", where)))
    for platform in {t.platform for t in parsed}:
        ranks = [t.rank for t in parsed if t.platform == platform]
        if sorted(ranks) != list(range(1, len(ranks) + 1)):
            raise BulletinError(f"{REMOTE_TOP_UPLOADERS_FILE}: {platform} ranks {ranks} are not 1..n")
    return tuple(parsed)


def sum_kiosk_rows(rows: tuple[KioskUsageRow, ...] | list[KioskUsageRow]) -> KioskTotals:
    """Exact column sums of kiosk rows."""
    return KioskTotals(
        kiosks=sum(r.kiosks for r in rows),
        registrations=sum(r.registrations for r in rows),
        registration_amount=sum((r.registration_amount for r in rows), Decimal("0.00")),
        payments=sum(r.payments for r in rows),
        payment_amount=sum((r.payment_amount for r in rows), Decimal("0.00")),
    )


def check_bulletin(bulletin: Bulletin) -> list[Finding]:
    """Everything in the tables as printed that does not add up, table by table.

    These are the checks a platform computing the tables from events would make moot;
    `services/demo/README.md` says what the demo does about each.
    """
    findings: list[Finding] = []
    kiosk = "kiosk_usage"
    sums = sum_kiosk_rows(bulletin.kiosks)
    printed = bulletin.kiosk_printed_total
    for field in ("kiosks", "registrations", "registration_amount", "payments", "payment_amount"):
        computed, shown = getattr(sums, field), getattr(printed, field)
        if computed != shown:
            findings.append(Finding(kiosk, "合计", f"{field}: the rows add up to {computed}, printed {shown}"))
    # The platform's own data-quality checks (services/quality), run on the rows as printed.
    for row in bulletin.kiosks:
        for problem in amount_without_count(
            row.registrations, row.registration_amount, row.payments, row.payment_amount
        ):
            findings.append(Finding(kiosk, row.unit, f"{problem.check}: {problem.figure}"))
    compared = [
        Compared(r.unit, r.unit, {f: getattr(r, f) for f in UPLOAD_FIELDS if hasattr(r, f)}) for r in bulletin.districts
    ]
    for unit, problems in identical_figures(compared, UPLOAD_FIELDS, "district_uploads").items():
        findings += [
            Finding("district_uploads", unit, f"{p.check}: {p.figure}，{'；'.join(p.items)}") for p in problems
        ]
    for hospital in bulletin.hospitals:
        # Read as printed, col4 is the upload days and col3 the records uploaded.
        if hospital.uploaded_tables > DAYS_IN_MONTH:
            findings.append(
                Finding(
                    "hospital_uploads",
                    hospital.unit,
                    f"as printed: {hospital.uploaded_tables} upload days in a {DAYS_IN_MONTH}-day month"
                    f" (col4); consistent reading: {hospital.uploaded_tables} uploaded tables",
                )
            )
        if hospital.declared_tables is None:
            findings.append(Finding("hospital_uploads", hospital.unit, "未反馈: no declared tables"))
    for appt in bulletin.appointments:
        channels = appt.online_12320 + appt.phone + appt.in_clinic + appt.third_party
        if channels != appt.subtotal:
            findings.append(
                Finding("appointments", appt.unit, f"channels add up to {channels}, subtotal {appt.subtotal}")
            )
    findings.extend(_check_new_sections(bulletin))
    total = bulletin.appointments_printed_total
    for field in ("online_12320", "phone", "in_clinic", "third_party", "subtotal"):
        computed_total = sum(getattr(a, field) for a in bulletin.appointments)
        if computed_total != getattr(total, field):
            findings.append(
                Finding(
                    "appointments", "合计", f"{field}: rows add up to {computed_total}, printed {getattr(total, field)}"
                )
            )
    return findings


def _check_new_sections(bulletin: Bulletin) -> list[Finding]:
    """The ties between the appointment, hotline and remote-platform tables (NOTES.md)."""
    findings = []
    platforms = sum(r.appointments for r in bulletin.appointment_platforms)
    if platforms != bulletin.appointment_platforms_printed_total:
        findings.append(
            Finding(
                "appointment_platforms",
                "合计",
                f"rows add up to {platforms}, printed {bulletin.appointment_platforms_printed_total}",
            )
        )
    total = bulletin.appointments_printed_total
    if platforms > total.online_12320 + total.third_party:
        findings.append(
            Finding("appointment_platforms", "合计", f"{platforms} platform bookings exceed online + third party")
        )
    calls = bulletin.hotline_figure("calls")
    categories = sum(bulletin.hotline_figure(c) for c in HOTLINE_CALL_CATEGORIES)
    if categories != calls:
        findings.append(Finding("hotline", "南京12320", f"call categories add up to {categories}, calls {calls}"))
    if bulletin.hotline_figure("appointment") != total.phone:
        findings.append(
            Finding(
                "hotline",
                "南京12320",
                f"{bulletin.hotline_figure('appointment')} phone appointments, the appointments table {total.phone}",
            )
        )
    province = sum(r.calls for r in bulletin.province_calls)
    if province != bulletin.province_calls_printed_total:
        findings.append(
            Finding(
                "hotline_province",
                "合计",
                f"rows add up to {province}, printed {bulletin.province_calls_printed_total}",
            )
        )
    nanjing = next((r.calls for r in bulletin.province_calls if r.city == "南京"), None)
    if nanjing != calls:
        findings.append(Finding("hotline_province", "南京", f"{nanjing} calls, the hotline paragraph {calls}"))
    for platform in REMOTE_PLATFORMS:
        figures = bulletin.remote_figures(platform)
        parts = sum(figures.get(f, 0) for f in ("city_secondary_plus", "city_primary", "metro", "aided", "other"))
        if platform == "consultation" and parts != figures["connected"]:
            findings.append(
                Finding("remote_platforms", platform, f"kinds add up to {parts}, connected {figures['connected']}")
            )
        main = {"consultation": "consultations", "ecg": "cases", "lab": "reports", "imaging": "reports"}[platform]
        top = sum(t.value for t in bulletin.top_uploaders if t.platform == platform)
        if top > figures.get(main, top):
            findings.append(Finding("remote_top_uploaders", platform, f"top three {top} exceed the month's {main}"))
    return findings
