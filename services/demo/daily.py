"""Write the events of many count series one day at a time, in arrival order.

The streams of revision 2 (appointments, hotline contacts, remote uploads) are counts: so
many bookings of one hospital on one channel each day, so many reports of one institution.
A `Series` says how many events of one kind an institution has on each day of April and
how they spread over the hours; its `build` function writes a day's events (the stream's
wire shape). `timed_events` then writes every series day by day, adds re-sent duplicates
(seconds or days later) and the fixed events the stream gives whole (`Edge`s: the month's
first and last second and the seconds just outside it), and yields `(arrival, item)` in
arrival order. Only one day's events (and the few that arrive later) are held at a time.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.demo.clock import APR1, APR30, DAY, LOCAL_OFFSET, MAR31, MAY1, at, clock_texts, date_text, stamp

Event = dict[str, Any]
Item = tuple[str, Event]
"""(stream kind, event body)."""
TimedItem = tuple[int, Item]
"""(arrival in Shanghai seconds, item)."""

Builder = Callable[["Series", Sequence[str], int, int], list[Event]]
"""(series, the day's timestamps, date ordinal, index of the day's first event in the month) -> events."""

# The month's edges: (Shanghai second, offset in minutes, inside April). The first and the last
# second of April, and the seconds just outside it, each written in +08:00 and in another
# offset, so that only a reading in the platform's time zone gets them all right.
EDGES: tuple[tuple[int, int, bool], ...] = (
    (at(MAR31, DAY - 1), LOCAL_OFFSET, False),  # 2020-03-31T23:59:59+08:00
    (at(MAR31, DAY - 1), 0, False),  # 2020-03-31T15:59:59Z
    (at(APR1, 0), 0, True),  # 2020-03-31T16:00:00Z is 1 April in Shanghai
    (at(APR1, 0), LOCAL_OFFSET, True),  # 2020-04-01T00:00:00+08:00
    (at(APR30, DAY - 1), -240, True),  # 2020-04-30T11:59:59-04:00 is still 30 April
    (at(APR30, DAY - 1), LOCAL_OFFSET, True),  # 2020-04-30T23:59:59+08:00
    (at(MAY1, 0), LOCAL_OFFSET, False),  # 2020-05-01T00:00:00+08:00
    (at(MAY1, 0), -240, False),  # 2020-04-30T12:00:00-04:00 is 1 May in Shanghai
)


@dataclass(frozen=True, slots=True)
class Series:
    """How many events of one kind one institution has on each day of April, and how to write them."""

    kind: str
    key: str
    """Unique in its stream: seeds the series' randomness."""
    org_code: str
    daily: tuple[int, ...]
    """Events per day, index 0 = 1 April."""
    hours: tuple[float, ...]
    """Relative weights of the 24 hours of a day."""
    build: Builder
    fields: Mapping[str, Any]
    """What the builder needs besides the times (the stream decides)."""
    clock: int = LOCAL_OFFSET
    """Offset its system writes, minutes east of UTC."""
    duplicate_share: float = 0.0
    """Share of events sent again, identical: seconds later (a retry) or days later (a re-sent batch)."""

    @property
    def total(self) -> int:
        """Events of April (duplicates not counted)."""
        return sum(self.daily)


def stamps_of(seconds: Sequence[int], ordinal: int, clock: int) -> list[str]:
    """RFC 3339 texts of seconds of one day, in the series' offset (UTC written `Z`)."""
    if clock == LOCAL_OFFSET:
        texts = clock_texts()
        prefix = f"{date_text(ordinal)}T"
        return [f"{prefix}{texts[s]}+08:00" for s in seconds]
    day_start = at(ordinal, 0)
    written = [stamp(day_start + s, clock) for s in seconds]
    return [w.removesuffix("+00:00") + "Z" if clock == 0 else w for w in written]


def edge_stamp(local_seconds: int, clock: int) -> str:
    """One RFC 3339 text of an edge second (UTC written `Z`)."""
    text = stamp(local_seconds, clock)
    return text.removesuffix("+00:00") + "Z" if clock == 0 else text


@dataclass(frozen=True, slots=True)
class Edge:
    """An event given whole at a fixed time (the month's edges), counted by its series if inside April."""

    arrival: int
    item: Item


def with_edges(series: Series, make: Callable[[str, int], Event]) -> tuple[Series, list[Edge]]:
    """The month's edges for one series: four events inside April (taken from its first and
    last day, so its April total stays) and four just outside it. `make(timestamp, n)` writes
    the n-th edge event of the series."""
    inside = [e for e in EDGES if e[2]]
    first, last = len([e for e in inside if e[0] < at(APR30, 0)]), len([e for e in inside if e[0] >= at(APR30, 0)])
    daily = list(series.daily)
    if daily[0] < first or daily[-1] < last:
        raise ValueError(f"{series.key}: too few events on 1 or 30 April for the month's edges")
    daily[0] -= first
    daily[-1] -= last
    edges = [
        Edge(local + 1 + n, (series.kind, make(edge_stamp(local, clock), n)))
        for n, (local, clock, _) in enumerate(EDGES)
    ]
    return replace(series, daily=tuple(daily)), edges


