"""The uploads stream: `POST /v1/uploads`, a CDA document / data-table upload.

model.py (the contract), checks.py (reference data), raw.py (`upload_events`), fold.py (the
upload rollups), report.py (the uploads report and the missing-upload alert).
"""

from __future__ import annotations

from datetime import datetime

from services.streams import base
from services.streams.uploads import checks, fold, raw
from services.streams.uploads.model import UploadEvent


def _moment(event: UploadEvent) -> datetime:
    return event.uploaded_at


STREAM = base.Stream(
    name="upload",
    endpoint="uploads",
    model=UploadEvent,
    schema="upload-event.schema.json",
    batch_schema="upload-batch.schema.json",
    summary="Post one upload event or a batch of up to 1,000",
    description='`202 {"accepted": N}` once all N events are acknowledged by the broker.',
    example={
        "event_id": "2020-04-01:OPV:realtime:000123",
        "org_code": "D320115",
        "table_code": "T0001",
        "mode": "realtime",
        "business_date": "2020-04-01",
        "uploaded_at": "2020-04-01T10:15:00+08:00",
        "record_count": 42,
        "document_count": 3,
        "incomplete_records": 2,
        "nonconforming_records": 0,
        "unlinked_records": 1,
    },
    moment=_moment,
    raw=raw.TABLE,
    rollups=fold.ROLLUPS,
    fold=fold.fold,
    reference_problems=checks.reference_problems,
)
