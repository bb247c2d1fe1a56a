"""Months that are archived, the bounded key store, and receipts (issue 10), on the real broker and database.

Expected values come from what each test posted (a plain count or sum written here), never
from the services' own report code.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from services.aggregator.deadletters import read_dead_letters
from services.cli.main import app as cli
from services.storage.months import archive_due, close_month
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import StackConfig, admin_headers, count_events, wait_for

pytestmark = pytest.mark.integration

APRIL, MAY = date(2020, 4, 1), date(2020, 5, 1)


def _april(**fields: Any) -> dict[str, Any]:
    return upload(business_date="2020-04-10", uploaded_at="2020-04-10T10:00:00+08:00", **fields)


def _may(**fields: Any) -> dict[str, Any]:
    return upload(business_date="2020-05-10", uploaded_at="2020-05-10T10:00:00+08:00", **fields)


async def _post(collector: httpx.AsyncClient, events: list[dict[str, Any]], token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else admin_headers()
    return await collector.post("/v1/uploads", json={"events": events}, headers=headers)


async def _counted(db: asyncpg.Connection, n: int) -> None:
    async def enough() -> bool:
        return await count_events(db) >= n

    await wait_for(enough, f"{n} events counted")


async def _records(db: asyncpg.Connection, month: date) -> int:
    return int(await db.fetchval("SELECT coalesce(sum(records), 0) FROM upload_monthly_tables WHERE month = $1", month))


async def _issue_token(collector: httpx.AsyncClient, org_code: str) -> str:
    response = await collector.post("/v1/admin/tokens", json={"org_code": org_code}, headers=admin_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


async def test_a_resend_stamped_in_another_month_counts_once_in_the_first_copys_month(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    first = _april(event_id="moved-1", record_count=5)
    assert (await _post(collector, [first])).status_code == 202
    await _counted(db, 1)
    # The client resends with the time of sending: another month, same event_id.
    resend = _may(event_id="moved-1", record_count=5)
    marker = _may(event_id="after-resend", record_count=1)
    assert (await _post(collector, [resend, marker])).status_code == 202
    await _counted(db, 2)
    await asyncio.sleep(0.3)
    assert await count_events(db) == 2
    assert (await _records(db, APRIL), await _records(db, MAY)) == (5, 1)
    receipt = await aggregator.get("/v1/events/uploads/D1/moved-1", headers=admin_headers())
    assert receipt.status_code == 200 and receipt.json()["month"] == "2020-04", receipt.text


async def test_receipts_counted_duplicate_dead_lettered_unknown_and_only_ones_own(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    posted_at = datetime.now(UTC)
    event = _april(event_id="r-1", record_count=3)
    assert (await _post(collector, [event])).status_code == 202
    assert (await _post(collector, [event])).status_code == 202  # a duplicate
    # An event the aggregator refuses, put on the topic past the collector (a field it does not know).
    producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap)
    await producer.start()
    try:
        bad = _april(event_id="r-bad")
        record = {"v": 1, "type": "upload", "received_at": posted_at.isoformat(), "events": [{**bad, "extra": 1}]}
        await producer.send_and_wait(stack_config.events_topic, orjson.dumps(record), key=b"D1")
    finally:
        await producer.stop()
    await _counted(db, 1)

    async def dead() -> bool:
        answer = await aggregator.get("/v1/events/uploads/D1/r-bad", headers=admin_headers())
        return answer.status_code == 200

    await wait_for(dead, "the dead letter's receipt")

    counted = (await aggregator.get("/v1/events/uploads/D1/r-1", headers=admin_headers())).json()
    assert (counted["status"], counted["month"], counted["endpoint"]) == ("counted", "2020-04", "uploads")
    received, applied = datetime.fromisoformat(counted["received_at"]), datetime.fromisoformat(counted["applied_at"])
    assert posted_at - timedelta(seconds=1) <= received <= applied <= datetime.now(UTC)
    # The duplicate was not counted again: one receipt, the first copy's.
    assert await count_events(db) == 1 and await _records(db, APRIL) == 3

    dead_letter = (await aggregator.get("/v1/events/uploads/D1/r-bad", headers=admin_headers())).json()
    assert (dead_letter["status"], dead_letter["reason"]) == ("dead_lettered", "invalid_event")
    assert "extra" in dead_letter["detail"]

    unknown = await aggregator.get("/v1/events/uploads/D1/never-sent", headers=admin_headers())
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    other_stream = await aggregator.get("/v1/events/kiosk-transactions/D1/r-1", headers=admin_headers())
    assert other_stream.status_code == 404  # an event_id counts per endpoint
    assert (await aggregator.get("/v1/events/nothing/D1/r-1", headers=admin_headers())).status_code == 404

    own, other = await _issue_token(collector, "D1"), await _issue_token(collector, "D2")
    await asyncio.sleep(1.0)  # the aggregator's token cache reloads on NOTIFY
    mine = await aggregator.get("/v1/events/uploads/D1/r-1", headers={"Authorization": f"Bearer {own}"})
    assert mine.status_code == 200 and mine.json()["status"] == "counted"
    theirs = await aggregator.get("/v1/events/uploads/D1/r-1", headers={"Authorization": f"Bearer {other}"})
    assert theirs.status_code == 403

    # The command line answers the same.
    runner = CliRunner()
    env = {"TELEMETRY_DATABASE_URL": stack_config.database_url}
    done = await asyncio.to_thread(runner.invoke, cli, ["receipt", "uploads", "D1", "r-1"], env=env)
    assert done.exit_code == 0, done.output
    assert orjson.loads(done.stdout)["month"] == "2020-04"
    missing = await asyncio.to_thread(runner.invoke, cli, ["receipt", "uploads", "D1", "never-sent"], env=env)
    assert missing.exit_code == 1


async def test_an_archived_month_refuses_its_events_while_the_open_months_go_on(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    april = [_april(event_id=f"a-{n}", record_count=1) for n in range(5)]
    may = [_may(event_id=f"m-{n}", record_count=2) for n in range(5)]
    assert (await _post(collector, april + may)).status_code == 202
    await _counted(db, 10)

    archive = "/v1/admin/months/2020-04/archive"
    assert (await collector.post(archive, headers=admin_headers())).status_code == 409  # still open
    assert (await collector.post("/v1/admin/months/2019-01/archive", headers=admin_headers())).status_code == 404
    assert (await collector.post("/v1/admin/months/0000-01/archive", headers=admin_headers())).status_code == 422
    institution = await _issue_token(collector, "D1")
    assert (await collector.post(archive, headers={"Authorization": f"Bearer {institution}"})).status_code == 403
    await close_month(db, APRIL)
    answer = await collector.post(archive, headers=admin_headers())
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "archived"
    # The month's keys went with its partition; the other month's are all there.
    assert await db.fetchval("SELECT to_regclass('event_keys_2020_04')") is None
    assert await count_events(db) == 5
    months = (await collector.get("/v1/admin/months", headers=admin_headers())).json()
    assert [(m["month"], m["state"]) for m in months] == [("2020-04", "archived"), ("2020-05", "open")]

    # An event of the archived month: 422 at its moment field, whoever sends it; others still pass.
    refused = await _post(collector, [_may(event_id="m-new", record_count=4), _april(event_id="a-late")])
    assert refused.status_code == 422
    assert [(p["index"], p["field"], p["reason"]) for p in refused.json()["errors"]] == [
        (1, "uploaded_at", "month archived")
    ]
    resent = await _post(collector, [_april(event_id="a-0", record_count=1)])
    assert resent.status_code == 422
    assert (await _post(collector, [_may(event_id="m-new", record_count=4)])).status_code == 202
    await _counted(db, 6)
    assert await _records(db, MAY) == 5 * 2 + 4
    assert await _records(db, APRIL) == 5  # the archived month's figures stay as they were


async def test_the_aggregator_dead_letters_an_archived_months_event_that_got_through(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    assert (await _post(collector, [_april(event_id="a-1"), _may(event_id="m-1")])).status_code == 202
    await _counted(db, 2)
    await close_month(db, APRIL)
    assert (await collector.post("/v1/admin/months/2020-04/archive", headers=admin_headers())).status_code == 200
    # A record written before the archive (a spool drained late), put on the topic directly.
    producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap)
    await producer.start()
    try:
        late = {"v": 1, "type": "upload", "received_at": datetime.now(UTC).isoformat()}
        late["events"] = [_april(event_id="a-late", record_count=9), _may(event_id="m-2", record_count=1)]
        await producer.send_and_wait(stack_config.events_topic, orjson.dumps(late), key=b"D1")
    finally:
        await producer.stop()
    await _counted(db, 2)  # 'a-1' left with April's keys; 'm-1' and now 'm-2'

    async def dead() -> bool:
        return bool(await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10))

    await wait_for(dead, "the archived month's event dead-lettered")
    [letter] = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
    assert (letter.reason, letter.event["event_id"]) == ("month_archived", "a-late")
    assert "2020-04" in letter.detail
    await wait_for(lambda: _exists(db, "m-2"), "the May event of the same record applied")
    assert await _records(db, APRIL) == 10  # a-1 only
    receipt = (await aggregator.get("/v1/events/uploads/D1/a-late", headers=admin_headers())).json()
    assert (receipt["status"], receipt["reason"]) == ("dead_lettered", "month_archived")


async def _exists(db: asyncpg.Connection, event_id: str) -> bool:
    return bool(await db.fetchval("SELECT count(*) FROM upload_events WHERE event_id = $1", event_id))


async def test_a_month_archived_while_other_months_are_applied_counts_every_acknowledged_event_once(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    old = [_april(event_id=f"old-{n}", org_code=("D1", "D2", "H1")[n % 3]) for n in range(30)]
    assert (await _post(collector, old)).status_code == 202
    await _counted(db, 30)
    await close_month(db, APRIL)
    acknowledged: dict[tuple[str, str], int] = {}

    async def load() -> None:
        for batch in range(40):
            events = [
                _may(event_id=f"new-{batch}-{n}", org_code=("D1", "D2", "H1")[n % 3], record_count=n + 1)
                for n in range(50)
            ]
            if batch % 5 == 4:  # resend an acknowledged batch: counts once
                events = [{**e, "event_id": e["event_id"].replace(f"-{batch}-", f"-{batch - 1}-")} for e in events]
            answer = await _post(collector, events)
            assert answer.status_code == 202, answer.text
            for e in events:
                acknowledged[(e["org_code"], e["event_id"])] = e["record_count"]

    loading = asyncio.create_task(load())
    await asyncio.sleep(0.5)
    assert (await collector.post("/v1/admin/months/2020-04/archive", headers=admin_headers())).status_code == 200
    await loading
    await _counted(db, len(acknowledged))
    await asyncio.sleep(0.5)
    # Exact, per event: every acknowledged May event stored once, nothing else of May.
    rows = await db.fetch(
        "SELECT org_code, event_id, record_count FROM upload_events WHERE uploaded_at >= $1", MAY_START
    )
    stored = {(r["org_code"], r["event_id"]): r["record_count"] for r in rows}
    assert len(rows) == len(stored) == len(acknowledged)
    assert stored == acknowledged
    assert await count_events(db) == len(acknowledged)
    assert await _records(db, MAY) == sum(acknowledged.values())


MAY_START = datetime(2020, 4, 30, 16, tzinfo=UTC)


async def test_months_closed_longer_than_the_horizon_are_archived_and_the_rest_kept(db: asyncpg.Connection) -> None:
    now = datetime(2021, 6, 15, tzinfo=UTC)
    for month, closed in ((date(2020, 1, 1), now - timedelta(days=401)), (date(2020, 2, 1), now - timedelta(days=10))):
        await db.execute("SELECT ensure_month($1)", month)  # as the month's first event would
        await close_month(db, month, closed)
    await db.execute("SELECT ensure_month($1)", date(2020, 3, 1))  # open
    assert await archive_due(db, timedelta(days=400), now) == [date(2020, 1, 1)]
    states = dict(await db.fetch("SELECT month, state FROM months ORDER BY month"))
    assert states == {date(2020, 1, 1): "archived", date(2020, 2, 1): "closed", date(2020, 3, 1): "open"}
    assert await db.fetchval("SELECT to_regclass('event_keys_2020_01')") is None
    assert await db.fetchval("SELECT to_regclass('event_keys_2020_02')") is not None
    assert await archive_due(db, timedelta(days=400), now) == []
