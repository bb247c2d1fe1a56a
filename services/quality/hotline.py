"""The 12320 centres' checks: a feed that sends nothing, stops for days, drops one of its queues,
or sends far more or less than before.

A centre's categories cannot fail to add up to its calls (calls are counted as the sum of the
categories), so what can go wrong with a hotline's data here is its feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from fractions import Fraction

from services.contract.models import InstitutionKind
from services.quality.problems import InstitutionProblems, MonthSpan, Problem
from services.reports import fmt
from services.streams.hotline.model import HotlineRow
from services.streams.hotline.report import FIGURES, HotlineInputs, months_before, previous_figures
from services.streams.hotline.wording import WORDING

SILENT_RUN_DAYS = 3
"""Days in a row without any contact that make a problem (the contract's flatline default): a
12320 line answers around the clock, but the smallest centres have a quiet day now and then."""
OUTLIER_SHARE = Fraction(33, 100)
"""Calls off the mean of the previous three months by more than this share (the contract's volume_outlier)."""


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
            {"days_over": len(span.ended), "silent_days": len(silent)},
        )
        return
    long_runs = [run for run in _runs(silent) if len(run) >= SILENT_RUN_DAYS]
    if long_runs:
        days = sum(len(run) for run in long_runs)
        yield Problem(
            "hotline_silent_days",
            f"已过 {len(span.ended)} 天中 {days} 天无来电或工单（连续 {SILENT_RUN_DAYS} 天及以上）",
            tuple(fmt.day_ranges(day for run in long_runs for day in run)),
            {"days_over": len(span.ended), "silent_days": days, "run_days": SILENT_RUN_DAYS},
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
                {"stopped": {f: last[f] for f in stopped}},
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
                {"calls": row.calls, "previous_months": calls, "change": round(float((row.calls - mean) / mean), 4)},
            )
