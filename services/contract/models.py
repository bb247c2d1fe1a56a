"""The shared pieces of the contract: field types, the event base, reference data (v1 and revision 2).

Each stream's own event model and report rows live in its folder (`services/streams/<stream>/
model.py`), built from the field types here. `schemas/` holds the same contract as JSON
Schema; tests/unit/test_contract.py and tests/unit/test_streams.py check that the two accept
and refuse the same documents.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
MAX_COUNT = 10_000_000
MAX_BALANCE = 2**63 - 1

_CODE_PATTERN = r"^[A-Za-z0-9._:-]+$"
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TIMESTAMP_RE = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_AMOUNT_RE = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$")
_MONTH_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")


def _require_date_text(value: Any) -> Any:
    # pydantic would also take datetimes and numbers; the contract says YYYY-MM-DD.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


def _require_timestamp_text(value: Any) -> Any:
    # Refuses unix numbers and timestamps without offset, which pydantic's lax mode accepts.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with offset, e.g. 2020-04-01T08:30:00+08:00")
    return value


def _parse_amount(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError('must be a decimal string such as "12.50", never a JSON number')
    if not _AMOUNT_RE.fullmatch(text):
        raise ValueError('must be a decimal string >= 0 with at most 2 fraction digits, e.g. "12.50"')
    return Decimal(text)


def _json_integer(value: Any) -> Any:
    # JSON Schema's "integer" is any number without a fraction (1.0 and 1e3 too); JSON itself
    # does not tell 1 from 1.0. Booleans and strings stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _parse_month(value: Any) -> Any:
    # A month is written YYYY-MM and stands for its first day.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.replace(day=1)
    if not isinstance(value, str) or not _MONTH_RE.fullmatch(value):
        raise ValueError("must be a month written YYYY-MM")
    year, month = int(value[:4]), int(value[5:])
    if year < 1:
        raise ValueError("must be a month written YYYY-MM, from year 0001")
    return date(year, month, 1)


def _require_year_range(value: datetime) -> datetime:
    # Years 1 and 9999 parse but cannot be shifted into every time zone.
    if not 1900 <= value.year <= 9998:
        raise ValueError("year out of range 1900-9998")
    return value


EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_CODE_PATTERN)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_CODE_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Count = Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=MAX_COUNT, strict=True)]
ContractDate = Annotated[date, BeforeValidator(_require_date_text)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_require_timestamp_text), AfterValidator(_require_year_range)]
Amount = Annotated[Decimal, BeforeValidator(_parse_amount)]
PlaceName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(max_length=200)]
ContractMonth = Annotated[date, BeforeValidator(_parse_month)]
# A count of everything before a month: any non-negative integer PostgreSQL's bigint holds.
Balance = Annotated[int, BeforeValidator(_json_integer), Field(ge=0, le=MAX_BALANCE, strict=True)]


class InstitutionKind(StrEnum):
    """Kind of institution: its role towards the platform's reports (docs/contract-decisions.md).

    `district` and `hospital` are the institutions of the upload and kiosk reports; `hotline`
    a 12320 hotline centre (revision 2); `other` any other institution the platform knows
    (one connected to a remote-medicine platform, say), which no v1 report lists.
    """

    DISTRICT = "district"
    HOSPITAL = "hospital"
    HOTLINE = "hotline"
    OTHER = "other"


class InstitutionLevel(StrEnum):
    """Level of a medical institution (revision 2): 三级, 二级, 社区卫生服务中心, or none of them."""

    TERTIARY = "tertiary"
    SECONDARY = "secondary"
    PRIMARY = "primary"
    OTHER = "other"


class Region(StrEnum):
    """Where an institution is, seen from the city (revision 2); an empty region is `city`."""

    CITY = "city"
    METRO = "metro"
    AIDED = "aided"
    OTHER = "other"


class RemotePlatform(StrEnum):
    """The four remote-medicine platforms (revision 2)."""

    CONSULTATION = "consultation"
    ECG = "ecg"
    LAB = "lab"
    IMAGING = "imaging"


class BalanceMetric(StrEnum):
    """Cumulative figures that start from an opening balance (revision 2)."""

    APPOINTMENTS = "appointments"
    REMOTE_CONSULTATIONS = "remote_consultations"


class TableCategory(StrEnum):
    """Category of a table, which decides the metric it feeds."""

    OUTPATIENT_VISIT = "outpatient_visit"
    DISCHARGE = "discharge"
    EHR_BASIC = "ehr_basic"
    EHR_HYPERTENSION = "ehr_hypertension"
    EHR_DIABETES = "ehr_diabetes"
    OTHER = "other"


class RequiredFor(StrEnum):
    """Which kind of institution must upload a table."""

    DISTRICT = "district"
    HOSPITAL = "hospital"
    BOTH = "both"
    NONE = "none"


_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class ContractEvent(BaseModel):
    """What every ingest event has: its id, unique per institution, and its institution.

    Each stream's model (`services/streams/<stream>/model.py`) adds its own fields; these two
    come first, as in every schema of `schemas/`.
    """

    model_config = _STRICT

    event_id: EventId
    org_code: Code


class InstitutionRow(BaseModel):
    """Row of institutions.csv; the four attributes of revision 2 are optional (None = unknown)."""

    model_config = _STRICT

    org_code: Code
    name: Name
    kind: InstitutionKind
    level: InstitutionLevel | None = None
    region: Region | None = None
    city: PlaceName | None = None
    district: PlaceName | None = None


class TableRow(BaseModel):
    """Row of tables.csv."""

    model_config = _STRICT

    table_code: Code
    name: Name
    category: TableCategory
    required_for: RequiredFor


class DeclarationRow(BaseModel):
    """Row of declarations.csv."""

    model_config = _STRICT

    org_code: Code
    table_code: Code


class KioskRow(BaseModel):
    """Row of kiosks.csv."""

    model_config = _STRICT

    kiosk_id: Code
    org_code: Code


class PlatformConnectionRow(BaseModel):
    """Row of platform_connections.csv: connected from `connected_on`, up to (not on) `disconnected_on`."""

    model_config = _STRICT

    platform: RemotePlatform
    org_code: Code
    connected_on: ContractDate
    disconnected_on: ContractDate | None = None


class BookingPlatformRow(BaseModel):
    """Row of booking_platforms.csv."""

    model_config = _STRICT

    platform_code: Code
    name: Name


class OpeningBalanceRow(BaseModel):
    """Row of opening_balances.csv: `value` is everything before the month `as_of` (its first day)."""

    model_config = _STRICT

    metric: BalanceMetric
    as_of: ContractMonth
    value: Balance


class NoUploadDayRow(BaseModel):
    """Row of no_upload_days.csv: a day on which no upload is expected."""

    model_config = _STRICT

    date: ContractDate
    reason: Reason = ""


class ReferenceSet(BaseModel):
    """Body of `PUT /v1/admin/reference`; the CSV folder has the same files.

    The four arrays of revision 2 are optional, so a v1 body (and a folder of the four v1
    files) is still a complete reference set.
    """

    model_config = _STRICT

    institutions: list[InstitutionRow]
    tables: list[TableRow]
    declarations: list[DeclarationRow]
    kiosks: list[KioskRow]
    platform_connections: list[PlatformConnectionRow] = Field(default_factory=list)
    booking_platforms: list[BookingPlatformRow] = Field(default_factory=list)
    opening_balances: list[OpeningBalanceRow] = Field(default_factory=list)
    no_upload_days: list[NoUploadDayRow] = Field(default_factory=list)
