"""The remote-upload stream: `POST /v1/remote-uploads`, one upload to a remote-medicine platform.

model.py (the contract), raw.py (`remote_upload_events`), fold.py (`remote_upload_daily`),
report.py (`GET /v1/reports/remote-platforms` and the uploads from institutions not connected).
Nothing is checked against reference data beyond the institution (which every stream checks):
an upload from an institution not connected that day is counted, and listed as a problem.
"""

from __future__ import annotations

from datetime import datetime

from services.streams import base
from services.streams.remote_uploads import fold, raw
from services.streams.remote_uploads.model import RemoteUpload


def _moment(event: RemoteUpload) -> datetime:
    return event.uploaded_at


STREAM = base.Stream(
    name="remote_upload",
    endpoint="remote-uploads",
    model=RemoteUpload,
    schema="remote-upload.schema.json",
    batch_schema="remote-upload-batch.schema.json",
    summary="Post one upload to a remote-medicine platform or a batch of up to 1,000",
    description=(
        "One ECG case, lab report or specimen, imaging report (with its images) or consultation, "
        "as counts by the platform's own keys. An upload from an institution not connected to the "
        'platform that day is counted and listed as a problem. `202 {"accepted": N}` once all N '
        "events are acknowledged by the broker."
    ),
    example={
        "event_id": "D320105:RI2020040100001",
        "org_code": "D320105",
        "platform": "imaging",
        "uploaded_at": "2020-04-01T09:12:30+08:00",
        "counts": {"reports": 1, "images": 128},
    },
    moment=_moment,
    raw=raw.TABLE,
    rollups=fold.ROLLUPS,
    fold=fold.fold,
)
