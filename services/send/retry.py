"""How long to wait before posting the same events again (shared with the demo's replay)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime

FIRST_BACKOFF_S = 0.25


def retry_delay(retry_after: str | None, attempt: int, cap: float) -> float:
    """Seconds before attempt `attempt + 1`: `Retry-After` (seconds or an HTTP date) if the answer had
    one, else 0.25 s doubled per attempt; never below 0 nor above `cap`."""
    delay: float | None = None
    if retry_after:
        try:
            delay = float(retry_after)
        except ValueError:
            try:
                delay = (email.utils.parsedate_to_datetime(retry_after) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                delay = None
    if delay is None:
        delay = FIRST_BACKOFF_S * 2**attempt
    return min(max(delay, 0.0), cap)
