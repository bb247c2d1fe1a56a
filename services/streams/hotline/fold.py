"""Pure rollup arithmetic of hotline contacts: new events → deltas of `hotline_daily`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from services.streams.base import ConsumedEvent
from services.streams.hotline.model import HotlineContact
from services.streams.rollups import Deltas, RollupTable

HOTLINE_DAILY = RollupTable(
    "hotline_daily",
    (("org_code", "text"), ("day", "date"), ("kind", "text"), ("category", "text")),
    (("contacts", "bigint"),),
)
"""Per centre, day of occurred_at (platform zone), kind and category: contacts.

By day rather than by month: the report sums a month's days, and the bulletin's problem list
needs the days on which a centre was silent. A month is at most 31 x 8 rows per centre.
"""

ROLLUPS = (HOTLINE_DAILY,)


def fold(events: Sequence[ConsumedEvent[HotlineContact]], zone: tzinfo, into: Deltas) -> None:
    """Add new contacts, one per event, to their centre's day and category."""
    daily = into.rows(HOTLINE_DAILY)
    for consumed in events:
        event = consumed.event
        key = (event.org_code, event.occurred_at.astimezone(zone).date(), event.kind.value, event.category.value)
        row = daily.get(key)
        if row is None:
            daily[key] = [1]
        else:
            row[0] += 1
