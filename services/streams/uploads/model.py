"""The uploads stream's contract: `POST /v1/uploads` events and the rows of their reports."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

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


class MissingUploadRow(BaseModel):
    """One institution of `GET /v1/alerts/missing-uploads`."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    kind: InstitutionKind
    date: dt.date
    last_upload_day: dt.date
    active_days_in_previous_7: int
