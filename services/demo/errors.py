"""Errors of the demo package.

DemoError
├── BulletinError     a bulletin CSV does not have the shape it was transcribed in
├── PlanError         the demo plan cannot reproduce the bulletin (a bug in the demo data)
└── ReplayError       the collector refused a batch, or kept refusing it (`retriable`)
"""

from __future__ import annotations


class DemoError(Exception):
    """Root of the demo package's own errors."""

    retriable = False


class BulletinError(DemoError):
    """A bulletin CSV is missing, has unexpected columns, or a cell that does not parse."""


class PlanError(DemoError):
    """The generated month would not reproduce the bulletin; raised while planning, never later."""


class ReplayError(DemoError):
    """The collector answered a batch with an error, or kept answering 429/503 past the bound.

    `status` is the HTTP status (None when no response came back at all), `detail` the
    response's `detail`, `retriable` whether trying again later may succeed.
    """

    def __init__(self, message: str, *, status: int | None, detail: str, retriable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.retriable = retriable
