"""The demo month's clock: Shanghai wall-clock seconds, RFC 3339 stamps, exact apportioning.

All internal times of the generators are seconds of Asia/Shanghai wall-clock time since
2020-01-01 00:00. Shanghai has had a fixed +08:00 offset since 1991, so this is exact; a
time is written with any other offset by `stamp`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cache

MONTH_FIRST = date(2020, 4, 1)
MONTH_LAST = date(2020, 4, 30)
MONTH = "2020-04"

DAY = 86_400
EPOCH = date(2020, 1, 1).toordinal()
LOCAL_OFFSET = 480  # minutes east of UTC
APR1 = MONTH_FIRST.toordinal()
APR30 = MONTH_LAST.toordinal()
MAR31 = APR1 - 1
MAY1 = APR30 + 1

_HOLIDAYS = frozenset({date(2020, 4, 4), date(2020, 4, 5), date(2020, 4, 6), date(2020, 5, 1)})
_WORKING_WEEKENDS = frozenset({date(2020, 4, 26)})  # made up for the May Day holiday


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` into non-negative parts proportional to integer `weights`, exactly.

    Largest remainder, ties to the lower index; a zero weight always gets zero.
    """
    weight_sum = sum(weights)
    if total == 0:
        return [0] * len(weights)
    if total < 0 or weight_sum <= 0 or any(w < 0 for w in weights):
        raise ValueError(f"cannot apportion {total} over weights summing to {weight_sum}")
    products = [total * w for w in weights]
    parts = [p // weight_sum for p in products]
    remainders = [p % weight_sum for p in products]
    short = total - sum(parts)
    # Exact integer arithmetic: `short` < the number of non-zero remainders. A reversed
    # sort is still stable, so equal remainders go to the lower index first.
    for i in sorted(range(len(weights)), key=remainders.__getitem__, reverse=True)[:short]:
        parts[i] += 1
    return parts


def int_weight(value: float) -> int:
    """A weight scaled to an integer, so that apportioning is exact arithmetic."""
    return max(1, int(value * 1_000_000))


@cache
def clock_texts() -> tuple[str, ...]:
    """`HH:MM:SS` of every second of a day, by second of the day."""
    return tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


@cache
def date_text(ordinal: int) -> str:
    """`YYYY-MM-DD` of a date ordinal."""
    return date.fromordinal(ordinal).isoformat()


@cache
def offset_text(minutes: int) -> str:
    """`+hh:mm` of an offset in minutes east of UTC."""
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def stamp(local_seconds: int, offset_minutes: int = LOCAL_OFFSET) -> str:
    """RFC 3339 text of a Shanghai wall-clock time, written with the given UTC offset."""
    days, sod = divmod(local_seconds + (offset_minutes - LOCAL_OFFSET) * 60, DAY)
    return f"{date_text(EPOCH + days)}T{clock_texts()[sod]}{offset_text(offset_minutes)}"


def at(ordinal: int, second_of_day: int) -> int:
    """Shanghai seconds of a second of a day."""
    return (ordinal - EPOCH) * DAY + second_of_day


def day_of(local_seconds: int) -> int:
    """The date ordinal (Shanghai) of a time."""
    return EPOCH + local_seconds // DAY


def day_factor(day: date, clinical: bool) -> float:
    """Relative volume of a day: holidays and weekends are quieter, April rises after the epidemic."""
    if day in _HOLIDAYS:
        factor = 0.4 if clinical else 0.1
    elif day.weekday() >= 5 and day not in _WORKING_WEEKENDS:
        factor = (0.55 if day.weekday() == 5 else 0.45) if clinical else 0.15
    else:
        factor = 1.0
    # Hospitals were recovering from the epidemic's low: volumes rise through April.
    return factor * (0.9 + 0.2 * (day.toordinal() - APR1) / 29)
