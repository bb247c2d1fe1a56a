"""What the collector checks of an upload beyond the contract: its table is known."""

from __future__ import annotations

from collections.abc import Sequence

from services.storage.reference import ReferenceSnapshot
from services.streams.uploads.model import UploadEvent


def reference_problems(event: UploadEvent, ref: ReferenceSnapshot) -> Sequence[tuple[str, str]]:
    """(field, reason) of an upload whose table the reference data does not know."""
    if event.table_code not in ref.tables:
        return (("table_code", f"unknown table {event.table_code!r}"),)
    return ()
