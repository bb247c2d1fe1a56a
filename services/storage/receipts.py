"""Receipts: what became of one event, by its stream, org_code and event_id (contract Revision 2).

`counted` comes from the key store (the month the event counted in, when the collector received
its first copy, when the aggregator applied it), `dead_lettered` from the dead letters the
aggregator recorded (`dead_lettered_events`); a counted event wins over an earlier dead letter
of the same id (fixed and resent). Nothing found: not applied yet, never received, or its month
is archived (its key is gone with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.storage.connection import Connection
from services.storage.keys import event_key


@dataclass(frozen=True)
class Receipt:
    """The answer for one event."""

    status: str
    """`counted` or `dead_lettered`."""
    stream: str
    org_code: str
    event_id: str
    month: date | None = None
    received_at: datetime | None = None
    applied_at: datetime | None = None
    reason: str | None = None
    detail: str | None = None
    dead_lettered_at: datetime | None = None

    def as_dict(self, endpoint: str) -> dict[str, Any]:
        """JSON form: the fields of its status only."""

        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        out: dict[str, Any] = {
            "status": self.status,
            "endpoint": endpoint,
            "org_code": self.org_code,
            "event_id": self.event_id,
        }
        if self.status == "counted":
            assert self.month is not None
            out.update(month=f"{self.month:%Y-%m}", received_at=iso(self.received_at), applied_at=iso(self.applied_at))
        else:
            out.update(reason=self.reason, detail=self.detail, dead_lettered_at=iso(self.dead_lettered_at))
        return out


async def find_receipt(conn: Connection, stream: str, org_code: str, event_id: str) -> Receipt | None:
    """The receipt of one event, or None."""
    key = event_key(stream, org_code, event_id)
    row = await conn.fetchrow("SELECT month, received_at, applied_at FROM event_keys WHERE key = $1::uuid", key)
    if row is not None:
        return Receipt(
            "counted",
            stream,
            org_code,
            event_id,
            month=row["month"],
            received_at=row["received_at"],
            applied_at=row["applied_at"],
        )
    row = await conn.fetchrow(
        "SELECT reason, detail, dead_lettered_at FROM dead_lettered_events WHERE key = $1::uuid", key
    )
    if row is None:
        return None
    return Receipt(
        "dead_lettered",
        stream,
        org_code,
        event_id,
        reason=row["reason"],
        detail=row["detail"],
        dead_lettered_at=row["dead_lettered_at"],
    )
