"""The `remote_upload_events` hypertable: one COPY text line per new upload, and a stored row back to its event."""

from __future__ import annotations

from typing import Any

import orjson

from services.contract.models import RemotePlatform
from services.streams.base import ORIGIN_COLUMNS, RawTable, Row
from services.streams.copytext import timestamp_text
from services.streams.remote_uploads.model import RemoteUpload

COLUMNS = ("uploaded_at", "org_code", "event_id", "platform", "counts", *ORIGIN_COLUMNS)


def line(event: RemoteUpload, received_at: str, partition: int, offset: int) -> str:
    """One `remote_upload_events` row in COLUMNS order; `received_at` is already timestamp_text.

    `counts` is stored as it arrived, a jsonb object: its keys are the contract's five words and
    its values integers, so its JSON text holds nothing text COPY would interpret.
    """
    return (
        f"{timestamp_text(event.uploaded_at)}\t{event.org_code}\t{event.event_id}\t{event.platform.value}\t"
        f"{orjson.dumps(event.counts).decode()}\t{received_at}\t{partition}\t{offset}\n"
    )


def event_of_row(row: Row) -> RemoteUpload:
    """The upload a stored row was written from."""
    counts: Any = row["counts"]
    # asyncpg hands jsonb over as its text unless a codec is set; a dict is taken as it is.
    if isinstance(counts, str | bytes):
        counts = orjson.loads(counts)
    # model_construct: these rows were validated before they were stored.
    return RemoteUpload.model_construct(
        event_id=row["event_id"],
        org_code=row["org_code"],
        platform=RemotePlatform(row["platform"]),
        uploaded_at=row["uploaded_at"],
        counts=counts,
    )


TABLE = RawTable("remote_upload_events", COLUMNS, line, event_of_row)
