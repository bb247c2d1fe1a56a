"""The uploads stream's contract: `POST /v1/uploads` events and the rows of their reports."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.contract.models import Code, ContractDate, ContractEvent, Count, InstitutionKind, Timestamp


class Mode(StrEnum):
    """Upload channel: pushed as it happens, or the periodic (nightly) batch."""

    REALTIME = "realtime"
    SCHEDULED = "scheduled"


class UploadEvent(ContractEvent):
    """`POST /v1/uploads`: one CDA document / table upload."""

    table_code: Code
    mode: Mode
    business_date: ContractDate
    uploaded_at: Timestamp
    record_count: Count
    document_count: Count = 0
    incomplete_records: Count = 0
    """Records missing required items (完整性, 缺项少项); at most `record_count` (Revision 2)."""
    nonconforming_records: Count = 0
    """Records whose codes or formats break the standard (规范性); at most `record_count`."""
    unlinked_records: Count = 0
    """Records not linked to their patient or parent record (关联性); at most `record_count`."""

    @field_validator("incomplete_records", "nonconforming_records", "unlinked_records")
    @classmethod
    def _at_most_the_records(cls, value: int, info: ValidationInfo) -> int:
        # A rule across fields that JSON Schema cannot state (schemas/ says so in prose): a field
        # validator, so the 422 names the quality count. `record_count` comes first in field
        # order; when it is itself invalid, only its own problem is reported.
        records = info.data.get("record_count")
        if records is not None and value > records:
            raise ValueError(f"must be at most record_count ({records}), got {value}")
        return value


class UploadReportRow(BaseModel):
    """One institution's row of `GET /v1/reports/uploads`."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    kind: InstitutionKind
    month: str
    records_uploaded: int
    documents_uploaded: int
    upload_days: int
    uploaded_tables: int
    declared_tables: int | None
    required_tables: int
    table_coverage_rate: float | None
    declared_coverage_rate: float | None
    outpatient_visits: int
    discharges: int
    ehr_basic_cumulative: int
    ehr_hypertension_cumulative: int
    ehr_diabetes_cumulative: int
    conformance_rate: float | None
    completeness_rate: float | None = None
    """1 − Σ incomplete_records / records_uploaded (null without records)."""
    conformity_rate: float | None = None
    """1 − Σ nonconforming_records / records_uploaded (null without records)."""
    linkage_rate: float | None = None
    """1 − Σ unlinked_records / records_uploaded (null without records)."""
    continuity_rate: float | None = None
    """upload_days / days in the month (null without records)."""
    expected_slots: int = 0
    """Per channel: expected tables (declared, or required when none are) × business days of the month."""
    reporting_rate_realtime: float | None = None
    """Filled realtime slots / expected slots (DHIS2's reporting rate); null without expected slots."""
    on_time_rate_realtime: float | None = None
    """Realtime slots filled on their business day / expected slots."""
    reporting_rate_scheduled: float | None = None
    """Filled scheduled slots / expected slots."""
    on_time_rate_scheduled: float | None = None
    """Scheduled slots filled by the deadline (06:00 of the next day) / expected slots."""
    scheduled_lag_p50_hours: float | None = None
    """Median hours from the end of the business day to a scheduled slot's first records (nearest rank)."""
    scheduled_lag_p90_hours: float | None = None
    """90th percentile of the same."""


class MissingUploadRow(BaseModel):
    """One institution of `GET /v1/alerts/missing-uploads`."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    kind: InstitutionKind
    date: dt.date
    last_upload_day: dt.date
    active_days_in_previous_7: int
