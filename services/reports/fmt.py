"""How the bulletin writes numbers, money, rates and days (shared by the tables, charts and problems)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

_CENT = Decimal("0.01")


def integer(value: int) -> str:
    """A count with thousands separators: 7,563,186."""
    return f"{value:,}"


def amount(value: Decimal) -> str:
    """CNY with thousands separators and exactly two decimals, from the exact Decimal (never a float)."""
    return f"{value.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"


def rate(value: float | None) -> str:
    """A rate as a percentage with two decimals, or an em dash when there is none."""
    if value is None:
        return "—"
    # Through Decimal(str()) so 0.955 prints 95.50%, not the binary float's 95.49%.
    percent = (Decimal(str(value)) * 100).quantize(_CENT, rounding=ROUND_HALF_UP)
    return f"{percent}%"


def declared(declared_tables: int | None, required_tables: int) -> str:
    """The bulletin's 申明上传表/规定上传表 cell: `52/129`, or `未反馈/83` when nothing is declared."""
    return f"{'未反馈' if declared_tables is None else declared_tables}/{required_tables}"


def chart_label(name: str) -> str:
    """A name as a chart's label: charts have a fixed label column; the full name is in the table beside."""
    return name if len(name) <= 12 else name[:11] + "…"


def day_ranges(days: Iterable[date]) -> list[str]:
    """Consecutive days folded into ranges: `4月1日–11日（11天）`, `4月20日`."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return [_run_text(first, last) for first, last in runs]


def _run_text(first: date, last: date) -> str:
    count = (last - first).days + 1
    if count == 1:
        return f"{first.month}月{first.day}日"
    end = f"{last.day}日" if first.month == last.month else f"{last.month}月{last.day}日"
    return f"{first.month}月{first.day}日–{end}（{count}天）"
