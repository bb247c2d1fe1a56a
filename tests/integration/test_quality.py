"""The data-quality checks on a generated month with planted problems, through the whole stack.

Each check must fire where it was planted and nowhere else (tests/fixtures/quality.py plants
them and says which); the figures behind a finding are the planted numbers. The quality report
and the bulletin's problem lists are the same findings.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures import quality as planted
from tests.fixtures.cli import run_telemetry
from tests.fixtures.stack import admin_headers, count_events, wait_for
from tests.unit.bulletin.page import parse, problems

pytestmark = pytest.mark.integration
MONTH = {"month": "2020-04"}


async def _load_planted_month(collector: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    response = await collector.put("/v1/admin/reference", json=planted.reference(), headers=admin_headers())
    assert response.status_code in (200, 201), response.text
    total = 0
    for path, events in planted.STREAMS.items():
        batch = events()
        total += len(batch)
        for start in range(0, len(batch), 1000):
            sent = await collector.post(path, json={"events": batch[start : start + 1000]}, headers=admin_headers())
            assert sent.status_code == 202, (path, sent.text)

    async def applied() -> bool:
        return await count_events(db) >= total

    await wait_for(applied, f"{total} planted events applied", timeout_s=120)


async def _quality(aggregator: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await aggregator.get("/v1/reports/quality", params=MONTH, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_each_check_fires_where_it_was_planted_and_nowhere_else(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_planted_month(collector, db)
    report = await _quality(aggregator, admin_headers())
    assert report["days_over"] == 30
    assert {(r["org_code"], r["check"]) for r in report["rows"]} == planted.PLANTED
    rows = {(r["org_code"], r["check"]): r for r in report["rows"]}

    # The figures behind the findings are the planted numbers.
    cross = rows[("L1", "cross_stream_mismatch")]
    assert cross["severity"] == "problem"
    assert (cross["figures"]["appointment_calls"], cross["figures"]["phone_bookings"]) == (50, 30)
    assert report["cross_stream"] == [
        {
            "org_code": "L1",
            "name": "南京12320",
            "city": "南京市",
            "appointment_calls": 50,
            "phone_bookings": 30,
            "institutions": 1,
            "agrees": False,
        }
    ]  # L2's city (无锡市) has no bookings here: it is not compared
    outlier = rows[("H2", "volume_outlier")]["figures"]
    assert outlier["value"] == planted.FIGURES["h2_april"]
    assert outlier["previous_months"] == {"2020-01": 1000, "2020-02": 1000, "2020-03": 1000}
    assert outlier["change"] == pytest.approx(1.0)
    basic, hypertension = planted.FIGURES["ehr"]
    twins = rows[("D4", "identical_figures")]["figures"]
    assert twins["same_as"] == ["D5"] and rows[("D5", "identical_figures")]["figures"]["same_as"] == ["D4"]
    assert twins["fields"]["ehr_basic_cumulative"] == 2 * basic  # both channels carry the records
    assert twins["fields"]["ehr_hypertension_cumulative"] == 2 * hypertension
    assert rows[("D3", "undeclared_uploads")]["figures"] == {"tables": ["LAB"], "records": 2 * 2 * 29}
    assert rows[("H1", "flatline")]["figures"]["silent_days"] == 5
    assert rows[("H1", "flatline")]["figures"]["last_active_day"] == "2020-04-25"
    kiosk = rows[("H4", "flatline")]["figures"]
    assert (kiosk["what"], kiosk["kiosk_id"], kiosk["silent_days"]) == ("kiosk", "K-H4-1", 10)
    assert rows[("H3", "amount_without_count")]["figures"] == {
        "kind": "registration",
        "transactions": 30,
        "amount": "0.00",
    }
    assert rows[("H5", "low_conformance")]["figures"]["conformance_rate"] == pytest.approx(0.5)
    remote = rows[("O1", "unconnected_remote_upload")]["figures"]
    assert (remote["platform"], remote["uploads"], remote["days"], remote["counts"]["cases"]) == (
        "ecg",
        1,
        ["2020-04-05"],
        4,
    )
    assert all(r["detail"] and r["title"] and r["severity"] in ("problem", "warning") for r in report["rows"])
    assert {c["check"] for c in report["checks"]} >= {
        "not_declared",
        "undeclared_uploads",
        "flatline",
        "volume_outlier",
        "amount_without_count",
        "identical_figures",
        "cross_stream_mismatch",
        "unconnected_remote_upload",
    }

    # The bulletin's problem lists are the same findings, sentence for sentence.
    page = parse((await aggregator.get("/v1/reports/bulletin", params=MONTH, headers=admin_headers())).text)
    listed = {(org, check, detail) for org, found in problems(page).items() for check, detail, _ in found}
    assert listed == {(r["org_code"], r["check"], r["detail"]) for r in report["rows"]}


async def test_expected_uploads_and_timeliness_of_the_planted_month(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_planted_month(collector, db)
    response = await aggregator.get(
        "/v1/reports/uploads", params={**MONTH, "kind": "hospital"}, headers=admin_headers()
    )
    rows = {r["org_code"]: r for r in response.json()}
    business = [d for d in planted.APRIL if d != planted.QUIET]  # the no-upload day expects nothing
    assert all(r["expected_slots"] == len(business) for r in rows.values())  # one declared table each
    # H1 uploads both channels on each business day up to April 25: its slots are filled on time
    # (realtime at 10:00, the nightly batch at 23:30 of the day itself, half an hour early).
    h1_days = len([d for d in business if d.day <= 25])
    h1 = rows["H1"]
    assert h1["reporting_rate_realtime"] == pytest.approx(h1_days / len(business), abs=1e-6)
    assert h1["on_time_rate_realtime"] == h1["reporting_rate_realtime"]
    assert h1["on_time_rate_scheduled"] == h1["reporting_rate_scheduled"] == h1["reporting_rate_realtime"]
    assert (h1["scheduled_lag_p50_hours"], h1["scheduled_lag_p90_hours"]) == (-0.5, -0.5)
    # H6's batch arrives at 07:00 the next day from April 20 on: filled, but late.
    late = len([d for d in business if d >= planted.LATE_FROM])
    h6 = rows["H6"]
    assert h6["reporting_rate_scheduled"] == 1.0 and h6["reporting_rate_realtime"] == 1.0
    assert h6["on_time_rate_scheduled"] == pytest.approx((len(business) - late) / len(business), abs=1e-6)
    lags = sorted([-0.5] * (len(business) - late) + [7.0] * late)
    nearest = {share: lags[-(-len(lags) * share // 100) - 1] for share in (50, 90)}
    assert (h6["scheduled_lag_p50_hours"], h6["scheduled_lag_p90_hours"]) == (nearest[50], nearest[90])


async def test_an_institution_sees_its_own_findings_and_no_comparison_with_others(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_planted_month(collector, db)
    issued = (await collector.post("/v1/admin/tokens", json={"org_code": "D4"}, headers=admin_headers())).json()
    d4 = {"Authorization": f"Bearer {issued['token']}"}

    async def token_known() -> bool:
        return (await aggregator.get("/v1/reports/quality", params=MONTH, headers=d4)).status_code == 200

    await wait_for(token_known, "aggregator learned the new token")
    report = await _quality(aggregator, d4)
    # D4's copied row is only a finding beside D5's, which its token cannot read.
    assert report["rows"] == [] and report["cross_stream"] == []
    h1 = (await collector.post("/v1/admin/tokens", json={"org_code": "H1"}, headers=admin_headers())).json()
    h1_headers = {"Authorization": f"Bearer {h1['token']}"}
    await wait_for(
        lambda: _ok(aggregator, h1_headers),
        "aggregator learned the second token",
    )
    own = await _quality(aggregator, h1_headers)
    assert {(r["org_code"], r["check"]) for r in own["rows"]} == {("H1", "flatline"), ("H1", "days_without_uploads")}


async def _ok(aggregator: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    return (await aggregator.get("/v1/reports/quality", params=MONTH, headers=headers)).status_code == 200


@pytest.mark.parametrize("params", [{"month": "2020-13"}, {"month": "2020-04", "format": "csv"}, {}])
async def test_bad_quality_parameters_are_422(aggregator: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await aggregator.get("/v1/reports/quality", params=params, headers=admin_headers())
    assert response.status_code == 422, response.text


async def test_the_quality_report_needs_a_token(aggregator: httpx.AsyncClient) -> None:
    assert (await aggregator.get("/v1/reports/quality", params=MONTH)).status_code == 401


def _score(row: dict[str, Any]) -> float:
    """The scorecard's score by its definition, from an uploads report row (a plain fold)."""

    def mean(a: float | None, b: float | None) -> float | None:
        known = [v for v in (a, b) if v is not None]
        return sum(known) / len(known) if known else None

    coverage = row["declared_coverage_rate"] if row["declared_tables"] else row["table_coverage_rate"]
    rates = [
        row["completeness_rate"],
        row["conformity_rate"],
        row["linkage_rate"],
        row["continuity_rate"],
        coverage,
        mean(row["reporting_rate_realtime"], row["reporting_rate_scheduled"]),
        mean(row["on_time_rate_realtime"], row["on_time_rate_scheduled"]),
    ]
    return 100 * sum(r or 0.0 for r in rates) / len(rates)


