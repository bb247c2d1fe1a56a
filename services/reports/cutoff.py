"""Which figures a report shows: live, a closed month's frozen ones, or those as of a time (`as_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum

from pydantic import TypeAdapter, ValidationError

from services.contract.models import Timestamp
from services.contract.validation import echo

CLOSED = "closed"
"""The `as_of` value asking for a closed month's frozen figures."""
_TIMESTAMP = TypeAdapter(Timestamp)
_TIME_FORM = "an RFC 3339 time with offset, e.g. 2020-05-01T00:00:00+08:00"


class CutoffKind(StrEnum):
    """The three answers a report can give."""

    LIVE = "live"
    CLOSED = "closed"
    AS_OF = "as_of"


@dataclass(frozen=True)
class Cutoff:
    """The figures shown, and the time they stand at (now, the month's cutoff, or the time asked)."""

    kind: CutoffKind
    at: datetime

    def label(self, zone: tzinfo) -> str:
        """How the bulletin names it, in the platform time zone."""
        shown = f"{self.at.astimezone(zone):%Y-%m-%d %H:%M:%S}"
        if self.kind is CutoffKind.CLOSED:
            return f"月结数据，截止 {shown}（closed at {shown}: the events received by the cutoff）"
        if self.kind is CutoffKind.AS_OF:
            return f"截至 {shown} 已接收的数据（as of {shown}: the events received by then）"
        return f"实时数据（live figures, {shown}）"


def parse_as_of(text: str) -> str | datetime:
    """`closed`, or an RFC 3339 time with offset (years 1900-9998); ValueError saying what is wrong."""
    if text == CLOSED:
        return CLOSED
    try:
        return _TIMESTAMP.validate_python(text)
    except ValidationError as exc:
        raise ValueError(f"as_of must be 'closed' or {_TIME_FORM}; got {echo(repr(text))}") from exc
