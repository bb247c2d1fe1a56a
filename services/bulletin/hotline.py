"""The bulletin's 12320 hotline section and the centres' problem lists (pure: report in, page parts out).

The section follows the printed bulletin: 南京12320卫生热线2020年4月数据统计, a paragraph of the
city's own centre (calls by category and the 12345 work orders it received, in the printed
words), then 4月全省12320, a sentence of every centre's calls, here also as a table of every
figure and a chart. The numbers are the report's (`GET /v1/reports/hotline`), so the page cannot
disagree with it. Sentences print integers as the bulletin does (136783), tables with separators.

The problem list of a centre covers what can go wrong with a hotline's data here. Its categories
cannot fail to add up to its calls (calls are counted as the sum of the categories); what can go
wrong is a feed: a centre that sends nothing, stops for days, drops one of its queues, or sends
far more or less than before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction

from markupsafe import Markup

from services.bulletin import charts, fmt
from services.bulletin.problems import InstitutionProblems, MonthSpan, Problem
from services.contract.models import InstitutionKind, Region
from services.streams.hotline.model import CALL_CATEGORIES, HotlineRow
from services.streams.hotline.report import FIGURES, HotlineInputs, months_before, previous_figures


@dataclass(frozen=True, slots=True)
class Wording:
    """How the bulletin names a figure: in a table (Chinese, English) and in a sentence (words, unit)."""

    label: str
    label_en: str
    words: str
    unit: str


WORDING: Mapping[str, Wording] = {
    "calls": Wording("受理电话", "calls", "共受理咨询电话", "个"),
    "consultation": Wording("咨询类（不含专家咨询）", "consultation", "咨询类（不含专家咨询）", "个"),
    "complaint": Wording("医疗服务投诉", "complaints", "医疗服务投诉", "个"),
    "appointment": Wording("电话预约", "appointments by phone", "电话预约", "个"),
    "crisis_intervention": Wording("心理危机干预", "crisis intervention", "心理危机干预", "个"),
    "satisfaction_survey": Wording("医院满意度调查（呼入）", "satisfaction surveys", "医院满意度调查（呼入）", "个"),
    "voice_qa": Wording("自助语音问答", "self-service voice Q&A", "自助语音问答", "个"),
    "work_orders_city_12345": Wording("市12345工单", "city 12345 work orders", "受理市12345工单", "件"),
    "work_orders_province_12345": Wording("省12345工单", "province 12345 work orders", "省12345工单", "件"),
}
"""Every figure of a report row, in its order; the words are the April 2020 bulletin's."""

SILENT_RUN_DAYS = 3
"""Days in a row without any contact that make a problem (the contract's flatline default): a
12320 line answers around the clock, but the smallest centres have a quiet day now and then."""
OUTLIER_SHARE = Fraction(33, 100)
"""Calls off the mean of the previous three months by more than this share (the contract's volume_outlier)."""
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


# --- problems ------------------------------------------------------------------------------


def hotline_problems(inputs: HotlineInputs | None, span: MonthSpan) -> list[InstitutionProblems]:
    """Every centre of the report, in its order, with its problems (possibly none)."""
    if inputs is None:
        return []
    out = []
    for row in inputs.report.rows:
        org = row.org_code or ""
        daily = inputs.history.daily.get(org, {})
        earlier = [previous_figures(inputs.history, org, m) for m in months_before(inputs.month)]
        found = [*_silence(daily, span, earlier[0]), *_changes(row, span, earlier)]
        out.append(InstitutionProblems(org, row.name, InstitutionKind.HOTLINE, tuple(found)))
    return out


def _runs(days: Iterable[date]) -> list[list[date]]:
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _silence(daily: Mapping[date, int], span: MonthSpan, last_month: Mapping[str, int] | None) -> Iterable[Problem]:
    if len(span.ended) < SILENT_RUN_DAYS:
        return
    silent = [day for day in span.ended if daily.get(day, 0) <= 0]
    if len(silent) == len(span.ended):
        before = ""
        if last_month:
            orders = last_month["work_orders_city_12345"] + last_month["work_orders_province_12345"]
            before = f"；上月受理电话 {fmt.integer(last_month['calls'])} 个、工单 {fmt.integer(orders)} 件"
        yield Problem(
            "hotline_no_contacts",
            f"已过 {len(span.ended)} 天，无一天有来电或工单{before}",
            tuple(fmt.day_ranges(silent)),
        )
        return
    long_runs = [run for run in _runs(silent) if len(run) >= SILENT_RUN_DAYS]
    if long_runs:
        days = sum(len(run) for run in long_runs)
        yield Problem(
            "hotline_silent_days",
            f"已过 {len(span.ended)} 天中 {days} 天无来电或工单（连续 {SILENT_RUN_DAYS} 天及以上）",
            tuple(fmt.day_ranges(day for run in long_runs for day in run)),
        )


def _changes(row: HotlineRow, span: MonthSpan, earlier: Sequence[Mapping[str, int] | None]) -> Iterable[Problem]:
    # Whole months only: a month still running is not compared with finished ones. A centre with
    # no contact at all is listed once, as silent (hotline_no_contacts), not again category by category.
    if len(span.ended) < span.days_in_month or not any(getattr(row, f) for f in FIGURES):
        return
    last = earlier[0]
    if last:
        stopped = [f for f in FIGURES if f != "calls" and last[f] > 0 and getattr(row, f) == 0]
        if stopped:
            yield Problem(
                "hotline_category_stopped",
                f"{len(stopped)} 个类别上月有、本月为 0",
                tuple(f"{WORDING[f].label}（上月 {fmt.integer(last[f])} {WORDING[f].unit}）" for f in stopped),
            )
    calls = [e["calls"] for e in earlier if e and e["calls"] > 0]
    if len(calls) == len(earlier):
        mean = Fraction(sum(calls), len(calls))
        if abs(row.calls - mean) > OUTLIER_SHARE * mean:
            change = f"{float((row.calls - mean) / mean):+.0%}"
            yield Problem(
                "hotline_calls_outlier",
                f"受理电话 {fmt.integer(row.calls)} 个，前三个月平均 {fmt.integer(round(mean))} 个（{change}）",
                tuple(
                    f"{m.month}月 {fmt.integer(n)} 个" for m, n in zip(months_before(span.first), calls, strict=True)
                ),
            )
