"""The hotline stream: `POST /v1/hotline-contacts`, one call answered or one work order received.

model.py (the contract), checks.py (reference data: a 12320 centre), raw.py
(`hotline_contacts`), fold.py (`hotline_daily`), report.py (the hotline report).
"""

from __future__ import annotations

from datetime import datetime

from services.streams import base
from services.streams.hotline import checks, fold, raw
from services.streams.hotline.model import HotlineContact


def _moment(event: HotlineContact) -> datetime:
    return event.occurred_at


STREAM = base.Stream(
    name="hotline_contact",
    endpoint="hotline-contacts",
    model=HotlineContact,
    schema="hotline-contact.schema.json",
    batch_schema="hotline-batch.schema.json",
    summary="Post one 12320 hotline contact (a call or a work order) or a batch of up to 1,000",
    description=(
        '`202 {"accepted": N}` once all N contacts are acknowledged by the broker. `org_code` must be a '
        "12320 centre (an institution of kind `hotline`); `category` must be one of its `kind`'s."
    ),
    example={
        "event_id": "L3201:C20200401:00042",
        "org_code": "L3201",
        "kind": "call",
        "category": "appointment",
        "occurred_at": "2020-04-01T09:12:30+08:00",
    },
    moment=_moment,
    raw=raw.TABLE,
    rollups=fold.ROLLUPS,
    fold=fold.fold,
    reference_problems=checks.reference_problems,
)
