"""What `telemetry send` carries around: an event read from a file, and an event refused.

An event keeps the line it came from, so a refusal can point the integrator at it, and its
JSON as it is sent, so a retry resends exactly the same bytes (the same `event_id`s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import orjson

# The `error` of a refusal made here, before sending (the collector's codes are its own).
UNREADABLE = "unreadable"
TOO_LARGE = "too_large"


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event of an input file."""

    line: int
    """Line of the file where the event starts, counting every line (1 is the first; a CSV header counts)."""
    body: bytes
    """The event as one JSON object, as it is posted: a JSON line's own bytes, or a CSV row encoded."""


class Problem(NamedTuple):
    """Why an event was refused: the field (or `(event)`, `(request)`) and the reason."""

    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """An event (or a line that is not one) that was not accepted; one line of `FILE.refused.jsonl`."""

    line: int
    status: int | None
    """The collector's HTTP status; None when refused here, before sending."""
    error: str
    """The collector's error code (`invalid_events`, `payload_too_large`, ...), or `unreadable` / `too_large`."""
    problems: tuple[Problem, ...]
    event: bytes | None = None
    """The event's JSON as it was sent; None when the line could not be read as an event."""
    text: str | None = None
    """The line itself, when it could not be read as an event."""

    def record(self) -> bytes:
        """One JSON line: line, status, error, problems, then the event as it was sent (byte for byte)."""
        head = orjson.dumps(
            {
                "line": self.line,
                "status": self.status,
                "error": self.error,
                "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
            }
        )
        if self.event is not None:
            # Spliced in, not parsed and written again: the event stays exactly as sent.
            return head[:-1] + b',"event":' + self.event + b"}\n"
        return head[:-1] + b',"text":' + orjson.dumps(self.text) + b"}\n"
