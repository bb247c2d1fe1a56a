"""Collector errors raised below the HTTP edge (routes map them to ApiError).

CollectorError
└── PublishUnavailableError   the broker did not acknowledge in time (retriable)
"""

from __future__ import annotations


class CollectorError(Exception):
    """Root of the collector's own errors."""

    retriable = False


class PublishUnavailableError(CollectorError):
    """Events could not be made durable now; the client retries with the same event_ids."""

    retriable = True

    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
