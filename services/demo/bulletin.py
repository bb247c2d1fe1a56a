"""The April 2020 Nanjing bulletin tables, parsed into typed rows.

The CSV files in `data/bulletin-2020-04/` are the bulletin's four tables transcribed as
printed (see `services/demo/README.md`). This module reads them strictly: a header that
is not the transcribed one, or a cell that does not parse, is a `BulletinError`, because
every figure of the demo is derived from these cells.

The hospital upload table is printed with its columns shifted against its header; it
is read here in the consistent reading (`col2` document types, `col3` CDA documents,
`col4` uploaded tables, `col5` records uploaded, `col6` upload days). `check_bulletin`
lists what does not add up in the tables as printed.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from services.demo.errors import BulletinError

BULLETIN_DIR = Path(__file__).resolve().parent / "data" / "bulletin-2020-04"
DAYS_IN_MONTH = 30

DISTRICT_FILE = "district_uploads_2020-04.csv"
HOSPITAL_FILE = "hospital_uploads_2020-04.csv"
KIOSK_FILE = "kiosk_usage_2020-04.csv"
APPOINTMENTS_FILE = "appointments_2020-04.csv"

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
class Bulletin:
    """All four tables of the April 2020 bulletin."""

    districts: tuple[DistrictUploadRow, ...]
    hospitals: tuple[HospitalUploadRow, ...]
    kiosks: tuple[KioskUsageRow, ...]
    kiosk_printed_total: KioskTotals
    appointments: tuple[AppointmentRow, ...]
    appointments_printed_total: AppointmentRow


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
    return Bulletin(
        districts=tuple(districts),
        hospitals=tuple(hospitals),
        kiosks=tuple(kiosks),
        kiosk_printed_total=kiosk_total,
        appointments=tuple(appointments),
        appointments_printed_total=appointments_total,
    )


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
    for row in bulletin.kiosks:
        if row.registrations == 0 and row.registration_amount != 0:
            findings.append(Finding(kiosk, row.unit, f"0 registrations but {row.registration_amount} CNY of them"))
        if row.payments == 0 and row.payment_amount != 0:
            findings.append(Finding(kiosk, row.unit, f"0 payments but {row.payment_amount} CNY of them"))
    triples = Counter(
        (r.ehr_basic_cumulative, r.ehr_hypertension_cumulative, r.ehr_diabetes_cumulative) for r in bulletin.districts
    )
    for district in bulletin.districts:
        triple = (district.ehr_basic_cumulative, district.ehr_hypertension_cumulative, district.ehr_diabetes_cumulative)
        if triples[triple] > 1:
            findings.append(
                Finding(
                    "district_uploads",
                    district.unit,
                    "cumulative health records {} / {} / {} identical to another district's".format(*triple),
                )
            )
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
