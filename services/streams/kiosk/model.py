"""The kiosk stream's contract: `POST /v1/kiosk-transactions` events and the rows of their report."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.contract.models import Amount, Code, ContractEvent, Timestamp


class KioskKind(StrEnum):
    """Kind of kiosk transaction."""

    REGISTRATION = "registration"
    PAYMENT = "payment"


class KioskTransaction(ContractEvent):
    """`POST /v1/kiosk-transactions`: one self-service kiosk transaction."""

    kiosk_id: Code
    kind: KioskKind
    amount: Amount
    occurred_at: Timestamp


class KioskReportRow(BaseModel):
    """One row of `GET /v1/reports/kiosks`; the total row has group `total`."""

    model_config = ConfigDict(frozen=True)

    group: Literal["hospital", "district", "total"]
    org_code: str | None
    name: str
    kiosks: int
    registrations: int
    registration_amount: Decimal
    payments: int
    payment_amount: Decimal
