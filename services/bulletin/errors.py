"""Errors of the bulletin package.

BulletinError
├── ChromiumNotFoundError   the headless browser is not installed (deploy/local/fonts.sh installs it)
└── ChromiumFailedError     Chromium exited with an error, timed out, or wrote no file (`retriable`)
"""

from __future__ import annotations


class BulletinError(Exception):
    """Root of the bulletin's own errors."""

    retriable = False


class ChromiumNotFoundError(BulletinError):
    """The Chromium binary named in the settings is not on this machine."""


class ChromiumFailedError(BulletinError):
    """Chromium did not produce the PDF or PNG.

    A timeout is `retriable` (the machine may just be busy); an exit with an error or a missing
    output file is not, since the same page and flags fail the same way again.
    """

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable
