"""The scorecard: districts and hospitals ranked by their data quality, the worst first (which to govern next).

An institution's score is 100 × the mean of its seven rates of the month: the campaign's four
dimensions (completeness, conformity, linkage, continuity), declared coverage (table coverage
when it declared nothing: 未反馈 is no excuse), and the mean reporting and on-time rates of its
two channels. A rate the month does not define (nothing uploaded, nothing expected) counts 0:
an institution that sent nothing has the worst score, not none. Ties go to the one with more
`problem` findings of the checks, then more warnings, then org_code. The previous month's score,
rank and findings stand beside each, so a reader sees who improved.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from services.quality.appointments import previous_month
from services.quality.checks import run_checks, span_of
from services.quality.month import QualityMonth, load_quality_month
from services.quality.problems import InstitutionProblems, Severity
from services.quality.settings import Thresholds
from services.storage.connection import Connection
from services.streams.uploads.model import UploadReportRow

DIMENSIONS = (
    "completeness_rate",
    "conformity_rate",
    "linkage_rate",
    "continuity_rate",
    "coverage_rate",
    "reporting_rate",
    "on_time_rate",
)


class Standing(BaseModel):
    """An institution's figures in one month."""

    model_config = ConfigDict(frozen=True)

    rank: int
    score: float
    problems: int
    warnings: int
    rates: dict[str, float | None]
    """Each of DIMENSIONS (null: the month does not define it; it counts 0 in the score)."""


class ScorecardRow(BaseModel):
    """One institution: this month's standing and the previous month's beside it."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    kind: str
    month: Standing
    previous: Standing | None
    """None when the institution had no row the previous month (not in the reference data then)."""
    score_change: float | None


class Scorecard(BaseModel):
    """`GET /v1/reports/scorecard?month=YYYY-MM`."""

    model_config = ConfigDict(frozen=True)

    month: str
    previous_month: str
    rows: list[ScorecardRow]
    """Worst score first."""


def _mean(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def rates_of(row: UploadReportRow) -> dict[str, float | None]:
    """The seven rates of an upload report row."""
    coverage = row.declared_coverage_rate if row.declared_tables else row.table_coverage_rate
    return {
        "completeness_rate": row.completeness_rate,
        "conformity_rate": row.conformity_rate,
        "linkage_rate": row.linkage_rate,
        "continuity_rate": row.continuity_rate,
        "coverage_rate": coverage,
        "reporting_rate": _mean(row.reporting_rate_realtime, row.reporting_rate_scheduled),
        "on_time_rate": _mean(row.on_time_rate_realtime, row.on_time_rate_scheduled),
    }


def score_of(rates: dict[str, float | None]) -> float:
    """100 × the mean of the rates, an undefined one counted 0; two decimals."""
    return round(100 * sum(rates[d] or 0.0 for d in DIMENSIONS) / len(DIMENSIONS), 2)


def standings(rows: Sequence[UploadReportRow], found: Sequence[InstitutionProblems]) -> dict[str, Standing]:
    """Every row's standing, ranked: the lowest score first."""
    severities = {inst.org_code: [p.severity for p in inst.problems] for inst in found}
    scored = []
    for row in rows:
        rates = rates_of(row)
        kinds = severities.get(row.org_code, [])
        scored.append(
            (row.org_code, score_of(rates), kinds.count(Severity.PROBLEM), kinds.count(Severity.WARNING), rates)
        )
    scored.sort(key=lambda s: (s[1], -s[2], -s[3], s[0]))
    return {
        org: Standing(rank=n, score=score, problems=problems, warnings=warnings, rates=rates)
        for n, (org, score, problems, warnings, rates) in enumerate(scored, start=1)
    }


def scorecard_of(
    current: QualityMonth,
    previous: QualityMonth,
    now: datetime,
    zone: ZoneInfo,
    thresholds: Thresholds,
    org_code: str | None = None,
) -> Scorecard:
    """The scorecard of two months already read (pure); `org_code`: only that institution's row."""
    months = []
    for data in (current, previous):
        rows = [*data.districts, *data.hospitals]
        months.append((rows, standings(rows, run_checks(data, span_of(data, now, zone), thresholds))))
    (rows, now_standing), (_, before) = months
    out = []
    for row in rows:
        this, last = now_standing[row.org_code], before.get(row.org_code)
        if org_code is not None and row.org_code != org_code:
            continue
        out.append(
            ScorecardRow(
                org_code=row.org_code,
                name=row.name,
                kind=row.kind.value,
                month=this,
                previous=last,
                score_change=round(this.score - last.score, 2) if last is not None else None,
            )
        )
    out.sort(key=lambda r: r.month.rank)
    return Scorecard(month=current.month.strftime("%Y-%m"), previous_month=previous.month.strftime("%Y-%m"), rows=out)


async def scorecard(
    conn: Connection,
    month: date,
    org_code: str | None,
    *,
    zone: ZoneInfo,
    thresholds: Thresholds,
    now: datetime | None = None,
) -> Scorecard:
    """Rank every district and hospital of `month` (an institution's token: its own row, ranked among all)."""
    # Ranked among all institutions even for one reader: a rank is the commission's verdict on
    # the institution itself; the row carries no other institution's figure.
    current = await load_quality_month(conn, month, None)
    previous = await load_quality_month(conn, previous_month(month), None)
    return scorecard_of(current, previous, now or datetime.now(zone), zone, thresholds, org_code)
