"""The calendar heatmap (pure): readable shades, a legend that matches them, days under their weekday."""

from __future__ import annotations

import calendar
import itertools
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.pages.heatmap import LEVELS, PENDING, Level, calendar_svg, legend, level
from services.quality.problems import month_span
from tests.fixtures.pages import contrast_ratio, hex_rgb, luminance
from tests.unit.bulletin.page import parse

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("shade", [*LEVELS, PENDING])
def test_every_day_number_is_readable_on_its_shade(shade: Level) -> None:
    assert contrast_ratio(hex_rgb(shade.fill), hex_rgb(shade.ink)) >= 4.5, shade


def test_shades_darken_with_the_records() -> None:
    shades = [luminance(hex_rgb(s.fill)) for s in LEVELS]
    assert shades == sorted(shades, reverse=True)


@pytest.mark.parametrize("busiest", [1, 2, 3, 4, 7, 40, 1000, 12345])
def test_the_legend_names_the_records_of_each_shade(busiest: int) -> None:
    entries = legend(busiest)
    ranges = []
    for shade, text in entries[1:]:
        bounds = [int(n.replace(",", "")) for n in re.findall(r"[\d,]+", text)]
        ranges.append((bounds[0], bounds[-1], shade.fill))
    # The ranges cover 1..busiest once each, in order, and each value has its range's shade.
    assert ranges[0][0] == 1 and ranges[-1][1] == busiest
    for (_, high, _), (low, _, _) in itertools.pairwise(ranges):
        assert low == high + 1
    for value in {1, busiest, (busiest + 1) // 2, max(1, busiest // 4), max(1, busiest // 4 + 1)}:
        fill = next(f for low, high, f in ranges if low <= value <= high)
        assert level(value, busiest).fill == fill, (value, busiest)
    assert entries[0][1] == "0" and level(0, busiest) is LEVELS[0]


def test_each_day_sits_under_its_weekday() -> None:
    first = date(2020, 4, 1)
    span = month_span(first, datetime(2020, 4, 15, 12, tzinfo=SHANGHAI), SHANGHAI)
    svg = parse(str(calendar_svg("四月", span, {date(2020, 4, 10): 7}, 7)))
    headers = {t.text(): float(t.attrs["x"]) for t in svg.iter("text") if t.attrs.get("aria-hidden") == "true"}
    days = svg.iter("g")
    assert len(days) == calendar.monthrange(2020, 4)[1]
    names = "一二三四五六日"
    for n, group in enumerate(days, start=1):
        rect = group.iter("rect")[0]
        centre = float(rect.attrs["x"]) + float(rect.attrs["width"]) / 2
        assert centre == headers[names[date(2020, 4, n).weekday()]], n
        title = group.iter("title")[0].text()
        # Records on the 10th only; the 15th onwards are not over at noon of the 15th.
        assert title.startswith(f"4月{n}日：{7 if n == 10 else 0} 条")
        assert ("未过完" in title) == (n >= 15)
        assert (rect.attrs["fill"] == PENDING.fill) == (n >= 15)
