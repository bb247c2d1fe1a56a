"""Aggregator errors.

AggregatorError
├── DeadLetterError     a record or event that cannot be applied; goes to the dead-letter topic
└── MonthArchivedError  a batch holds events of a month archived since they were checked (retry)
"""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of the aggregator's own errors."""


class DeadLetterError(AggregatorError):
    """Why a record or one of its events cannot be applied (`reason` is a small fixed set)."""

    def __init__(self, reason: str, detail: str, event_type: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.event_type = event_type


class MonthArchivedError(AggregatorError):
    """A month of the batch was archived after the consumer checked its events: nothing was
    applied; reload the archived months and take the batch again (its events of those months
    become dead letters)."""

    retriable = True

    def __init__(self, months: list[str]) -> None:
        super().__init__(f"months archived meanwhile: {', '.join(months)}")
        self.months = months
