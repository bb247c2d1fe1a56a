"""Inline SVG charts for the bulletin page (pure: data in, markup out, no JavaScript, no files).

Charts are drawn where a reader would rather look than read: who uploads how much, how much of
what they declared arrives, on which days nothing came, whose channels disagree, where kiosk
money goes. Every number on a chart is also in a table or a problem list; the charts carry no
figure of their own, so amounts are scaled from floats here but always printed from Decimals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from services.reports import fmt

FONT = "'Noto Sans CJK SC','Noto Sans SC','Source Han Sans SC','WenQuanYi Micro Hei',sans-serif"
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#dfe4ea"
BAR = "#2f6690"
BAR_LIGHT = "#9cc0dc"
BACKDROP = "#edf1f5"
WARN = "#c0392b"
WARN_LIGHT = "#f2c4bd"

_WIDTH = 540
_ROW = 18
_FONT_SIZE = 11


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its label, its length (any unit), the text printed after it, and whether to flag it."""

    label: str
    value: float
    text: str
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class Coverage:
    """One institution's tables: required, declared (None = 未反馈) and uploaded."""

    label: str
    required: int
    declared: int | None
    uploaded: int


def text_width(text: str, size: float = _FONT_SIZE) -> float:
    """Approximate rendered width: CJK glyphs are one em wide, Latin ones a little over half."""
    return sum(size if ord(ch) >= 0x2E80 else size * 0.6 for ch in text)


def _svg(width: float, height: float, label: str, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" '
        f'font-size="{_FONT_SIZE}" fill="{INK}"><title>{escape(label)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every text piece is escaped above


def _text(x: float, y: float, text: str, *, anchor: str = "start", fill: str = INK, size: float | None = None) -> str:
    size_attr = f' font-size="{size}"' if size else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}"{size_attr}>{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, extra: str = "") -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{h:.1f}" fill="{fill}"{extra}/>'


def _label_width(labels: Sequence[str]) -> float:
    return min(max((text_width(s) for s in labels), default=40) + 10, 220)


def bar_chart(bars: Sequence[Bar], label: str) -> Markup:
    """Horizontal bars in the given order, longest = full width; flagged bars in the warning colour."""
    left = _label_width([b.label for b in bars])
    right = max((text_width(b.text) for b in bars), default=0) + 8
    span = _WIDTH - left - right
    top = max((b.value for b in bars), default=0)
    body = []
    for n, bar in enumerate(bars):
        y = 4 + n * _ROW
        length = span * bar.value / top if top > 0 else 0
        body.append(_text(left - 6, y + 12, bar.label, anchor="end"))
        body.append(_rect(left, y + 3, length, _ROW - 6, WARN if bar.flagged else BAR))
        body.append(_text(left + length + 4, y + 12, bar.text, fill=MUTED))
    body.append(f'<line x1="{left}" y1="2" x2="{left}" y2="{6 + len(bars) * _ROW}" stroke="{GRID}"/>')
    return _svg(_WIDTH, 8 + len(bars) * _ROW, label, body)


def coverage_chart(rows: Sequence[Coverage], label: str) -> Markup:
    """Per institution: required tables as the backdrop, declared (light) and uploaded (dark) on it."""
    left = _label_width([r.label for r in rows])
    right = 80.0
    span = _WIDTH - left - right
    top = max((max(r.required, r.declared or 0, r.uploaded) for r in rows), default=0)
    scale = span / top if top > 0 else 0
    row_h = _ROW + 2
    body = []
    for n, row in enumerate(rows):
        y = 4 + n * row_h
        body.append(_text(left - 6, y + 13, row.label, anchor="end"))
        body.append(_rect(left, y + 2, row.required * scale, row_h - 4, BACKDROP))
        if row.declared is not None:
            body.append(_rect(left, y + 3, row.declared * scale, (row_h - 6) / 2, BAR_LIGHT))
        body.append(_rect(left, y + 3 + (row_h - 6) / 2, row.uploaded * scale, (row_h - 6) / 2, BAR))
        declared = "未反馈" if row.declared is None else str(row.declared)
        end = left + max(row.required, row.declared or 0, row.uploaded) * scale
        body.append(_text(end + 4, y + 13, f"{row.uploaded}/{declared}/{row.required}", fill=MUTED))
    legend_y = 4 + len(rows) * row_h + 14
    body += _legend(
        left,
        legend_y,
        [(BAR, "已上传 uploaded"), (BAR_LIGHT, "申明 declared"), (BACKDROP, "规定 required")],
    )
    return _svg(_WIDTH, legend_y + 8, label, body)


