"""Errors of `telemetry send` that stop it before anything is posted.

SendError
└── SourceError     a file cannot be read as events of one stream: missing, unknown format,
                    a CSV header that names a column twice, or a stream that cannot be told

Refusals of single events or batches are not errors: they are counted and written beside
the input (`outcome.Refused`).
"""

from __future__ import annotations


class SendError(Exception):
    """Root of `telemetry send`'s own errors."""

    retriable = False


class SourceError(SendError):
    """An input file cannot be sent as it is; the message names the file and what to change."""
