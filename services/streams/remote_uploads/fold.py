"""Pure rollup arithmetic of remote uploads: new events → deltas of `remote_upload_daily`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from services.streams.base import ConsumedEvent
from services.streams.remote_uploads.model import COUNT_KEYS, RemoteUpload
from services.streams.rollups import Deltas, RollupTable

REMOTE_UPLOAD_DAILY = RollupTable(
    "remote_upload_daily",
    (("org_code", "text"), ("platform", "text"), ("day", "date")),
    (("uploads", "bigint"), *((key, "bigint") for key in COUNT_KEYS)),
)
"""Per institution, platform and day of uploaded_at: uploads (events) and the sum of each count key.

By day, not by month: whether an institution was connected is a question about a day, asked
of the reference data when the report is read (the fold reads nothing but events), and the
month's figures are the sums of its days.
"""

ROLLUPS = (REMOTE_UPLOAD_DAILY,)

# Value position of each count key in a row: uploads first, then COUNT_KEYS.
_POSITION = {key: n for n, key in enumerate(COUNT_KEYS, start=1)}


def fold(events: Sequence[ConsumedEvent[RemoteUpload]], zone: tzinfo, into: Deltas) -> None:
    """Add new remote uploads: one more upload and its counts on its day (platform time zone)."""
    daily = into.rows(REMOTE_UPLOAD_DAILY)
    position = _POSITION
    for consumed in events:
        event = consumed.event
        key = (event.org_code, event.platform.value, event.uploaded_at.astimezone(zone).date())
        row = daily.get(key)
        if row is None:
            row = daily[key] = [0, 0, 0, 0, 0, 0]
        row[0] += 1
        for name, value in event.counts.items():
            row[position[name]] += value
