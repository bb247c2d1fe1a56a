"""Pure rollup arithmetic of kiosk transactions: new events → deltas of `kiosk_monthly` and `kiosk_daily`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from decimal import Decimal

from services.streams.base import ConsumedEvent
from services.streams.kiosk.model import KioskTransaction
from services.streams.rollups import Deltas, RollupTable

KIOSK_MONTHLY = RollupTable(
    "kiosk_monthly",
    (("org_code", "text"), ("month", "date"), ("kind", "text")),
    (("transactions", "bigint"), ("amount", "numeric")),
)
"""Per institution, month of occurred_at and kind: transactions and their exact amount."""

KIOSK_DAILY = RollupTable(
    "kiosk_daily",
    (("org_code", "text"), ("kiosk_id", "text"), ("day", "date")),
    (("transactions", "bigint"),),
)
"""Per kiosk and day of occurred_at: transactions (a kiosk that falls silent, the `flatline` check)."""

ROLLUPS = (KIOSK_MONTHLY, KIOSK_DAILY)

# Sums start at 0.00, so a month's amount has at least two fraction digits ("12.50", not "12.5")
# wherever it is read: the rollup row, the report, the CSV.
_ZERO = Decimal("0.00")


def fold(events: Sequence[ConsumedEvent[KioskTransaction]], zone: tzinfo, into: Deltas) -> None:
    """Add new kiosk transactions; amounts stay exact Decimals."""
    monthly, daily = into.rows(KIOSK_MONTHLY), into.rows(KIOSK_DAILY)
    for consumed in events:
        event = consumed.event
        day = event.occurred_at.astimezone(zone).date()
        key: tuple[object, ...] = (event.org_code, day.replace(day=1), event.kind.value)
        row = monthly.get(key)
        if row is None:
            monthly[key] = [1, _ZERO + event.amount]
        else:
            row[0] += 1
            row[1] += event.amount
        key = (event.org_code, event.kiosk_id, day)
        row = daily.get(key)
        if row is None:
            daily[key] = [1]
        else:
            row[0] += 1
