"""Which month an event counts in, and whether that month is archived (pure; no I/O).

An event counts in the month of its stream's `moment` in the platform time zone. Once a month
is archived its dedupe keys are gone, so its events are refused: with 422 at the collector,
as a dead letter at the aggregator (contract Revision 2, "Closed months, restatements and
receipts"). Both ask an `ArchivedMonths` built from the `months` table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from services.contract.validation import FieldProblem
from services.streams.base import Stream

MONTH_ARCHIVED = "month archived"
"""The reason given for an event of an archived month (422 problem, dead letter, receipt)."""


def month_of(moment: datetime, zone: tzinfo) -> date:
    """First day of the month holding `moment` in the platform zone."""
    local = moment.astimezone(zone)
    return date(local.year, local.month, 1)


def next_month(month: date) -> date:
    """First day of the month after `month`."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_start(month: date, zone: tzinfo) -> datetime:
    """The instant `month` begins in the platform zone, in UTC."""
    return datetime(month.year, month.month, 1, tzinfo=zone).astimezone(UTC)


class MonthOf:
    """`month_of` for many events: the last month's bounds are kept, so the events of one
    month (a batch's usual case) cost two comparisons each instead of a zone conversion."""

    __slots__ = ("_end", "_month", "_start", "_zone")

    def __init__(self, zone: tzinfo) -> None:
        self._zone = zone
        self._start = self._end = datetime.max.replace(tzinfo=UTC)
        self._month = date.min

    def __call__(self, moment: datetime) -> date:
        """First day of the month holding `moment` in the platform zone."""
        if self._start <= moment < self._end:
            return self._month
        month = month_of(moment, self._zone)
        self._start, self._end = month_start(month, self._zone), month_start(next_month(month), self._zone)
        self._month = month
        return month


@dataclass(frozen=True)
class ArchivedMonths:
    """The archived months, and a cheap test of an event against them."""

    months: frozenset[date]
    zone: tzinfo
    _clear_from: datetime | None = field(init=False, repr=False, compare=False)
    """Every moment from this instant on falls after the last archived month (None: none archived)."""

    def __post_init__(self) -> None:
        clear = None
        if self.months:
            after = next_month(max(self.months))
            clear = datetime(after.year, after.month, 1, tzinfo=self.zone)
        object.__setattr__(self, "_clear_from", clear)

    @classmethod
    def of(cls, months: Iterable[date], zone: tzinfo) -> ArchivedMonths:
        """From any iterable of month starts."""
        return cls(frozenset(months), zone)

    def archived(self, moment: datetime) -> bool:
        """Whether `moment` falls in an archived month.

        One comparison for the usual event (newer than every archived month); the month is
        worked out only for the others.
        """
        clear = self._clear_from
        if clear is None or moment >= clear:
            return False
        return month_of(moment, self.zone) in self.months

    def problems(self, stream: Stream[Any], events: Sequence[Any]) -> list[FieldProblem]:
        """A 422 problem for each event of an archived month, at its moment field."""
        if self._clear_from is None:
            return []
        moment, archived = stream.moment, self.archived
        return [
            FieldProblem(index, stream.moment_field, MONTH_ARCHIVED)
            for index, event in enumerate(events)
            if archived(moment(event))
        ]
