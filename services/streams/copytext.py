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

from datetime import UTC, datetime, timedelta

# Characters text COPY interprets; no value written by a line function may contain one.
COPY_SPECIAL = frozenset("\\\t\n\r")

# The widest offset PostgreSQL's timestamptz input reads.
_READABLE_OFFSET = timedelta(hours=15, minutes=59)


def timestamp_text(moment: datetime) -> str:
    """An aware datetime as PostgreSQL reads it back exactly: the same instant, to the microsecond.

    Written with its own offset when PostgreSQL can read it (whole minutes, at most ±15:59: every
    real time zone), in UTC otherwise (the contract admits offsets up to ±23:59); the instant
    is what is stored either way. Converting every timestamp to UTC cost ~0.4 µs per event.
    """
    offset = moment.utcoffset()
    if offset is not None and -_READABLE_OFFSET <= offset <= _READABLE_OFFSET and not offset.seconds % 60:
        return moment.isoformat()
    return moment.astimezone(UTC).isoformat()
