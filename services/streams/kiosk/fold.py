"""Pure rollup arithmetic of kiosk transactions: new events → deltas of `kiosk_monthly`."""

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

ROLLUPS = (KIOSK_MONTHLY,)

# Sums start at 0.00, so a month's amount has at least two fraction digits ("12.50", not "12.5")
# wherever it is read: the rollup row, the report, the CSV.
_ZERO = Decimal("0.00")


def fold(events: Sequence[ConsumedEvent[KioskTransaction]], zone: tzinfo, into: Deltas) -> None:
    """Add new kiosk transactions; amounts stay exact Decimals."""
    monthly = into.rows(KIOSK_MONTHLY)
    for consumed in events:
        event = consumed.event
        key = (event.org_code, event.occurred_at.astimezone(zone).date().replace(day=1), event.kind.value)
        row = monthly.get(key)
        if row is None:
            monthly[key] = [1, _ZERO + event.amount]
        else:
            row[0] += 1
            row[1] += event.amount