async def test_the_scorecard_ranks_the_worst_first_with_the_previous_month_beside(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_planted_month(collector, db)
    response = await aggregator.get("/v1/reports/scorecard", params=MONTH, headers=admin_headers())
    assert response.status_code == 200, response.text
    card = response.json()
    assert (card["month"], card["previous_month"]) == ("2020-04", "2020-03")
    uploads = {}
    for month in ("2020-04", "2020-03"):
        for kind in ("district", "hospital"):
            got = await aggregator.get(
                "/v1/reports/uploads", params={"month": month, "kind": kind}, headers=admin_headers()
            )
            uploads.update({(month, r["org_code"]): r for r in got.json()})
    findings = (await _quality(aggregator, admin_headers()))["rows"]
    rows = card["rows"]
    assert {r["org_code"] for r in rows} == {org for month, org in uploads if month == "2020-04"}
    assert [r["month"]["rank"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        assert r["month"]["score"] == pytest.approx(_score(uploads[("2020-04", r["org_code"])]), abs=0.01)
        assert r["previous"]["score"] == pytest.approx(_score(uploads[("2020-03", r["org_code"])]), abs=0.01)
        assert r["score_change"] == pytest.approx(r["month"]["score"] - r["previous"]["score"], abs=0.02)
        mine = [f["severity"] for f in findings if f["org_code"] == r["org_code"]]
        assert (r["month"]["problems"], r["month"]["warnings"]) == (mine.count("problem"), mine.count("warning"))
    scores = [(r["month"]["score"], -r["month"]["problems"]) for r in rows]
    assert scores == sorted(scores)  # worst first; ties: more problems first
    # H2 and H6 uploaded in March, nobody else: everyone else scored 0 then and improved.
    march = {r["org_code"]: r["previous"]["score"] for r in rows}
    assert {org for org, score in march.items() if score > 0} == {"H2", "H6"}
    # An institution's token: its own row, ranked among all.
    issued = (await collector.post("/v1/admin/tokens", json={"org_code": "H1"}, headers=admin_headers())).json()
    own_headers = {"Authorization": f"Bearer {issued['token']}"}

    async def token_known() -> bool:
        return (await aggregator.get("/v1/reports/scorecard", params=MONTH, headers=own_headers)).status_code == 200

    await wait_for(token_known, "aggregator learned the new token")
    own = (await aggregator.get("/v1/reports/scorecard", params=MONTH, headers=own_headers)).json()
    assert own["rows"] == [r for r in rows if r["org_code"] == "H1"]


async def test_the_commands_print_what_the_api_serves(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    await _load_planted_month(collector, db)
    env = {"TELEMETRY_DATABASE_URL": database_url, "TELEMETRY_TIMEZONE": "Asia/Shanghai"}
    api = await _quality(aggregator, admin_headers())
    code, out = await run_telemetry("report", "quality", "--month", "2020-04", "--format", "json", env=env)
    assert code == 0, out
    assert json.loads(out)["rows"] == api["rows"]
    code, out = await run_telemetry("report", "quality", "--month", "2020-04", env=env)
    assert code == 0, out
    assert "cross_stream_mismatch" in out and f"{len(api['rows'])} findings" in out
    card = (await aggregator.get("/v1/reports/scorecard", params=MONTH, headers=admin_headers())).json()
    code, out = await run_telemetry("report", "scorecard", "--month", "2020-04", "--format", "json", env=env)
    assert code == 0, out
    assert json.loads(out) == card
