"""Errors of the storage layer.

StorageError
├── MigrationError          a migration was edited after being applied, or failed
├── ReferenceDataError      a reference set refers to unknown institutions/tables (422)
├── TimeZoneMismatchError   the database's rollups were built in another time zone
├── TokenNotFoundError      revoke of a token id that does not exist (404)
├── MonthNotFoundError      no event has counted in that month (404)
├── MonthStateError         a month not in the state the operation needs (409)
└── SnapshotNotFoundError   a closed month has no frozen report for that reader (404)
"""

from __future__ import annotations

from dataclasses import dataclass, field


class StorageError(Exception):
    """Root of the storage errors."""


class MigrationError(StorageError):
    """A migration cannot be applied."""


@dataclass
class ReferenceDataError(StorageError):
    """A reference load that would leave dangling references; nothing was changed."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "; ".join(self.problems[:20])
        more = f" (+{len(self.problems) - 20} more)" if len(self.problems) > 20 else ""
        return f"reference data refused: {shown}{more}"


class TimeZoneMismatchError(StorageError):
    """The rollups were built in another platform time zone than the one configured."""


class TokenNotFoundError(StorageError):
    """No token has that id."""


class MonthNotFoundError(StorageError):
    """No event has counted in that month yet (it has no `months` row)."""


class MonthStateError(StorageError):
    """The month is not in the state the operation needs (e.g. archiving an open month)."""


class SnapshotNotFoundError(StorageError):
    """A closed month has no frozen report for that reader (an institution added after the close)."""
