"""The calendar heatmap of an institution's month: one calendar per channel, pure SVG (no script).

Weeks are rows and weekdays (Monday first) columns, as on a wall calendar. A day's shade is one of
`LEVELS`, from its records against the month's busiest day of either channel, so the two
calendars share one scale and can be compared at a glance; every day carries its number, drawn
in the ink its shade calls for, and a `<title>` with its figure (read by screen readers and shown
on hover). The figures are also in the table below the calendars: the shades carry none of their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from services.quality.problems import MonthSpan
from services.reports import fmt


@dataclass(frozen=True, slots=True)
class Level:
    """One shade of the scale: its fill and the ink of the day number drawn on it."""

    fill: str
    ink: str


INK, PAPER = "#1f2933", "#ffffff"
LEVELS = (
    Level("#e4e8ec", INK),
    Level("#d4e6f5", INK),
    Level("#9ec5e6", INK),
    Level("#2f6690", PAPER),
    Level("#173f5f", PAPER),
)
"""No records, then four quarters of the busiest day; every ink/fill pair has a contrast above 4.5:1."""
PENDING = Level(PAPER, INK)
"""A day not over yet (in the platform time zone): not counted as a day without records."""
WEEKDAYS = ("一", "二", "三", "四", "五", "六", "日")

_CELL, _GAP, _TOP = 36, 4, 22
FONT = "'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','WenQuanYi Micro Hei',sans-serif"


def level(value: int, busiest: int) -> Level:
    """The shade of a day with `value` records when the busiest day has `busiest`."""
    if value <= 0 or busiest <= 0:
        return LEVELS[0]
    return LEVELS[min(4, math.ceil(4 * value / busiest))]


def calendar_svg(title: str, span: MonthSpan, values: Mapping[date, int], busiest: int) -> Markup:
    """One channel's calendar of `span`'s month; `title` names it for screen readers."""
    first_column = span.first.weekday()
    weeks = math.ceil((first_column + span.days_in_month) / 7)
    width = 7 * _CELL + 6 * _GAP
    height = _TOP + weeks * _CELL + (weeks - 1) * _GAP
    ended = set(span.ended)
    body: list[str] = []
    for column, name in enumerate(WEEKDAYS):
        x = column * (_CELL + _GAP) + _CELL / 2
        body.append(f'<text x="{x:.0f}" y="14" text-anchor="middle" fill="{INK}" aria-hidden="true">{name}</text>')
    for n, day in enumerate(span.days):
        slot = first_column + n
        x, y = (slot % 7) * (_CELL + _GAP), _TOP + (slot // 7) * (_CELL + _GAP)
        value = values.get(day, 0)
        shade = level(value, busiest) if day in ended or value > 0 else PENDING
        what = f"{day.month}月{day.day}日：{fmt.integer(value)} 条" + ("" if day in ended else "（未过完）")
        border = f' stroke="{INK}" stroke-dasharray="3 2"' if shade is PENDING else ""
        body.append(
            f'<g class="day"><title>{escape(what)}</title>'
            f'<rect x="{x}" y="{y}" width="{_CELL}" height="{_CELL}" rx="3" fill="{shade.fill}"{border}/>'
            f'<text x="{x + _CELL / 2:.0f}" y="{y + _CELL / 2 + 5:.0f}" text-anchor="middle" fill="{shade.ink}">'
            f"{day.day}</text></g>"
        )
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="heatmap" role="img" aria-label="{escape(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="13">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text piece is escaped above


def legend(busiest: int) -> Sequence[tuple[Level, str]]:
    """The scale's shades with the record counts each stands for this month."""
    if busiest <= 0:
        return [(LEVELS[0], "0")]
    out = [(LEVELS[0], "0")]
    for k in range(1, 5):
        low = math.floor(busiest * (k - 1) / 4) + 1
        high = math.floor(busiest * k / 4)
        if high >= low:
            out.append((LEVELS[k], fmt.integer(low) if low == high else f"{fmt.integer(low)}–{fmt.integer(high)}"))
    return out
