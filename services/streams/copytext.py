"""Rows of the raw event tables as PostgreSQL COPY text, the part every stream shares.

asyncpg's binary COPY (`copy_records_to_table`) encodes every value in its own codec call
(timestamptz, numeric and text): measured at ~9 µs of the aggregator's CPU per kiosk event,
the largest single cost of applying a batch. One formatted line per event (each stream's
`raw.py`) costs a fraction of that, and PostgreSQL parses the text form at about the same
cost as the binary one.

Text COPY gives a meaning to backslash, tab, newline and carriage return. The contract's code
and event_id pattern (`services.contract.models._CODE_PATTERN`) admits none of them, and every
other column is a number, a date, a timestamp or an enum value written by a stream's line
function, so no value needs escaping; tests/unit/test_copyrows.py fails if the pattern ever
admits one, and tests/unit/test_streams.py checks every stream's line.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Characters text COPY interprets; no value written by a line function may contain one.
COPY_SPECIAL = frozenset("\\\t\n\r")


def timestamp_text(moment: datetime) -> str:
    """An aware datetime as PostgreSQL reads it back exactly: the same instant, to the microsecond.

    Written in UTC: the contract admits any offset up to ±23:59, PostgreSQL's timestamptz input
    only up to ±15:59, and the instant is what is stored either way.
    """
    return moment.astimezone(UTC).isoformat()
