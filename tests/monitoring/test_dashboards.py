"""The Grafana provisioning and dashboards: every file loads, every reference resolves, and
every SQL query runs as the read-only role on the demo month and returns the report's figures.

Grafana itself is not installed here (it is not in Debian); what Grafana would do with the
queries is reproduced: variables are resolved by running their own queries, then
interpolated as Grafana interpolates them for a PostgreSQL data source.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import yaml

from services.contract.models import InstitutionKind
from services.streams.kiosk.model import KioskReportRow
from services.streams.kiosk.report import kiosks_report
from services.streams.uploads.model import UploadReportRow
from services.streams.uploads.report import uploads_report
from tests.fixtures.demo import DEMO_MONTH
from tests.monitoring.sources import (
    DASHBOARDS_DIR,
    PROMETHEUS_UID,
    PROVISIONING_DIR,
    TIMESCALEDB_UID,
    Target,
    dashboards,
    panels,
    render,
    targets,
)

MONTH = DEMO_MONTH.strftime("%Y-%m")
DAYS_IN_MONTH = 30


async def read_as_grafana(conn: asyncpg.Connection, query: str, readonly: bool = True) -> list[asyncpg.Record]:
    """Run `query` with exactly the rights of the dashboards' role (in a transaction of its own)."""
    async with conn.transaction(readonly=readonly):
        await conn.execute("SET LOCAL ROLE grafana_reader")
        return list(await conn.fetch(query))


# --- files and references ------------------------------------------------------------------


def test_provisioning_names_the_data_sources_the_dashboards_use() -> None:
    config = yaml.safe_load((PROVISIONING_DIR / "datasources" / "telemetry.yml").read_text(encoding="utf-8"))
    sources = {d["uid"]: d for d in config["datasources"]}
    assert set(sources) == {PROMETHEUS_UID, TIMESCALEDB_UID}
    reader = sources[TIMESCALEDB_UID]
    assert reader["user"] == "grafana_reader"
    # The password comes from the environment, never from the repository.
    assert reader["secureJsonData"]["password"] == "$GRAFANA_READER_PASSWORD"
    used = {
        (t.get("datasource") or p.get("datasource") or {}).get("uid")
        for board in dashboards().values()
        for p in panels(board)
        for t in p.get("targets", [])
    }
    assert used == set(sources)
    providers = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "telemetry.yml").read_text(encoding="utf-8"))
    assert providers["providers"][0]["type"] == "file"


