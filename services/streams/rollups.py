"""Rollup tables as declared values, and the deltas a batch adds to them.

A stream declares its rollup tables (`RollupTable`: key columns, value columns, how a delta
merges into the stored row) and its fold writes into a `Deltas`: per table, one mutable list
of values per key, created on a key's first event and added to in place after that (no object
per event). The store upserts every table's rows with one statement built from the
declaration, so the SQL is written once for every stream.

Only events whose (stream, org_code, event_id) was new are folded, so adding a delta twice
can only happen if a batch is applied twice, which the stored consumer offsets prevent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum
from functools import cached_property
from typing import Any, TypeAlias

Key: TypeAlias = tuple[Any, ...]
Rows: TypeAlias = dict[Key, list[Any]]


class Merge(StrEnum):
    """How a delta's values combine with the row already stored under the same key."""

    ADD = "add"
    """Sums: `count = count + excluded.count` (only new events are folded, so this counts once)."""
    GREATEST = "greatest"
    """Latest seen: `last = greatest(last, excluded.last)`."""
    LEAST = "least"
    """First seen: `first = least(first, excluded.first)`."""


@dataclass(frozen=True)
class RollupTable:
    """A rollup table: one row per `keys`, whose `values` are merged by `merge`."""

    name: str
    keys: tuple[tuple[str, str], ...]
    """(column, PostgreSQL type), the table's primary key."""
    values: tuple[tuple[str, str], ...]
    merge: Merge = Merge.ADD

    @cached_property
    def upsert_sql(self) -> str:
        """Upsert of one delta per key, from one array parameter per column."""
        columns = self.keys + self.values
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"${n}::{pg_type}[]" for n, (_, pg_type) in enumerate(columns, start=1))
        if self.merge is Merge.ADD:
            updates = ", ".join(f"{name} = {self.name}.{name} + excluded.{name}" for name, _ in self.values)
        else:
            function = self.merge.value  # greatest or least
            updates = ", ".join(f"{name} = {function}({self.name}.{name}, excluded.{name})" for name, _ in self.values)
        conflict = ", ".join(name for name, _ in self.keys)
        return (
            f"INSERT INTO {self.name} ({names}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
        )

    def columns(self, rows: Rows) -> list[list[Any]]:
        """The upsert's parameters: one list per column, rows sorted by key.

        Sorted so that concurrent transactions lock rollup rows in the same order.
        """
        ordered = sorted(rows.items())
        return [list(column) for column in zip(*((*key, *values) for key, values in ordered), strict=True)]

    def merged(self, stored: list[Any], delta: list[Any]) -> list[Any]:
        """`stored` and `delta` combined as the upsert combines them (for in-memory folds)."""
        if self.merge is Merge.ADD:
            return [a + b for a, b in zip(stored, delta, strict=True)]
        if self.merge is Merge.LEAST:
            return [min(a, b) for a, b in zip(stored, delta, strict=True)]
        return [max(a, b) for a, b in zip(stored, delta, strict=True)]


class Deltas:
    """What a batch of new events adds to each rollup table: table name → key → values."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: dict[str, Rows] = {}

    def rows(self, table: RollupTable) -> Rows:
        """The rows of `table`, to add to in place (a fold takes these once per call, not per event)."""
        return self.tables.setdefault(table.name, {})

    def add(self, other: Deltas, tables: Iterable[RollupTable]) -> None:
        """Merge `other` into these deltas, table by table, by each table's rule."""
        for table in tables:
            theirs = other.tables.get(table.name)
            if not theirs:
                continue
            mine = self.rows(table)
            for key, values in theirs.items():
                stored = mine.get(key)
                mine[key] = list(values) if stored is None else table.merged(stored, values)


def local_day(moment: datetime, zone: tzinfo) -> date:
    """The calendar day of `moment` in the platform time zone."""
    return moment.astimezone(zone).date()


def month_of(day: date) -> date:
    """First day of the month holding `day` (months are keyed by their first day)."""
    return day.replace(day=1)
