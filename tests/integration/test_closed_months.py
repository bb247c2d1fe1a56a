"""Closing a month, `as_of`, and restatements (issue 10), on the real broker and database.

Expected figures come from a plain fold of what each test posted, written here (records, tables,
transactions and amounts per institution), never from the report code under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest
from typer.testing import CliRunner

from services.aggregator.asof import rollups_as_of
from services.cli.main import app as cli
from services.reports.catalog import REPORTS
from tests.fixtures.events import REFERENCE, kiosk, load_reference, upload
from tests.fixtures.stack import StackConfig, admin_headers, count_events, wait_for

pytestmark = pytest.mark.integration

APRIL = date(2020, 4, 1)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _april(org: str, table: str, records: int, day: int = 10) -> dict[str, Any]:
    return upload(
        org_code=org,
        table_code=table,
        record_count=records,
        business_date=f"2020-04-{day:02d}",
        uploaded_at=f"2020-04-{day:02d}T10:00:00+08:00",
    )


def _records(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Records uploaded per institution: the plain sum."""
    out: dict[str, int] = {}
    for e in events:
        if "table_code" in e:
            out[e["org_code"]] = out.get(e["org_code"], 0) + e["record_count"]
    return out


def _tables(events: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Distinct tables with records per institution."""
    out: dict[str, set[str]] = {}
    for e in events:
        if "table_code" in e and e["record_count"] > 0:
            out.setdefault(e["org_code"], set()).add(e["table_code"])
    return {org: len(tables) for org, tables in out.items()}


def _payments(events: Iterable[dict[str, Any]]) -> dict[str, tuple[int, Decimal]]:
    """Kiosk payments per institution: (count, amount)."""
    out: dict[str, tuple[int, Decimal]] = {}
    for e in events:
        if "kiosk_id" in e and e["kind"] == "payment":
            n, amount = out.get(e["org_code"], (0, Decimal("0")))
            out[e["org_code"]] = (n + 1, amount + Decimal(e["amount"]))
    return out


async def _post(collector: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    uploads = [e for e in events if "table_code" in e]
    kiosks = [e for e in events if "kiosk_id" in e]
    for path, batch in (("/v1/uploads", uploads), ("/v1/kiosk-transactions", kiosks)):
        if batch:
            answer = await collector.post(path, json={"events": batch}, headers=admin_headers())
            assert answer.status_code == 202, answer.text


async def _counted(db: asyncpg.Connection, n: int) -> None:
    async def enough() -> bool:
        return await count_events(db) >= n

    await wait_for(enough, f"{n} events counted")


async def _issue_token(collector: httpx.AsyncClient, org_code: str) -> str:
    response = await collector.post("/v1/admin/tokens", json={"org_code": org_code}, headers=admin_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def _by_org(rows: list[dict[str, Any]], field: str) -> dict[str, Any]:
    return {r["org_code"]: r[field] for r in rows if r["org_code"] is not None}


async def _report(aggregator: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None) -> Any:
    answer = await aggregator.get(path, headers=headers or admin_headers())
    assert answer.status_code == 200, answer.text
    return answer.json()


FIRST = [
    _april("D1", "OPV", 10),
    _april("D1", "EHR", 5),
    _april("D2", "OPV", 3),
    _april("H1", "OPV", 8),
    kiosk(org_code="H1", amount="12.50"),
    kiosk(org_code="H1", kiosk_id="K-H1-2", amount="7.25"),
]
LATE = [
    _april("D1", "OPV", 7, day=12),
    _april("D2", "DIS", 4, day=20),
    _april("D2", "OPV", 1, day=20),
    kiosk(org_code="H1", amount="30.00", occurred_at="2020-04-28T09:00:00+08:00"),
]


async def test_a_closed_month_keeps_its_figures_and_lists_what_changed_after(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    before_anything = datetime.now(UTC)
    await _post(collector, FIRST)
    await _counted(db, len(FIRST))

    # Close: only the admin, only an open month that has events; a bad month is 422.
    institution = await _issue_token(collector, "D1")
    close = "/v1/admin/months/2020-04/close"
    assert (await collector.post(close, headers={"Authorization": f"Bearer {institution}"})).status_code == 403
    assert (await collector.post("/v1/admin/months/2019-01/close", headers=admin_headers())).status_code == 404
    assert (await collector.post("/v1/admin/months/0000-01/close", headers=admin_headers())).status_code == 422
    assert (await collector.post("/v1/admin/months/2020-13/close", headers=admin_headers())).status_code == 422
    closed = await collector.post(close, headers=admin_headers())
    assert closed.status_code == 200, closed.text
    assert closed.json()["state"] == "closed"
    cutoff = datetime.fromisoformat(closed.json()["cutoff"])
    again = await collector.post(close, headers=admin_headers())
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    # The month is closed; its restatements are none yet.
    nothing = await _report(aggregator, "/v1/reports/restatements?month=2020-04")
    assert (nothing["restatements"], nothing["events_after_cutoff"]) == ([], 0)
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)  # the late events are received strictly after `between`

    await _post(collector, LATE)
    await _counted(db, len(FIRST) + len(LATE))
    everything = FIRST + LATE

    districts = "/v1/reports/uploads?month=2020-04&kind=district"
    live = await _report(aggregator, districts)
    frozen = await _report(aggregator, f"{districts}&as_of=closed")
    at_between = await _report(aggregator, f"{districts}&as_of={between.isoformat().replace('+00:00', 'Z')}")
    at_start = await _report(aggregator, f"{districts}&as_of={before_anything.isoformat().replace('+00:00', 'Z')}")
    later = (datetime.now(UTC) + timedelta(minutes=1)).astimezone(SHANGHAI).isoformat()  # +08:00, escaped
    at_now = await _report(aggregator, f"{districts}&as_of={later.replace('+', '%2B')}")

    expected_before = {org: _records(FIRST).get(org, 0) for org in ("D1", "D2")}
    expected_now = {org: _records(everything).get(org, 0) for org in ("D1", "D2")}
    assert _by_org(live, "records_uploaded") == expected_now
    assert _by_org(frozen, "records_uploaded") == expected_before
    assert _by_org(at_between, "records_uploaded") == expected_before
    assert _by_org(at_start, "records_uploaded") == {"D1": 0, "D2": 0}
    assert at_now == live  # every figure of every row, from the raw events as from the rollups
    assert _by_org(frozen, "uploaded_tables") == {org: _tables(FIRST).get(org, 0) for org in ("D1", "D2")}

    kiosks = await _report(aggregator, "/v1/reports/kiosks?month=2020-04&as_of=closed")
    h1 = next(r for r in kiosks if r["org_code"] == "H1")
    assert (h1["payments"], Decimal(h1["payment_amount"])) == _payments(FIRST)["H1"]
    csv = await aggregator.get("/v1/reports/kiosks?month=2020-04&as_of=closed&format=csv", headers=admin_headers())
    assert csv.status_code == 200 and "19.75" in csv.text and "49.75" not in csv.text

    # An institution keeps its scope: its own row, as frozen.
    own = await _report(aggregator, f"{districts}&as_of=closed", {"Authorization": f"Bearer {institution}"})
    assert [(r["org_code"], r["records_uploaded"]) for r in own] == [("D1", _records(FIRST)["D1"])]

    # Restatements: each changed cell, with the late events of its institution's stream.
    found = await _report(aggregator, "/v1/reports/restatements?month=2020-04")
    assert found["cutoff"] == closed.json()["cutoff"]
    assert found["events_after_cutoff"] == len(LATE)
    cells = {(c["report"], c["org_code"], c["field"]): c for c in found["restatements"]}
    late_uploads = {org: sum(1 for e in LATE if "table_code" in e and e["org_code"] == org) for org in ("D1", "D2")}
    for org in ("D1", "D2"):
        cell = cells[("uploads-district", org, "records_uploaded")]
        assert (cell["value_at_close"], cell["value_now"]) == (expected_before[org], expected_now[org])
        assert cell["events_after_cutoff"] == late_uploads[org]
    d2_tables = cells[("uploads-district", "D2", "uploaded_tables")]
    assert (d2_tables["value_at_close"], d2_tables["value_now"]) == (_tables(FIRST)["D2"], _tables(everything)["D2"])
    payments = cells[("kiosks", "H1", "payment_amount")]
    assert Decimal(payments["value_at_close"]) == _payments(FIRST)["H1"][1]
    assert Decimal(payments["value_now"]) == _payments(everything)["H1"][1]
    assert payments["events_after_cutoff"] == 1
    total = cells[("kiosks", None, "total.payments")]
    late_kiosk = sum(1 for e in LATE if "kiosk_id" in e)  # a total counts its stream's late events, all of them
    assert (total["value_at_close"], total["value_now"], total["events_after_cutoff"]) == (2, 3, late_kiosk)
    # Only what the late events touched changed: not the hospital uploads, nor the other streams.
    assert {(report, org) for report, org, _ in cells} == {
        ("uploads-district", "D1"),
        ("uploads-district", "D2"),
        ("kiosks", "H1"),
        ("kiosks", None),
    }
    as_d1 = {"Authorization": f"Bearer {institution}"}
    mine = await _report(aggregator, "/v1/reports/restatements?month=2020-04", as_d1)
    assert {(c["report"], c["org_code"]) for c in mine["restatements"]} == {("uploads-district", "D1")}
    assert mine["events_after_cutoff"] == late_uploads["D1"]

    # The gauges the alert reads: the late events of the closed month, and its changed cells.
    app: Any = aggregator.app  # type: ignore[attr-defined]
    await app.state.restated.refresh()
    registry = app.state.metrics.registry
    assert registry.get_sample_value("aggregator_closed_month_late_events", {"month": "2020-04"}) == len(LATE)
    assert registry.get_sample_value("aggregator_restated_cells", {"month": "2020-04"}) == len(cells)

    # The command line lists the same cells.
    runner = CliRunner()
    env = {"TELEMETRY_DATABASE_URL": stack_config.database_url}
    args = ["report", "restatements", "--month", "2020-04", "--format", "json"]
    done = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert done.exit_code == 0, done.output
    assert orjson.loads(done.stdout)["restatements"] == found["restatements"]
    for as_of, expected in (("closed", expected_before), (between.isoformat(), expected_before), (None, expected_now)):
        extra = ["--as-of", as_of] if as_of else []
        args = ["report", "uploads", "--month", "2020-04", "--kind", "district", "--format", "json", *extra]
        done = await asyncio.to_thread(runner.invoke, cli, args, env=env)
        assert done.exit_code == 0, done.output
        assert _by_org(orjson.loads(done.stdout), "records_uploaded") == expected
    args = ["report", "kiosks", "--month", "2020-04", "--as-of", "yesterday"]
    refused = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert refused.exit_code == 2 and "as_of must be" in refused.output
    assert cutoff <= datetime.fromisoformat(found["cutoff"])

    # The bulletin says which figures it shows, and the next month's lists April's restatements.
    await _post(collector, [upload(org_code="D1", uploaded_at="2020-05-02T10:00:00+08:00", business_date="2020-05-02")])
    await _counted(db, len(everything) + 1)
    may = await aggregator.get("/v1/reports/bulletin?month=2020-05", headers=admin_headers())
    assert may.status_code == 200
    assert 'data-cutoff="live"' in may.text and 'id="restatements"' in may.text and 'data-month="2020-04"' in may.text
    april = await aggregator.get("/v1/reports/bulletin?month=2020-04&as_of=closed", headers=admin_headers())
    assert april.status_code == 200 and 'data-cutoff="closed"' in april.text
    assert f"{cutoff.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}" in april.text
    at = await aggregator.get(
        "/v1/reports/bulletin", params={"month": "2020-04", "as_of": between.isoformat()}, headers=admin_headers()
    )
    assert at.status_code == 200 and 'data-cutoff="as_of"' in at.text
    assert 'id="restatements"' not in at.text  # April is this page's month, not an earlier one


async def test_as_of_answers_bad_inputs_in_the_one_error_shape(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    await _post(collector, [_april("D1", "OPV", 2)])
    await _counted(db, 1)
    reports = {
        "uploads": {"kind": "district"},
        "kiosks": {},
        "hotline": {},
        "appointments": {},
        "remote-platforms": {},
        "bulletin": {},
    }
    for report, extra in reports.items():
        path = f"/v1/reports/{report}"
        for bad in ("yesterday", "2020-05-01T00:00:00", "2020-05-01", "0000-01-01T00:00:00Z", "CLOSED", "closed "):
            params = {"month": "2020-04", "as_of": bad, **extra}
            answer = await aggregator.get(path, params=params, headers=admin_headers())
            assert answer.status_code == 422, (report, bad, answer.text)
            assert answer.json()["error"] == "invalid_request" and "as_of" in answer.json()["detail"], answer.text
        params = {"month": "2020-04", "as_of": "closed", **extra}
        open_month = await aggregator.get(path, params=params, headers=admin_headers())
        assert open_month.status_code == 409 and open_month.json()["error"] == "conflict", open_month.text
        unknown = await aggregator.get(path, params={**params, "month": "2019-01"}, headers=admin_headers())
        assert unknown.status_code == 404 and unknown.json()["error"] == "not_found", unknown.text
    # One figures-as-of computation at a time: another is answered 503 with Retry-After.
    app: Any = aggregator.app  # type: ignore[attr-defined]
    async with app.state.as_of_gate:
        busy = await aggregator.get(
            "/v1/reports/kiosks", params={"month": "2020-04", "as_of": "2020-05-01T00:00:00Z"}, headers=admin_headers()
        )
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "30", busy.text
    free = await aggregator.get(
        "/v1/reports/kiosks", params={"month": "2020-04", "as_of": "2020-05-01T00:00:00Z"}, headers=admin_headers()
    )
    assert free.status_code == 200
    assert (await aggregator.get("/v1/reports/restatements?month=2020-04", headers=admin_headers())).status_code == 409
    assert (await aggregator.get("/v1/reports/restatements?month=2019-01", headers=admin_headers())).status_code == 404
    assert (await aggregator.get("/v1/reports/restatements?month=2020-4", headers=admin_headers())).status_code == 422


async def test_every_report_is_frozen_for_every_reader_and_the_cli_closes(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    await _post(collector, [_april("D1", "OPV", 2), kiosk(org_code="H1")])
    await _counted(db, 2)
    runner = CliRunner()
    env = {"TELEMETRY_DATABASE_URL": stack_config.database_url}
    done = await asyncio.to_thread(runner.invoke, cli, ["months", "close", "2020-04"], env=env)
    assert done.exit_code == 0, done.output
    again = await asyncio.to_thread(runner.invoke, cli, ["months", "close", "2020-04"], env=env)
    assert again.exit_code == 2
    scopes = await db.fetch("SELECT report, org_scope FROM month_snapshots WHERE month = $1", APRIL)
    readers = {"", "D1", "D2", "H1"}  # the admin's view and each institution of the reference data
    assert {(r["report"], r["org_scope"]) for r in scopes} == {(name, s) for name in REPORTS for s in readers}
    for path in ("hotline", "appointments", "remote-platforms"):
        frozen = await _report(aggregator, f"/v1/reports/{path}?month=2020-04&as_of=closed")
        live = await _report(aggregator, f"/v1/reports/{path}?month=2020-04")
        assert frozen == live  # nothing came late: the frozen body is the live one, key order included

    # An institution added after the close has no frozen view; nor has a kind no report is frozen for.
    grown = {
        **REFERENCE,
        "institutions": [*REFERENCE["institutions"], {"org_code": "D9", "name": "新区", "kind": "district"}],
    }
    loaded = await collector.put("/v1/admin/reference", json=grown, headers=admin_headers())
    assert loaded.status_code == 201, loaded.text
    newcomer = await _issue_token(collector, "D9")
    await asyncio.sleep(1.0)  # the aggregator's token cache reloads on NOTIFY
    districts = "/v1/reports/uploads?month=2020-04&kind=district"
    late_view = await aggregator.get(f"{districts}&as_of=closed", headers={"Authorization": f"Bearer {newcomer}"})
    assert late_view.status_code == 404 and late_view.json()["error"] == "not_found", late_view.text
    assert (await aggregator.get(districts, headers={"Authorization": f"Bearer {newcomer}"})).status_code == 200
    other = await aggregator.get("/v1/reports/uploads?month=2020-04&kind=other&as_of=closed", headers=admin_headers())
    assert other.status_code == 404


async def test_figures_as_of_a_time_leave_the_connections_live_figures_alone(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """asyncpg keeps statements prepared per connection: the live query after an as_of one on the
    same connection must read the real rollups again, not the dropped temporary copies."""
    await load_reference(collector, admin_headers())
    await _post(collector, [_april("D1", "OPV", 6)])
    await _counted(db, 1)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await _post(collector, [_april("D1", "OPV", 5)])
    await _counted(db, 2)
    read = REPORTS["uploads-district"].read

    def d1(rows: Any) -> int:
        return int(_by_org(rows, "records_uploaded")["D1"])

    assert d1(await read(db, APRIL, None)) == 11
    for _ in range(2):
        async with rollups_as_of(db, middle, SHANGHAI) as folded:
            assert folded == 1
            assert d1(await read(db, APRIL, None)) == 6
        assert d1(await read(db, APRIL, None)) == 11
