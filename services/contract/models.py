"""The shared pieces of the contract: field types, the event base, reference data.

Each stream's own event model and report rows live in its folder (`services/streams/<stream>/
model.py`), built from the field types here. `schemas/` holds the same contract as JSON
Schema; tests/unit/test_contract.py and tests/unit/test_streams.py check that the two accept
and refuse the same documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    StringConstraints,
)
from pydantic_core import core_schema

MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 1024 * 1024
MAX_COUNT = 10_000_000

_CODE_PATTERN = r"^[A-Za-z0-9._:-]+$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"
_DATE_RE = re.compile(_DATE_PATTERN)
_TIMESTAMP_RE = re.compile(_TIMESTAMP_PATTERN)
_AMOUNT_RE = re.compile(_AMOUNT_PATTERN)

_DATE_TEXT = "must be a date written YYYY-MM-DD"
_TIMESTAMP_TEXT = "must be an RFC 3339 timestamp with offset, e.g. 2020-04-01T08:30:00+08:00"
_AMOUNT_TYPE = 'must be a decimal string such as "12.50", never a JSON number'
_AMOUNT_TEXT = 'must be a decimal string >= 0 with at most 2 fraction digits, e.g. "12.50"'


def _require_date_text(value: Any) -> Any:
    # pydantic would also take datetimes and numbers; the contract says YYYY-MM-DD.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise ValueError(_DATE_TEXT)
    return value


def _require_timestamp_text(value: Any) -> Any:
    # Refuses unix numbers and timestamps without offset, which pydantic's lax mode accepts.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
        raise ValueError(_TIMESTAMP_TEXT)
    return value


def _parse_amount(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        raise ValueError(_AMOUNT_TYPE)
    if not _AMOUNT_RE.fullmatch(text):
        raise ValueError(_AMOUNT_TEXT)
    return Decimal(text)


def _fast_path(
    *steps: tuple[core_schema.CoreSchema, Callable[[Any], Any], str | None],
) -> Callable[[Any, GetCoreSchemaHandler], core_schema.CoreSchema]:
    """`BeforeValidator(fallback)` for each step, with its common case checked inside pydantic-core.

    A value the step's `fast` core schema accepts goes straight on (to the next step, then to
    the field's own validation); anything else is handed to `fallback` in Python, as before.
    With a message, a value both refuse is one error with that text: what `fallback` says for
    every value it refuses at that step. Without one, `fallback` accepts every value and the
    field's own validation refuses. Calling a Python validator with a Python regex for every
    event's every timestamp, date, count and amount was ~40 % of the collector's validation CPU.
    """

    def schema(source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        chain: list[core_schema.CoreSchema] = []
        for fast, fallback, message in steps:
            step: core_schema.CoreSchema = core_schema.union_schema(
                [fast, core_schema.no_info_plain_validator_function(fallback)], mode="left_to_right"
            )
            if message is not None:
                step = core_schema.custom_error_schema(step, "contract_form", custom_error_message=message)
            chain.append(step)
        return core_schema.chain_schema([*chain, handler(source)])

    return schema


def _text(pattern: str) -> core_schema.CoreSchema:
    return core_schema.str_schema(pattern=pattern, strict=True)


def _amount_type(value: Any) -> Any:
    if not isinstance(value, str | Decimal):
        raise ValueError(_AMOUNT_TYPE)
    return value


def _json_integer(value: Any) -> Any:
    # JSON Schema's "integer" is any number without a fraction (1.0 and 1e3 too); JSON itself
    # does not tell 1 from 1.0. Booleans and strings stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _require_year_range(value: datetime) -> datetime:
    # Years 1 and 9999 parse but cannot be shifted into every time zone.
    if not 1900 <= value.year <= 9998:
        raise ValueError("year out of range 1900-9998")
    return value


EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_CODE_PATTERN)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_CODE_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# `_fast_path` of each check: the same values accepted and the same problems reported as a
# BeforeValidator of the function (tests/unit/test_contract.py compares the two).
Count = Annotated[
    int,
    Field(ge=0, le=MAX_COUNT, strict=True),
    GetPydanticSchema(_fast_path((core_schema.int_schema(strict=True), _json_integer, None))),
]
ContractDate = Annotated[date, GetPydanticSchema(_fast_path((_text(_DATE_PATTERN), _require_date_text, _DATE_TEXT)))]
Timestamp = Annotated[
    AwareDatetime,
    GetPydanticSchema(_fast_path((_text(_TIMESTAMP_PATTERN), _require_timestamp_text, _TIMESTAMP_TEXT))),
    AfterValidator(_require_year_range),
]
# Two steps, as `_parse_amount` has two answers: not a string at all, then not an amount's form.
Amount = Annotated[
    Decimal,
    GetPydanticSchema(
        _fast_path(
            (core_schema.str_schema(strict=True), _amount_type, _AMOUNT_TYPE),
            (_text(_AMOUNT_PATTERN), _parse_amount, _AMOUNT_TEXT),
        )
    ),
]


class InstitutionKind(StrEnum):
    """Kind of institution."""

    DISTRICT = "district"
    HOSPITAL = "hospital"


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
    """Row of institutions.csv."""

    model_config = _STRICT

    org_code: Code
    name: Name
    kind: InstitutionKind


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


class ReferenceSet(BaseModel):
    """Body of `PUT /v1/admin/reference`; the CSV folder has the same four files."""

    model_config = _STRICT

    institutions: list[InstitutionRow]
    tables: list[TableRow]
    declarations: list[DeclarationRow]
    kiosks: list[KioskRow]
