"""The kiosk stream: `POST /v1/kiosk-transactions`, a self-service kiosk transaction.

model.py (the contract), checks.py (reference data), raw.py (`kiosk_transactions`), fold.py
(`kiosk_monthly`), report.py (the kiosk report).
"""

from __future__ import annotations

from datetime import datetime

from services.streams import base
from services.streams.kiosk import checks, fold, raw
from services.streams.kiosk.model import KioskTransaction


def _moment(event: KioskTransaction) -> datetime:
    return event.occurred_at


STREAM = base.Stream(
    name="kiosk",
    endpoint="kiosk-transactions",
    model=KioskTransaction,
    schema="kiosk-transaction.schema.json",
    batch_schema="kiosk-batch.schema.json",
    summary="Post one kiosk transaction or a batch of up to 1,000",
    description='`202 {"accepted": N}` once all N transactions are acknowledged by the broker.',
    example={
        "event_id": "K0001:20200401:000042",
        "org_code": "H320101",
        "kiosk_id": "K0001",
        "kind": "payment",
        "amount": "12.50",
        "occurred_at": "2020-04-01T08:30:00+08:00",
    },
    moment=_moment,
    raw=raw.TABLE,
    rollups=fold.ROLLUPS,
    fold=fold.fold,
    reference_problems=checks.reference_problems,
)
