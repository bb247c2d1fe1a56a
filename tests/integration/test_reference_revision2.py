"""Reference data of revision 2 on the real database: stored, versioned, read back, refused whole."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.contract.models import BalanceMetric, InstitutionKind, InstitutionLevel, Region, RemotePlatform
from services.storage.reference import load_snapshot
from tests.fixtures.events import REFERENCE
from tests.fixtures.reference import REVISION2_COLUMNS, revision2, with_row, write_folder
from tests.fixtures.stack import admin_headers

pytestmark = pytest.mark.integration


async def _put(collector: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await collector.put("/v1/admin/reference", json=body, headers=admin_headers())


async def test_a_revision2_set_round_trips_through_the_api(
    collector: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = revision2()
    first = await _put(collector, body)
    assert first.status_code == 201, first.text
    assert {k: first.json()[k] for k in ("platform_connections", "booking_platforms", "opening_balances")} == {
        "platform_connections": 4,
        "booking_platforms": 1,
        "opening_balances": 2,
    }
    assert first.json()["no_upload_days"] == 2
    again = await _put(collector, body)
    assert (again.status_code, again.json()["version"]) == (200, first.json()["version"])

    institutions = {r["org_code"]: dict(r) for r in await db.fetch("SELECT * FROM cur_institutions")}
    assert institutions["D1"] == {
        "org_code": "D1",
        "name": "甲区",
        "kind": "district",
        "level": "other",
        "region": "city",
        "city": "南京市",
        "district": "甲区",
    }
    assert (institutions["L1"]["kind"], institutions["L1"]["region"], institutions["L1"]["level"]) == (
        "hotline",
        None,
        None,
    )
    connections = await db.fetch(
        "SELECT platform, org_code, connected_on, disconnected_on FROM cur_platform_connections"
        " ORDER BY platform, org_code, connected_on"
    )
    assert [tuple(r) for r in connections] == [
        ("ecg", "H1", date(2018, 3, 1), None),
        ("ecg", "O1", date(2019, 1, 1), date(2019, 6, 1)),
        ("ecg", "O1", date(2020, 4, 10), None),
        ("lab", "H1", date(2019, 1, 1), date(2020, 4, 20)),
    ]
    balances = await db.fetch("SELECT metric, as_of, value FROM cur_opening_balances ORDER BY metric")
    assert [tuple(r) for r in balances] == [
        ("appointments", date(2020, 4, 1), 18882599),
        ("remote_consultations", date(2020, 1, 1), 90),
    ]
    assert [tuple(r) for r in await db.fetch("SELECT * FROM cur_booking_platforms")] == [
        ("wechat", "南京卫生12320微信平台")
    ]
    days = await db.fetch("SELECT day, reason FROM cur_no_upload_days ORDER BY day")
    assert [tuple(r) for r in days] == [(date(2020, 4, 5), "清明 platform maintenance"), (date(2020, 4, 6), "")]

    snapshot = await load_snapshot(db)
    assert snapshot.version == first.json()["version"]
    assert snapshot.kind_of("L1") is InstitutionKind.HOTLINE and snapshot.kind_of("nobody") is None
    other = snapshot.institution_info["O1"]
    assert (other.kind, other.level, other.region) == (InstitutionKind.OTHER, InstitutionLevel.SECONDARY, Region.METRO)
    assert snapshot.institution_info["D2"].region is Region.CITY  # empty region: the city (contract default)
    assert snapshot.booking_platforms == {"wechat"}
    assert snapshot.connected_at_month_end(RemotePlatform.ECG, date(2020, 4, 1)) == {"H1", "O1"}
    assert snapshot.connected_at_month_end(RemotePlatform.LAB, date(2020, 4, 1)) == frozenset()
    assert snapshot.is_connected(RemotePlatform.LAB, "H1", date(2020, 4, 19))
    assert not snapshot.is_connected(RemotePlatform.LAB, "H1", date(2020, 4, 20))
    assert not snapshot.is_connected(RemotePlatform.ECG, "O1", date(2020, 4, 9))
    assert not snapshot.is_connected(RemotePlatform.IMAGING, "H1", date(2020, 4, 9))
    balance = snapshot.opening_balance(BalanceMetric.APPOINTMENTS, date(2020, 4, 1))
    assert balance is not None and (balance.as_of, balance.value) == (date(2020, 4, 1), 18882599)
    assert snapshot.opening_balance(BalanceMetric.APPOINTMENTS, date(2020, 3, 1)) is None
    assert snapshot.no_upload_days == {date(2020, 4, 5), date(2020, 4, 6)}

    # Back to the v1 set: a new version in which revision 2's parts are empty; the old kept.
    v1 = await _put(collector, REFERENCE)
    assert (v1.status_code, v1.json()["version"]) == (201, first.json()["version"] + 1)
    assert await db.fetchval("SELECT count(*) FROM cur_platform_connections") == 0
    assert await db.fetchval("SELECT count(*) FROM ref_platform_connections") == 4
    assert await db.fetchval("SELECT count(*) FROM cur_institutions WHERE level IS NOT NULL") == 0


REFUSED = [
    ("unknown institution", with_row("platform_connections", 2, org_code="O9"), "platform_connections[2] org_code"),
    (
        "bad date",
        with_row("platform_connections", 0, connected_on="2020-02-30"),
        "platform_connections[0] connected_on",
    ),
    (
        "disconnected before connected",
        with_row("platform_connections", 1, disconnected_on="2018-06-01"),
        "platform_connections[1] disconnected_on",
    ),
    (
        "overlapping",
        with_row("platform_connections", 2, connected_on="2019-05-01"),
        "platform_connections[2]: O1 is connected to ecg from 2019-05-01",
    ),
    ("unknown platform", with_row("platform_connections", 0, platform="video"), "platform_connections[0] platform"),
    ("unknown metric", with_row("opening_balances", 1, metric="hotline_calls"), "opening_balances[1] metric"),
    ("bad month", with_row("opening_balances", 1, as_of="2020-1"), "opening_balances[1] as_of"),
    (
        "duplicate booking platform",
        revision2(booking_platforms=[{"platform_code": "w", "name": "甲"}, {"platform_code": "w", "name": "乙"}]),
        "booking_platforms[1]: duplicate platform_code w",
    ),
    (
        "duplicate no-upload day",
        revision2(no_upload_days=[{"date": "2020-04-05"}, {"date": "2020-04-05"}]),
        "no_upload_days[1]: duplicate date",
    ),
    ("unknown kind", with_row("institutions", 3, kind="call_centre"), "institutions[3] kind"),
    ("NUL in a district", with_row("institutions", 2, district="\x00"), "institutions[2] district"),
]


@pytest.mark.parametrize(("what", "body", "named"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_an_inconsistent_set_is_422_naming_the_row_and_changes_nothing(
    collector: httpx.AsyncClient, db: asyncpg.Connection, what: str, body: dict[str, Any], named: str
) -> None:
    good = await _put(collector, revision2())
    assert good.status_code == 201
    refused = await _put(collector, body)
    assert refused.status_code == 422, (what, refused.text)
    assert refused.json()["error"] == "invalid_request"
    assert any(p.startswith(named) for p in refused.json()["problems"]), refused.json()["problems"]
    assert await db.fetchval("SELECT version FROM reference_current") == good.json()["version"]
    assert await db.fetchval("SELECT count(*) FROM reference_versions") == 1


async def _cli(database_url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "TELEMETRY_DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli.main import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, " ".join(output.decode().split())


async def test_the_command_loads_a_revision2_folder_and_refuses_a_bad_one(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    write_folder(tmp_path / "good", revision2(), REVISION2_COLUMNS)
    code, output = await _cli(database_url, "reference", "load", str(tmp_path / "good"))
    assert code == 0, output
    assert "4 platform connections, 1 booking platforms, 2 opening balances, 2 no-upload days" in output
    version = await db.fetchval("SELECT version FROM reference_current")
    assert await db.fetchval("SELECT count(*) FROM cur_platform_connections WHERE disconnected_on IS NULL") == 2
    assert await db.fetchval("SELECT district FROM cur_institutions WHERE org_code = 'H1'") == "甲区"

    bad = revision2()
    bad["platform_connections"][0]["org_code"] = "H404"
    write_folder(tmp_path / "bad", bad, REVISION2_COLUMNS)
    code, output = await _cli(database_url, "reference", "load", str(tmp_path / "bad"))
    assert code != 0
    assert "platform_connections.csv line 2 org_code: unknown institution H404" in output
    assert await db.fetchval("SELECT version FROM reference_current") == version


async def test_the_migration_keeps_the_v1_kinds_and_checks_the_new_ones(db: asyncpg.Connection) -> None:
    version = await db.fetchval(
        "INSERT INTO reference_versions (checksum, source, institutions, tables, declarations, kiosks)"
        " VALUES ('x', 'test', 0, 0, 0, 0) RETURNING version"
    )
    insert = (
        "INSERT INTO ref_institutions (version, org_code, name, kind, level, region) VALUES ($1, $2, 'n', $3, $4, $5)"
    )
    for n, kind in enumerate(("district", "hospital", "hotline", "other")):
        await db.execute(insert, version, f"I{n}", kind, None, None)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(insert, version, "I9", "clinic", None, None)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(insert, version, "I9", "other", "grade-3", None)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO ref_platform_connections VALUES ($1, 'ecg', 'I0', '2020-04-02', '2020-04-01')", version
        )
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db.execute("INSERT INTO ref_platform_connections VALUES ($1, 'ecg', 'I404', '2020-04-02', NULL)", version)
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO ref_opening_balances VALUES ($1, 'appointments', '2020-04-02', 1)", version)
    granted = await db.fetchval(
        "SELECT has_table_privilege('grafana_reader', 'cur_platform_connections', 'SELECT')"
        " AND has_table_privilege('grafana_reader', 'ref_no_upload_days', 'SELECT')"
    )
    assert granted