def _write_day(series: Series, ordinal: int, first_index: int) -> tuple[list[int], list[Item], list[TimedItem]]:
    """One series' events of one day: (arrivals, items) that arrive that day, and those that arrive later."""
    count = series.daily[ordinal - APR1]
    rng = random.Random(f"{series.key}:{ordinal}")  # noqa: S311 - reproducible demo data, no secret
    rnd = rng.random
    hours = rng.choices(range(0, DAY, 3_600), weights=series.hours, k=count)
    seconds = sorted([h + int(rnd() * 3_600) for h in hours])
    events = series.build(series, stamps_of(seconds, ordinal, series.clock), ordinal, first_index)
    day_start = at(ordinal, 0)
    arrivals = [day_start + s + 1 + int(rnd() * 20) for s in seconds]
    kind = series.kind
    items: list[Item] = [(kind, e) for e in events]
    later: list[TimedItem] = []
    resend = _resend_rng(series, ordinal)
    for i in sorted(resend.sample(range(count), _copies(series, count, resend))):
        delay = 1 + int(resend.random() * 29) if resend.random() < 0.8 else resend.randint(1, 3) * DAY + 600
        later.append((arrivals[i] + delay, (kind, dict(events[i]))))
    day_end = day_start + DAY
    if arrivals and arrivals[-1] >= day_end:
        # A few seconds after 23:59:5x: they arrive the next day.
        later.extend((a, item) for a, item in zip(arrivals, items, strict=True) if a >= day_end)
        kept = [(a, item) for a, item in zip(arrivals, items, strict=True) if a < day_end]
        arrivals, items = [a for a, _ in kept], [item for _, item in kept]
    return arrivals, items, later


def timed_events(series: Sequence[Series], edges: Sequence[Edge]) -> Iterator[TimedItem]:
    """Every event of the series and the edges, as (arrival, item), in arrival order."""
    ties = itertools.count()
    pending: list[tuple[int, int, Item]] = [(e.arrival, next(ties), e.item) for e in edges]
    heapq.heapify(pending)
    written = dict.fromkeys((s.key for s in series), 0)
    for ordinal in range(MAR31, MAY1 + 1):
        arrivals: list[int] = []
        items: list[Item] = []
        if APR1 <= ordinal <= APR30:
            for s in series:
                if not s.daily[ordinal - APR1]:
                    continue
                day_arrivals, day_items, later = _write_day(s, ordinal, written[s.key])
                written[s.key] += s.daily[ordinal - APR1]
                arrivals += day_arrivals
                items += day_items
                for arrival, item in later:
                    heapq.heappush(pending, (arrival, next(ties), item))
        yield from flush_day(pending, arrivals, items, at(ordinal + 1, 0))
    yield from flush_day(pending, [], [], None)


def flush_day(
    pending: list[tuple[int, int, Any]], arrivals: list[int], items: list[Any], day_end: int | None
) -> Iterator[tuple[int, Any]]:
    """A day's items and the pending ones that have arrived by `day_end` (all, if None), in arrival order.

    `pending` is a heap of (arrival, tie, item): the tie keeps equal arrivals in the order
    they were pushed and never lets two items be compared.
    """
    while pending and (day_end is None or pending[0][0] < day_end):
        arrival, _, item = heapq.heappop(pending)
        arrivals.append(arrival)
        items.append(item)
    for i in sorted(range(len(items)), key=arrivals.__getitem__):
        yield arrivals[i], items[i]


def _resend_rng(series: Series, ordinal: int) -> random.Random:
    # Its own generator, so that the duplicates can be counted without writing the events.
    return random.Random(f"{series.key}:{ordinal}:resend")  # noqa: S311 - reproducible demo data, no secret


def _copies(series: Series, count: int, resend: random.Random) -> int:
    return min(count, int(count * series.duplicate_share + resend.random()))


def duplicates_of(series: Sequence[Series]) -> int:
    """How many re-sent copies `timed_events` writes for these series."""
    return sum(
        _copies(s, s.daily[ordinal - APR1], _resend_rng(s, ordinal))
        for s in series
        for ordinal in range(APR1, APR30 + 1)
        if s.daily[ordinal - APR1]
    )


@dataclass(frozen=True)
class CountStreamPlan:
    """One stream of revision 2, decided: its series and its edges; `timed()` writes it."""

    kind: str
    series: tuple[Series, ...]
    edges: tuple[Edge, ...]

    def timed(self) -> Iterator[TimedItem]:
        """(arrival, item) in arrival order."""
        return timed_events(self.series, self.edges)

    @property
    def duplicate_events(self) -> int:
        """Re-sent copies among the events written (each counts once)."""
        return duplicates_of(self.series)

    @property
    def total_events(self) -> int:
        """Every event `timed()` writes: the series, their duplicates and the edges."""
        return sum(s.total for s in self.series) + self.duplicate_events + len(self.edges)
