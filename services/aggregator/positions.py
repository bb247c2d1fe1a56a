"""Where to read a partition from when the stored offset is not in the broker's log.

The offset stored with the rows is the source of truth, but the log it points into can
change under it: a topic deleted and created again (offsets start at 0 again), a log
truncated by an unclean leader election, or records removed by retention before they were
applied. Kafka's own answer (`auto_offset_reset`) would either skip the new log's records
as "already applied" or jump silently. Instead the consumer reads from the log's start and
says so loudly: re-reading is safe because every event is counted once by its key.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class OutOfRangeReason(enum.StrEnum):
    """Why a stored offset is not in the log (the `reason` label of the metric)."""

    # The log ends before the stored offset: the topic was recreated or truncated. Records
    # already counted stay counted; the new log's records are read from its start.
    AHEAD_OF_LOG = "ahead_of_log"
    # The log starts after the stored offset: retention removed records never applied.
    # Those events are lost to the aggregator; an operator has to resend them.
    BEHIND_LOG_START = "behind_log_start"
    # The offset is inside the log after all (the broker's view moved between the fetch
    # and our question): read from it again.
    TRANSIENT = "transient"


@dataclass(frozen=True)
class PositionRecovery:
    """The offset to read from next, and why."""

    next_offset: int
    reason: OutOfRangeReason


def recover_position(fetch_offset: int, log_start: int, log_end: int) -> PositionRecovery:
    """Decide where to read after the broker said `fetch_offset` is out of range."""
    if fetch_offset > log_end:
        return PositionRecovery(log_start, OutOfRangeReason.AHEAD_OF_LOG)
    if fetch_offset < log_start:
        return PositionRecovery(log_start, OutOfRangeReason.BEHIND_LOG_START)
    return PositionRecovery(fetch_offset, OutOfRangeReason.TRANSIENT)
