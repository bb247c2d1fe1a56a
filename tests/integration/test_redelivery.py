"""Redelivery after an aggregator restart, a rewound group, a recreated topic and dead letters: counted once."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from services.aggregator.deadletters import read_dead_letters, replay_dead_letters
from services.collector.app import create_app as create_collector
from tests.fixtures.cli import run_telemetry
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import (
    StackConfig,
    admin_headers,
    aggregator_running,
    cloned_database,
    count_events,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


async def _records_uploaded(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("SELECT coalesce(sum(records), 0) FROM upload_daily"))


async def _rewind_group_to_zero(config: StackConfig) -> None:
    """Commit offset 0 for every partition, as if Kafka had lost the group's progress."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka_bootstrap, group_id=config.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(config.events_topic, p) for p in range(config.aggregator_settings().events_partitions)]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


async def test_restart_with_rewound_offsets_counts_each_event_once(
    stack_config: StackConfig, collector: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    events = [upload(record_count=n + 1, org_code=("D1", "D2", "H1")[n % 3]) for n in range(300)]
    expected = sum(e["record_count"] for e in events)
    response = await collector.post("/v1/uploads", json={"events": events}, headers=admin_headers())
    assert response.status_code == 202

    async def all_stored() -> bool:
        return await count_events(db) == 300

    async with aggregator_running(stack_config):
        await wait_for(all_stored, "first pass applied")
    assert await _records_uploaded(db) == expected

    # Kafka forgets the group's progress: the restarted aggregator must seek to the offsets
    # stored with the rows, so nothing is applied twice.
    await _rewind_group_to_zero(stack_config)
    more = [upload(record_count=1000)]
    assert (await collector.post("/v1/uploads", json={"events": more}, headers=admin_headers())).status_code == 202
    async with aggregator_running(stack_config):

        async def new_one_stored() -> bool:
            return await count_events(db) == 301

        await wait_for(new_one_stored, "second pass applied")
        await asyncio.sleep(0.5)
    assert await _records_uploaded(db) == expected + 1000

    # Even with the stored offsets gone too, the event keys keep every event counted once.
    await db.execute("DELETE FROM consumer_offsets")
    await _rewind_group_to_zero(stack_config)
    async with aggregator_running(stack_config) as client:
        metrics_app = client.app  # type: ignore[attr-defined]

        async def replayed() -> bool:
            applied = metrics_app.state.metrics.registry.get_sample_value("aggregator_events_duplicate_total")
            return bool(applied and applied >= 301)

        await wait_for(replayed, "full replay seen as duplicates")
    assert await _records_uploaded(db) == expected + 1000
    assert await db.fetchval("SELECT count(*) FROM upload_events") == 301


async def test_undecodable_record_goes_to_the_dead_letter_topic_and_consumption_continues(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(stack_config.events_topic, b"\xff not json", key=b"D1")
        bad_event = {"v": 1, "type": "upload", "received_at": "2020-04-01T00:00:00+00:00", "events": [{"x": 1}]}
        await producer.send_and_wait(stack_config.events_topic, orjson.dumps(bad_event), key=b"D1")
    finally:
        await producer.stop()
    assert (await collector.post("/v1/uploads", json=upload(), headers=admin_headers())).status_code == 202

    async def good_one_stored() -> bool:
        return await count_events(db) == 1

    await wait_for(good_one_stored, "valid event after the poison records")
    consumer = AIOKafkaConsumer(
        stack_config.dead_letter_topic, bootstrap_servers=stack_config.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got = await consumer.getmany(timeout_ms=5000)
        letters = [orjson.loads(r.value) for records in got.values() for r in records]
    finally:
        await consumer.stop()
    assert sorted(letter["reason"] for letter in letters) == ["invalid_event", "undecodable"]
    assert all(letter["origin"]["topic"] == stack_config.events_topic for letter in letters)


async def test_dead_letters_are_listed_and_replayed_once_their_cause_is_fixed(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap)
    await producer.start()
    try:
        # An event the aggregator refuses today (a field it does not know) ...
        event = upload(event_id="was-dead", record_count=7)
        bad = {"v": 1, "type": "upload", "received_at": "2020-04-01T00:00:00+00:00", "events": [{**event, "extra": 1}]}
        await producer.send_and_wait(stack_config.events_topic, orjson.dumps(bad), key=b"D1")
    finally:
        await producer.stop()

    async def dead_lettered() -> bool:
        letters = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
        return len(letters) == 1

    await wait_for(dead_lettered, "the event is dead-lettered")
    [letter] = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
    assert (letter.reason, letter.event_type, letter.replayable) == ("invalid_event", "upload", True)
    assert "extra" in letter.detail

    # ... is repaired (here: by an operator fixing the letter) and replayed: counted once.
    fixed = replace(letter, event={k: v for k, v in letter.event.items() if k != "extra"})
    assert await replay_dead_letters(stack_config.kafka_bootstrap, stack_config.events_topic, [fixed, fixed]) == 2

    async def counted() -> bool:
        return await count_events(db) == 1

    await wait_for(counted, "the replayed event is counted")
    await asyncio.sleep(0.3)
    assert await db.fetchval("SELECT sum(records) FROM upload_daily") == 7


async def test_an_event_the_database_refuses_is_dead_lettered_and_the_rest_applied(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    # Fault injection in the real database: refuse one event with a data error (SQLSTATE 22003),
    # as an out-of-range value would be.
    await db.execute(
        """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.event_id = 'poison' THEN
               RAISE EXCEPTION 'value out of range' USING ERRCODE = '22003';
             END IF;
             RETURN NEW;
           END $$;
           CREATE TRIGGER refuse_poison BEFORE INSERT ON upload_events
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();"""
    )
    events = [
        upload(event_id="before", record_count=1),
        upload(event_id="poison"),
        upload(event_id="after", record_count=2),
    ]
    assert (await collector.post("/v1/uploads", json={"events": events}, headers=admin_headers())).status_code == 202
    later = upload(org_code="D2", event_id="later", record_count=4)
    assert (await collector.post("/v1/uploads", json=later, headers=admin_headers())).status_code == 202

    async def applied() -> bool:
        return await count_events(db) == 3 and await db.fetchval("SELECT count(*) FROM upload_events") == 3

    await wait_for(applied, "the good events applied around the refused one")
    assert await db.fetchval("SELECT sum(records) FROM upload_daily") == 1 + 2 + 4
    letters = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
    assert [(letter.reason, letter.event["event_id"]) for letter in letters] == [("unstorable", "poison")]


async def _delete_topic(config: StackConfig) -> None:
    """Delete the events topic and wait until the broker no longer lists it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=config.kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([config.events_topic])

        async def gone() -> bool:
            return config.events_topic not in set(await admin.list_topics())

        await wait_for(gone, "events topic deleted")
    finally:
        await admin.close()


async def _post_requests(config: StackConfig, bodies: list[list[dict[str, object]]]) -> None:
    """Post each body as one request through a collector of its own (which creates the topics)."""
    app = create_collector(config.collector_settings(), CollectorRegistry())
    async with running(app, "http://collector") as client:
        await wait_for(lambda: _collector_ready(client), "collector ready")
        await load_reference(client, admin_headers())
        for events in bodies:
            response = await client.post("/v1/uploads", json={"events": events}, headers=admin_headers())
            assert response.status_code == 202, response.text


async def _collector_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).json()["kafka"] == "ok"


async def test_a_recreated_topic_is_read_from_its_start_and_nothing_is_counted_twice(
    stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    # Five requests for one institution: its partition's stored offset becomes 5.
    first = [[upload(org_code="D1", record_count=1)] for _ in range(5)]
    await _post_requests(stack_config, first)
    async with aggregator_running(stack_config):

        async def first_applied() -> bool:
            return await count_events(db) == 5

        await wait_for(first_applied, "first topic applied")

    # The topic is deleted and created again: its offsets start at 0, below the stored 5.
    await _delete_topic(stack_config)
    resent = first[0]
    new = [upload(org_code="D1", record_count=100), upload(org_code="D1", record_count=1000)]
    await _post_requests(stack_config, [new, resent])
    async with aggregator_running(stack_config) as client:
        metrics = client.app.state.metrics  # type: ignore[attr-defined]

        async def second_applied() -> bool:
            return await count_events(db) == 7

        await wait_for(second_applied, "the recreated topic's new events applied, not skipped as stale")
        resets = metrics.registry.get_sample_value("aggregator_offset_resets_total", {"reason": "ahead_of_log"})
        assert resets == 1
        await asyncio.sleep(0.5)
    assert await _records_uploaded(db) == 5 + 100 + 1000


async def test_a_database_without_stored_offsets_reads_the_topic_from_its_start(
    stack_config: StackConfig, template_db: str, db: asyncpg.Connection
) -> None:
    events = [upload(org_code=("D1", "D2", "H1")[n % 3], record_count=n + 1) for n in range(30)]
    await _post_requests(stack_config, [events])
    async with aggregator_running(stack_config):

        async def applied() -> bool:
            return await count_events(db) == 30

        await wait_for(applied, "applied into the first database")

    # Same group, so Kafka holds committed offsets at the topic's end; but this database has
    # never applied anything and must get every event, not start where Kafka says.
    async with cloned_database(template_db, "t2") as other_url:
        other = replace(stack_config, database_url=other_url)
        other_db = await asyncpg.connect(other_url)
        try:
            async with aggregator_running(other):

                async def all_there() -> bool:
                    return await count_events(other_db) == 30

                await wait_for(all_there, "every event applied into the second database")
            assert await _records_uploaded(other_db) == sum(int(e["record_count"]) for e in events)
        finally:
            await other_db.close()


async def _wait_applied_command(config: StackConfig, *args: str) -> tuple[int, str]:
    env = {
        "TELEMETRY_DATABASE_URL": config.database_url,
        "TELEMETRY_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        "TELEMETRY_EVENTS_TOPIC": config.events_topic,
    }
    return await run_telemetry("wait-applied", *args, env=env, unset=["TELEMETRY_CONSUMER_GROUP"])


async def test_wait_applied_follows_the_group_it_is_given(stack_config: StackConfig, db: asyncpg.Connection) -> None:
    await _post_requests(stack_config, [[upload(org_code=org) for org in ("D1", "D2", "H1")]])
    async with aggregator_running(stack_config):

        async def applied() -> bool:
            return await count_events(db) == 3

        await wait_for(applied, "events applied")
    group = stack_config.consumer_group
    code, output = await _wait_applied_command(stack_config, "--group", group, "--timeout-s", "20")
    assert code == 0, output
    # The default group (the demo stack's aggregators) has applied nothing from this topic.
    code, output = await _wait_applied_command(stack_config, "--timeout-s", "1")
    assert code != 0 and "did not catch up" in output, output


async def test_a_topic_recreated_under_a_running_aggregator_is_read_from_its_start(
    stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    first = [[upload(org_code="H1", record_count=1)] for _ in range(4)]
    await _post_requests(stack_config, first)
    async with aggregator_running(stack_config):

        async def first_applied() -> bool:
            return await count_events(db) == 4

        await wait_for(first_applied, "first topic applied")
        await _delete_topic(stack_config)
        await _post_requests(stack_config, [[upload(org_code="H1", record_count=7)], first[1]])

        async def second_applied() -> bool:
            return await count_events(db) == 5

        await wait_for(second_applied, "the recreated topic's new event applied by the running aggregator")
        await asyncio.sleep(0.5)
    assert await _records_uploaded(db) == 4 + 7


async def test_a_batch_retried_after_database_errors_sends_its_dead_letters_once(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await load_reference(collector, admin_headers())
    metrics = aggregator.app.state.metrics  # type: ignore[attr-defined]
    registry = metrics.registry

    def db_errors() -> float:
        return registry.get_sample_value("aggregator_db_errors_total", {"error_type": "UndefinedTableError"}) or 0.0

    # Every batch transaction fails (and is retried each second) while the table is away.
    await db.execute("ALTER TABLE rollup_settings RENAME TO rollup_settings_away")
    try:
        producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(stack_config.events_topic, b"\xff not json", key=b"D1")
        finally:
            await producer.stop()
        assert (await collector.post("/v1/uploads", json=upload(), headers=admin_headers())).status_code == 202

        async def retried() -> bool:
            return db_errors() >= 3

        await wait_for(retried, "the batch failed and was retried at least three times")
    finally:
        await db.execute("ALTER TABLE rollup_settings_away RENAME TO rollup_settings")

    async def applied() -> bool:
        return await count_events(db) == 1

    await wait_for(applied, "the batch applied once the table is back")
    letters = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
    assert [letter.reason for letter in letters] == ["undecodable"]
    assert registry.get_sample_value("aggregator_dead_letters_total", {"reason": "undecodable"}) == 1


async def test_a_record_too_big_for_a_dead_letter_is_cut_and_consumption_goes_on(
    stack_config: StackConfig, collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A dead letter the broker refused (over the topic's message limit) was retried for ever,
    stalling every partition polled with it."""
    await load_reference(collector, admin_headers())
    # 3.9 MiB of bytes that are not UTF-8: as text each becomes U+FFFD, three bytes, so the
    # letter would carry ~11.7 MB against the dead-letter topic's 4 MiB.
    poison = b"\xff" * (3_900 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=stack_config.kafka_bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        await producer.send_and_wait(stack_config.events_topic, poison, key=b"D1")
    finally:
        await producer.stop()
    after = upload(org_code="D1")
    assert (await collector.post("/v1/uploads", json=after, headers=admin_headers())).status_code == 202

    async def after_stored() -> bool:
        return await count_events(db) == 1

    await wait_for(after_stored, "the event behind the poison record applied")
    [letter] = await read_dead_letters(stack_config.kafka_bootstrap, stack_config.dead_letter_topic, 10)
    assert letter.reason == "undecodable"
    assert letter.truncated is not None and letter.truncated["record_bytes"] == len(poison)
    assert letter.origin["topic"] == stack_config.events_topic
    assert letter.record is not None and 0 < len(letter.record.encode()) <= 1024 * 1024


async def test_kafka_clients_that_fail_for_good_are_replaced_and_nothing_is_counted_twice(
    stack_config: StackConfig, collector: httpx.AsyncClient, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka's group coordination can end on an error of its own (seen in the three-broker
    fault test: a write to a connection a dying broker had closed), after which every poll
    raises it. The aggregator replaces its clients and carries on from the stored offsets."""
    await load_reference(collector, admin_headers())
    first = [upload(record_count=n + 1, org_code=("D1", "D2", "H1")[n % 3]) for n in range(300)]
    second = [upload(record_count=1000 + n, org_code=("D1", "H1")[n % 2]) for n in range(100)]
    expected = sum(e["record_count"] for e in first + second)
    assert (await collector.post("/v1/uploads", json={"events": first}, headers=admin_headers())).status_code == 202
    failing = {"armed": False}
    getmany = AIOKafkaConsumer.getmany

    async def coordination_failed_once(self: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> Any:
        if failing["armed"]:
            failing["armed"] = False
            raise KafkaError("Unexpected error during coordination RuntimeError('the handler is closed')")
        return await getmany(self, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", coordination_failed_once)
    async with aggregator_running(stack_config) as client:

        async def first_stored() -> bool:
            return await count_events(db) == 300

        async def all_stored() -> bool:
            return await count_events(db) == 400

        await wait_for(first_stored, "the first 300 applied")
        failing["armed"] = True
        response = await collector.post("/v1/uploads", json={"events": second}, headers=admin_headers())
        assert response.status_code == 202
        await wait_for(all_stored, "the next 100 applied by new clients")
        await asyncio.sleep(0.5)
        registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
        assert registry.get_sample_value("aggregator_kafka_client_restarts_total") == 1
        assert (await client.get("/readyz")).status_code == 200
    assert failing["armed"] is False
    assert await _records_uploaded(db) == expected
    assert await db.fetchval("SELECT count(*) FROM upload_events") == 400