def test_dashboards_load_and_are_distinct() -> None:
    boards = dashboards()
    assert set(boards) == {"platform-health.json", "data-quality.json", "kiosks.json"}
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        ids = [p["id"] for p in panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in panels(board):
            assert panel["title"], f"{name}: a panel without title"
            assert panel["type"] == "row" or "gridPos" in panel
        # The JSON is kept as Grafana exports it: re-serialising changes nothing.
        text = (DASHBOARDS_DIR / name).read_text(encoding="utf-8")
        assert json.dumps(board, ensure_ascii=False, indent=2) + "\n" == text


def test_the_platform_dashboard_shows_the_spool() -> None:
    queries = " ".join(t.query for t in targets(PROMETHEUS_UID) if t.dashboard == "platform-health.json")
    for metric in ("collector_spool_events", "collector_spool_bytes", "collector_spool_oldest_age_seconds"):
        assert metric in queries


# --- SQL on the demo month ---------------------------------------------------------------


@dataclass
class Context:
    """The demo database and the report API's figures for the month."""

    conn: asyncpg.Connection
    uploads: dict[InstitutionKind, list[UploadReportRow]]
    kiosks: list[KioskReportRow]


Check = Callable[[Context, dict[str, Any], list[asyncpg.Record]], None]


def _by_org(rows: Sequence[asyncpg.Record]) -> dict[str, asyncpg.Record]:
    return {r["org_code"]: r for r in rows}


def _rate(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _kind(values: dict[str, Any]) -> InstitutionKind:
    return InstitutionKind(values["kind"])


def check_month_variable(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    months = [r["__value"] for r in rows]
    assert MONTH in months
    assert months == sorted(months, reverse=True)


def check_institution_variable(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    assert [r["__value"] for r in rows] == sorted(r.org_code for r in ctx.uploads[_kind(values)])
    assert all(r["__text"] for r in rows)


def check_kiosk_institution_variable(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    assert len(rows) == 47
    with_kiosks = {r.org_code for r in ctx.kiosks if r.org_code and r.kiosks > 0}
    assert {r["__value"] for r in rows} == with_kiosks


def check_grid(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    report = ctx.uploads[_kind(values)]
    names = {r.name: r for r in report}
    # Institution x day: every institution of the kind, every day of the month, once.
    assert len(rows) == len(report) * DAYS_IN_MONTH
    assert {(r["institution"], r["day"]) for r in rows} == {
        (name, day) for name in names for day in range(1, DAYS_IN_MONTH + 1)
    }
    for name, row in names.items():
        cells = [r["records"] for r in rows if r["institution"] == name]
        assert sum(1 for c in cells if c > 0) == row.upload_days, name
        assert sum(cells) == row.records_uploaded, name


def check_upload_days(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    assert {o: r["upload_days"] for o, r in _by_org(rows).items()} == {
        r.org_code: r.upload_days for r in ctx.uploads[_kind(values)]
    }


def check_daily_records(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    assert [r["day"] for r in rows] == [f"04-{d:02d}" for d in range(1, DAYS_IN_MONTH + 1)]
    assert sum(r["records"] for r in rows) == sum(r.records_uploaded for r in ctx.uploads[_kind(values)])


def check_coverage(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    got = {
        o: (
            r["uploaded_tables"],
            r["required_tables"],
            r["declared_tables"],
            _rate(r["table_coverage_rate"]),
            _rate(r["declared_coverage_rate"]),
        )
        for o, r in _by_org(rows).items()
    }
    assert got == {
        r.org_code: (
            r.uploaded_tables,
            r.required_tables,
            r.declared_tables,
            r.table_coverage_rate,
            r.declared_coverage_rate,
        )
        for r in ctx.uploads[_kind(values)]
    }


def check_conformance(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    assert {o: _rate(r["conformance_rate"]) for o, r in _by_org(rows).items()} == {
        r.org_code: r.conformance_rate for r in ctx.uploads[_kind(values)]
    }


def check_last_seen(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    orgs = {r.org_code for r in ctx.uploads[_kind(values)]}
    assert {r["org_code"] for r in rows} <= orgs
    assert {r["mode"] for r in rows} == {"realtime", "scheduled"}
    assert len({(r["org_code"], r["mode"]) for r in rows}) == len(rows)
    if _kind(values) is InstitutionKind.DISTRICT:
        assert len(rows) == 12 * 2  # every district uploads on both channels
    received = [r["last_received_at"] for r in rows]
    assert received == sorted(received)  # oldest (the most worrying) first


def _kiosk_rows(ctx: Context, values: dict[str, Any]) -> list[KioskReportRow]:
    return [r for r in ctx.kiosks if r.org_code in values["institution"]]


def check_kiosk_table(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    fields = ("kiosks", "registrations", "registration_amount", "payments", "payment_amount")
    assert {o: tuple(r[f] for f in fields) for o, r in _by_org(rows).items()} == {
        r.org_code: tuple(getattr(r, f) for f in fields) for r in _kiosk_rows(ctx, values)
    }


def check_kiosk_totals(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    (row,) = rows
    selected = _kiosk_rows(ctx, values)
    assert row["registrations"] == sum(r.registrations for r in selected)
    assert row["payments"] == sum(r.payments for r in selected)
    assert row["registration_amount"] == sum((r.registration_amount for r in selected), Decimal(0))
    assert row["payment_amount"] == sum((r.payment_amount for r in selected), Decimal(0))
    if len(selected) == 47:  # the bulletin's total (its printed .60 is a misprint)
        assert row["payment_amount"] == Decimal("185976917.64")


def check_kiosk_daily(ctx: Context, values: dict[str, Any], rows: list[asyncpg.Record]) -> None:
    # From the raw transactions, by local day: adds up to the monthly rollup.
    selected = _kiosk_rows(ctx, values)
    assert [r["day"] for r in rows] == [f"04-{d:02d}" for d in range(1, DAYS_IN_MONTH + 1)]
    assert sum(r["registrations"] for r in rows) == sum(r.registrations for r in selected)
    assert sum(r["payments"] for r in rows) == sum(r.payments for r in selected)


# Every SQL query of the dashboards has its expectation here (a new panel must add one).
CHECKS: dict[tuple[str, str], Check] = {
    ("data-quality.json", "variable month"): check_month_variable,
    ("data-quality.json", "variable institution"): check_institution_variable,
    ("data-quality.json", "Records per institution and day (a day counts when records > 0)"): check_grid,
    ("data-quality.json", "Upload days this month"): check_upload_days,
    ("data-quality.json", "Records received per day (selected institutions)"): check_daily_records,
    ("data-quality.json", "Table coverage 上传表覆盖率 and declared coverage 申明表覆盖率"): check_coverage,
    ("data-quality.json", "Conformance 实时数据与定时数据符合率"): check_conformance,
    ("data-quality.json", "Last event per channel (oldest first)"): check_last_seen,
    ("kiosks.json", "variable month"): check_month_variable,
    ("kiosks.json", "variable institution"): check_kiosk_institution_variable,
    ("kiosks.json", "Kiosk use per institution 自助智能医疗服务终端使用情况"): check_kiosk_table,
    ("kiosks.json", "Registrations 挂号"): check_kiosk_totals,
    ("kiosks.json", "Registration amount 挂号金额"): check_kiosk_totals,
    ("kiosks.json", "Payments 缴费"): check_kiosk_totals,
    ("kiosks.json", "Payment amount 缴费金额"): check_kiosk_totals,
    ("kiosks.json", "Transactions per day"): check_kiosk_daily,
}

SQL_TARGETS = targets(TIMESCALEDB_UID)


def test_every_sql_query_has_an_expectation() -> None:
    assert {(t.dashboard, t.panel) for t in SQL_TARGETS} == set(CHECKS)


@pytest.fixture(scope="module")
def context_factory(demo_db: asyncpg.Connection) -> Callable[[], Awaitable[Context]]:
    """The report API's figures of the demo month, read once."""
    cached: list[Context] = []

    async def build() -> Context:
        if not cached:
            uploads = {kind: await uploads_report(demo_db, DEMO_MONTH, kind, None) for kind in InstitutionKind}
            kiosks = await kiosks_report(demo_db, DEMO_MONTH, None)
            cached.append(Context(demo_db, uploads, kiosks))
        return cached[0]

    return build


async def _variables(ctx: Context, dashboard: str, kind: str, selection: list[str] | None) -> dict[str, Any]:
    """Resolve the dashboard's variables as Grafana would, "All" institutions unless `selection`."""
    values: dict[str, Any] = {"month": MONTH, "kind": kind}
    board = dashboards()[dashboard]
    for variable in board["templating"]["list"]:
        if variable["name"] == "institution":
            options = await read_as_grafana(ctx.conn, render(variable["query"], values, TIMESCALEDB_UID))
            values["institution"] = selection or [r["__value"] for r in options]
    return values


# The data-quality dashboard for either kind; the kiosk dashboard has no kind variable.
SQL_CASES = [
    pytest.param(t, kind, id=f"{t.id}-{kind}")
    for t in SQL_TARGETS
    for kind in ("district", "hospital")
    if t.dashboard == "data-quality.json" or kind == "district"
]


@pytest.mark.parametrize(("target", "kind"), SQL_CASES)
async def test_sql_query_returns_the_reports_figures(
    target: Target, kind: str, context_factory: Callable[[], Awaitable[Context]]
) -> None:
    ctx = await context_factory()
    values = await _variables(ctx, target.dashboard, kind, None)
    query = render(target.query, values, TIMESCALEDB_UID)
    assert "$" not in query
    rows = await read_as_grafana(ctx.conn, query)
    CHECKS[(target.dashboard, target.panel)](ctx, values, rows)


@pytest.mark.parametrize("target", [t for t in SQL_TARGETS if t.ref != "var"], ids=lambda t: t.id)
async def test_sql_query_for_one_institution(target: Target, context_factory: Callable[[], Awaitable[Context]]) -> None:
    """One institution chosen: 高淳区 (interface down 8-18 April) or 江苏省中医院 (kiosks)."""
    ctx = await context_factory()
    org = "D320118" if target.dashboard == "data-quality.json" else "H0001"
    values = await _variables(ctx, target.dashboard, "district", [org])
    rows = await read_as_grafana(ctx.conn, render(target.query, values, TIMESCALEDB_UID))
    if target.panel.startswith("Records per institution and day"):
        assert len(rows) == DAYS_IN_MONTH
        assert sum(1 for r in rows if r["records"] > 0) == 19
    ctx_one = Context(
        ctx.conn,
        {k: [r for r in v if r.org_code == org] for k, v in ctx.uploads.items()},
        ctx.kiosks,
    )
    if target.panel == "Last event per channel (oldest first)":
        assert {r["org_code"] for r in rows} == {org}
        return
    CHECKS[(target.dashboard, target.panel)](ctx_one, values, rows)


async def test_the_role_reads_nothing_else(demo_db: asyncpg.Connection) -> None:
    """grafana_reader: no token hashes, no audit, no writes."""
    for query in (
        "SELECT * FROM api_tokens",
        "SELECT * FROM admin_audit",
        "SELECT * FROM event_keys LIMIT 1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await read_as_grafana(demo_db, query)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await read_as_grafana(demo_db, "DELETE FROM upload_daily", readonly=False)
    # and the connection is itself again afterwards
    assert await demo_db.fetchval("SELECT current_user") == "telemetry"
