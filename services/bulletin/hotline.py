"""The bulletin's 12320 hotline section and the centres' problem lists (pure: report in, page parts out).

The section follows the printed bulletin: 南京12320卫生热线2020年4月数据统计, a paragraph of the
city's own centre (calls by category and the 12345 work orders it received, in the printed
words), then 4月全省12320, a sentence of every centre's calls, here also as a table of every
figure and a chart. The numbers are the report's (`GET /v1/reports/hotline`), so the page cannot
disagree with it. Sentences print integers as the bulletin does (136783), tables with separators.

A centre's problems are found by services/quality/hotline.py, with every other check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup

from services.bulletin import charts
from services.contract.models import Region
from services.reports import fmt
from services.streams.hotline.model import CALL_CATEGORIES, HotlineRow
from services.streams.hotline.report import FIGURES, HotlineInputs
from services.streams.hotline.wording import WORDING, Wording

_CALL_FIGURES = frozenset(c.value for c in CALL_CATEGORIES)


def _said(figure: str, value: int) -> str:
    wording = WORDING[figure]
    return f"{wording.words}{value}{wording.unit}"


def centre_title(name: str) -> str:
    """南京12320 → 南京12320卫生热线, as the bulletin names a centre (a name that says 热线 is kept)."""
    return name if "热线" in name else f"{name}卫生热线"


def short_city(row: HotlineRow) -> str:
    """南京市 → 南京, as the province sentence names a city.

    A centre whose city is unknown is named by its own name less the line's number (无锡12320 →
    无锡): a number right before the count of calls would read as part of it.
    """
    if row.city:
        return row.city.removesuffix("市") or row.city
    return row.name.removesuffix("12320") or row.name


def centre_paragraph(row: HotlineRow, month: date) -> str:
    """The bulletin's sentence of one centre: its calls, each call category and its 12345 work orders."""
    categories = "、".join(_said(c.value, getattr(row, c.value)) for c in CALL_CATEGORIES)
    return (
        f"{month.year}年{month.month}月，{centre_title(row.name)}{_said('calls', row.calls)}，其中{categories}，"
        f"{_said('work_orders_city_12345', row.work_orders_city_12345)}，"
        f"{_said('work_orders_province_12345', row.work_orders_province_12345)}。"
    )


def province_sentence(rows: Sequence[HotlineRow], total: HotlineRow, month: date) -> str:
    """The bulletin's sentence of every centre's calls, in the report's order (most calls first)."""
    cities = "、".join(f"{short_city(r)}{r.calls}人次" for r in rows)
    return f"{month.month}月，全省12320共接听电话{total.calls}人次，各市电话量统计为：{cities}。"


@dataclass(frozen=True)
class CentreParagraph:
    """The city's own centre: its title, sentence and figures (label, English label, value)."""

    org_code: str
    title: str
    sentence: str
    figures: list[tuple[str, str, str, int]]
    """(figure, label, English label, value) in the report's order."""


@dataclass(frozen=True)
class HotlineView:
    """What the template shows of the hotline."""

    short_month: str
    centres: list[CentreParagraph]
    province: str | None
    """The province sentence; None on an institution's own page (its total is not the province's)."""
    rows: list[HotlineRow]
    total: HotlineRow
    cities: Mapping[str | None, str]
    """org_code -> the city as the bulletin writes it."""
    wording: Mapping[str, Wording]
    charts: Mapping[str, Markup]


def hotline_view(inputs: HotlineInputs | None, *, scoped: bool) -> HotlineView | None:
    """The section for `inputs`; None when the reader sees no centre (no section at all)."""
    if inputs is None or not inputs.report.rows:
        return None
    month, rows, total = inputs.month, inputs.report.rows, inputs.report.total
    own_city = {c.org_code for c in inputs.centres if c.region is Region.CITY}
    paragraphs = [
        CentreParagraph(
            row.org_code or "",
            f"{centre_title(row.name)}{month.year}年{month.month}月数据统计",
            centre_paragraph(row, month),
            [(f, WORDING[f].label, WORDING[f].label_en, getattr(row, f)) for f in FIGURES],
        )
        for row in rows
        if row.org_code in own_city
    ]
    return HotlineView(
        short_month=f"{month.month}月",
        centres=paragraphs,
        province=None if scoped else province_sentence(rows, total, month),
        rows=rows,
        total=total,
        cities={r.org_code: short_city(r) for r in rows},
        wording=WORDING,
        charts=_charts(rows, paragraphs),
    )


def _charts(rows: Sequence[HotlineRow], paragraphs: Sequence[CentreParagraph]) -> dict[str, Markup]:
    out = {
        "province": charts.bar_chart(
            [charts.Bar(short_city(r), r.calls, fmt.integer(r.calls), flagged=r.calls == 0) for r in rows],
            "各市12320受理电话",
        )
    }
    for paragraph in paragraphs:
        calls = [(label, value) for figure, label, _, value in paragraph.figures if figure in _CALL_FIGURES]
        out[f"categories-{paragraph.org_code}"] = charts.bar_chart(
            [charts.Bar(label, value, fmt.integer(value)) for label, value in calls], f"{paragraph.title}：来电类别"
        )
    return out
