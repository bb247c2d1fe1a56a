"""Where the aggregator reads from when its stored offset is not in the broker's log."""

from __future__ import annotations

import pytest

from services.aggregator.positions import OutOfRangeReason, PositionRecovery, recover_position


@pytest.mark.parametrize(
    ("fetch_offset", "log_start", "log_end", "expected"),
    [
        # A recreated topic: stored 500, the new log holds 0..19.
        (500, 0, 20, PositionRecovery(0, OutOfRangeReason.AHEAD_OF_LOG)),
        # A recreated topic that is still empty.
        (1, 0, 0, PositionRecovery(0, OutOfRangeReason.AHEAD_OF_LOG)),
        # Retention removed 100..199 before they were applied.
        (100, 200, 300, PositionRecovery(200, OutOfRangeReason.BEHIND_LOG_START)),
        # Inside the log after all (the log moved between the fetch and the question).
        (250, 200, 300, PositionRecovery(250, OutOfRangeReason.TRANSIENT)),
        # At the very end is a valid position (nothing new yet), not "ahead".
        (300, 200, 300, PositionRecovery(300, OutOfRangeReason.TRANSIENT)),
    ],
)
def test_recover_position(fetch_offset: int, log_start: int, log_end: int, expected: PositionRecovery) -> None:
    assert recover_position(fetch_offset, log_start, log_end) == expected