def _legend(x: float, y: float, entries: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for colour, text in entries:
        out.append(_rect(x, y - 9, 10, 10, colour, f' stroke="{GRID}" class="legend"'))
        out.append(_text(x + 14, y, text, fill=MUTED, size=10))
        x += 24 + text_width(text, 10)
    return out


def calendar_chart(
    rows: Sequence[tuple[str, Mapping[date, int]]], days: Sequence[date], ended: Sequence[date], label: str
) -> Markup:
    """Institutions by days of the month: blue where records arrived (darker = more, log scale),
    red where a day that is over had none, blank for days still to come."""
    left = _label_width([name for name, _ in rows])
    cell = min(16.0, (_WIDTH + 140 - left) / max(len(days), 1))
    # Flatter rows when there are many institutions, so the whole month fits on one A4 page.
    height = cell if len(rows) <= 30 else 11.0
    over = set(ended)
    peak = max((v for _, daily in rows for v in daily.values()), default=0)
    body = []
    for col, day in enumerate(days):
        x = left + col * cell
        weekend = day.weekday() >= 5
        body.append(_text(x + cell / 2, 12, str(day.day), anchor="middle", fill=INK if weekend else MUTED, size=9))
    for n, (name, daily) in enumerate(rows):
        y = 18 + n * (height + 1)
        body.append(_text(left - 6, y + height - 1.5, name, anchor="end", size=min(_FONT_SIZE, height)))
        for col, day in enumerate(days):
            records = daily.get(day, 0)
            if records > 0:
                shade = 0.25 + 0.75 * math.log1p(records) / math.log1p(peak) if peak > 0 else 1.0
                fill, extra = BAR, f' fill-opacity="{shade:.2f}"'
            elif day in over:
                fill, extra = WARN_LIGHT, ""
            else:
                fill, extra = "#ffffff", f' stroke="{GRID}"'
            body.append(_rect(left + col * cell + 0.5, y, cell - 1, height, fill, extra))
    legend_y = 18 + len(rows) * (height + 1) + 16
    body += _legend(
        left,
        legend_y,
        [(BAR, "有数据上传 records received"), (WARN_LIGHT, "无数据上传 none"), ("#ffffff", "未到 not over yet")],
    )
    width = left + len(days) * cell + 8
    return _svg(max(width, _WIDTH), legend_y + 8, label, body)


def rate_chart(rows: Sequence[tuple[str, float | None, str]], threshold: float, label: str) -> Markup:
    """Rates as bars, a dashed line at the threshold, bars under it in the warning colour.

    The axis starts at the 10 % step below the lowest rate (and the threshold) rather than at 0:
    rates cluster near 100 %, and on a full axis 95.2 % and 99.8 % look the same.
    """
    lowest = min([threshold, *(v for _, v, _ in rows if v is not None)])
    # round() first: 0.85 - 0.05 is 0.7999999999999999 in binary, which must still floor to 80 %.
    floor = max(0.0, math.floor(round((lowest - 0.05) * 10, 9)) / 10)
    left = _label_width([name for name, _, _ in rows])
    right = 64.0
    span = _WIDTH - left - right

    def x_of(value: float) -> float:
        return left + span * (min(max(value, floor), 1.0) - floor) / (1.0 - floor)

    body = []
    for n, (name, value, text) in enumerate(rows):
        y = 16 + n * _ROW
        body.append(_text(left - 6, y + 12, name, anchor="end"))
        body.append(_rect(left, y + 3, span, _ROW - 6, BACKDROP))
        if value is not None:
            body.append(_rect(left, y + 3, x_of(value) - left, _ROW - 6, WARN if value < threshold else BAR))
        body.append(_text(left + span + 4, y + 12, text, fill=MUTED))
    x = x_of(threshold)
    bottom = 18 + len(rows) * _ROW
    body.append(f'<line x1="{x:.1f}" y1="12" x2="{x:.1f}" y2="{bottom}" stroke="{WARN}" stroke-dasharray="3 2"/>')
    body.append(_text(x, 10, f"阈值 {fmt.rate(threshold)}", anchor="middle", fill=WARN, size=10))
    body.append(_text(left, bottom + 12, f"{floor:.0%}", anchor="start", fill=MUTED, size=9))
    body.append(_text(left + span, bottom + 12, "100%", anchor="end", fill=MUTED, size=9))
    return _svg(_WIDTH, bottom + 16, label, body)


@dataclass(frozen=True, slots=True)
class Mix:
    """One row of a share chart: its label, its parts (in the chart's part order) and the text after it."""

    label: str
    parts: Sequence[int]
    text: str


# Colours of a share chart's parts, in order; distinct in print and for the common colour blindnesses.
MIX_COLOURS = ("#2f6690", "#e09f3e", "#9cc0dc", "#7a4e9b", "#5f8d4e", "#c0392b")


def share_chart(rows: Sequence[Mix], parts: Sequence[str], label: str) -> Markup:
    """Each row a full-width bar split into its parts' shares (a row of nothing draws no bar),
    with a legend of the parts. Shares, not lengths: how a small institution's mix differs from
    a large one's is what it shows, and the text after each bar gives its size."""
    if len(parts) > len(MIX_COLOURS):
        raise ValueError(f"a share chart has at most {len(MIX_COLOURS)} parts, not {len(parts)}")
    left = _label_width([r.label for r in rows])
    right = max((text_width(r.text) for r in rows), default=0) + 8
    span = _WIDTH - left - right
    body = []
    for n, row in enumerate(rows):
        y = 4 + n * _ROW
        body.append(_text(left - 6, y + 12, row.label, anchor="end"))
        whole = sum(row.parts)
        x = float(left)
        for colour, value in zip(MIX_COLOURS, row.parts, strict=False):
            width = span * value / whole if whole > 0 else 0
            if width > 0:
                body.append(_rect(x, y + 3, width, _ROW - 6, colour))
            x += width
        body.append(_text(left + span + 4, y + 12, row.text, fill=MUTED))
    legend_y = 4 + len(rows) * _ROW + 14
    body += _legend(left, legend_y, list(zip(MIX_COLOURS, parts, strict=False)))
    return _svg(_WIDTH, legend_y + 8, label, body)
