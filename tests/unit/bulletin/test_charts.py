"""The inline SVG charts: lengths proportional to the figures, flags in the warning colour, text escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

from services.bulletin import charts

SVG = "{http://www.w3.org/2000/svg}"


def rects(svg: str) -> list[dict[str, str]]:
    """The chart's rectangles, legend swatches left out."""
    return [dict(r.attrib) for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("class") != "legend"]


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_bar_lengths_are_proportional_and_flagged_bars_warn() -> None:
    svg = str(
        charts.bar_chart(
            [charts.Bar("甲", 200, "200"), charts.Bar("乙", 50, "50", flagged=True), charts.Bar("丙", 0, "0")],
            "records",
        )
    )
    bars = rects(svg)
    widths = [float(b["width"]) for b in bars]
    assert widths[0] == 4 * widths[1] and widths[2] == 0
    assert [b["fill"] for b in bars] == [charts.BAR, charts.WARN, charts.BAR]
    assert texts(svg) == ["甲", "200", "乙", "50", "丙", "0"]


def test_all_zero_bars_draw_nothing_and_do_not_divide_by_zero() -> None:
    bars = rects(str(charts.bar_chart([charts.Bar("甲", 0, "0")], "records")))
    assert [float(b["width"]) for b in bars] == [0.0]


def test_labels_are_escaped() -> None:
    svg = str(charts.bar_chart([charts.Bar("<b>&", 1, "1")], "<title>"))
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg
    assert texts(svg)[0] == "<b>&"


def test_rate_chart_draws_the_threshold_and_warns_below_it() -> None:
    svg = str(charts.rate_chart([("甲", 0.5, "50%"), ("乙", 0.99, "99%"), ("丙", None, "—")], 0.95, "rates"))
    bars = [r for r in rects(svg) if r["fill"] != charts.BACKDROP]
    assert [b["fill"] for b in bars] == [charts.WARN, charts.BAR]  # no bar for 丙
    low, high = (float(b["x"]) + float(b["width"]) for b in bars)
    line = ET.fromstring(svg).find(f"{SVG}line")
    assert line is not None
    assert low < float(line.attrib["x1"]) < high
    assert "阈值 95.00%" in texts(svg)


def test_rate_chart_axis_starts_below_the_lowest_rate() -> None:
    svg = str(charts.rate_chart([("甲", 0.952, "95.2%"), ("乙", 0.998, "99.8%")], 0.95, "rates"))
    assert "90%" in texts(svg) and "100%" in texts(svg)
    backdrop = next(r for r in rects(svg) if r["fill"] == charts.BACKDROP)
    widths = [float(r["width"]) for r in rects(svg) if r["fill"] == charts.BAR]
    # On a 90-100 % axis 95.2 % is about half the track and 99.8 % nearly all of it.
    assert abs(widths[0] / float(backdrop["width"]) - 0.52) < 0.01
    assert abs(widths[1] / float(backdrop["width"]) - 0.98) < 0.01
    # 0.85 - 0.05 is 0.7999999999999999 in binary floating point: still an 80 % axis, not 70 %.
    assert "80%" in texts(str(charts.rate_chart([("甲", 0.9, "90%")], 0.85, "rates")))
    full = str(charts.rate_chart([("甲", 0.0, "0%")], 0.95, "rates"))
    assert "0%" in texts(full)


def test_calendar_marks_days_without_records_and_leaves_days_to_come_blank() -> None:
    days = [date(2020, 4, d) for d in range(1, 5)]
    svg = str(
        charts.calendar_chart(
            [("甲", {days[0]: 100, days[1]: 0, days[3]: 5})], days, ended=days[:3], label="uploads per day"
        )
    )
    cells = rects(svg)
    # day 1 records, day 2 over with 0 records, day 3 over and absent, day 4 not over yet but with records
    assert [r["fill"] for r in cells] == [charts.BAR, charts.WARN_LIGHT, charts.WARN_LIGHT, charts.BAR]
    assert float(cells[0]["fill-opacity"]) > float(cells[3]["fill-opacity"])  # more records, darker
    future = str(charts.calendar_chart([("甲", {})], days, ended=days[:1], label="x"))
    assert [r["fill"] for r in rects(future)] == [charts.WARN_LIGHT, "#ffffff", "#ffffff", "#ffffff"]


def test_coverage_chart_shows_no_feedback_without_a_declared_bar() -> None:
    svg = str(charts.coverage_chart([charts.Coverage("甲", 83, None, 13), charts.Coverage("乙", 83, 26, 13)], "cov"))
    assert "13/未反馈/83" in texts(svg) and "13/26/83" in texts(svg)
    light = [r for r in rects(svg) if r["fill"] == charts.BAR_LIGHT and float(r["width"]) > 0]
    assert len(light) == 1
