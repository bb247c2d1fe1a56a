"""The outage spool under real faults: many segments, a collector killed while forwarding, a
full disk over HTTP, and what a `503` after a send timeout means.

Runs brokers of its own (deploy/local/kafka.sh on free ports), so stopping them never
disturbs the other tests; the database is the test's own.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from services.collector.spool import Spool
from tests.faults.harness import Pipeline, SpareBroker, log_dir_for, reference_body
from tests.faults.long_outage import run_long_outage
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import (
    ADMIN_TOKEN,
    REPO,
    StackConfig,
    admin_headers,
    aggregator_running,
    count_events,
    free_port,
    running,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# Enough 1,000-event requests to fill several 1 MiB segments; the full-size run (500,000
# events) is `python -m tests.faults.long_outage`, recorded in docs/reliability.md.
OUTAGE_EVENTS = int(os.environ.get("TELEMETRY_TEST_OUTAGE_EVENTS", "60000"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[SpareBroker]:
    """A broker of this test's own, which it may kill."""
    spare = SpareBroker(tmp_path / "broker")
    spare.start()
    try:
        yield spare
    finally:
        spare.stop()


@pytest_asyncio.fixture
async def db_conn(stack_config: StackConfig) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database."""
    conn = await asyncpg.connect(stack_config.database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_long_outage_in_many_segments_and_a_collector_killed_while_forwarding_lose_nothing(
    stack_config: StackConfig, broker: SpareBroker, db_conn: asyncpg.Connection, request: pytest.FixtureRequest
) -> None:
    pipeline = Pipeline(
        database_url=stack_config.database_url,
        kafka_bootstrap=broker.bootstrap,
        events_topic=stack_config.events_topic,
        dead_letter_topic=stack_config.dead_letter_topic,
        consumer_group=stack_config.consumer_group,
        admin_token=ADMIN_TOKEN,
        log_dir=log_dir_for(request.node.name),
        spool_dir=stack_config.spool_dir,
        # Small segments: the spool of this short outage fills many, as a long one fills 64 MiB ones.
        extra_env={"TELEMETRY_SPOOL_SEGMENT_BYTES": str(1024 * 1024), "TELEMETRY_PUBLISH_TIMEOUT_S": "2"},
    )
    try:
        await pipeline.start("a")
        figures, result = await run_long_outage(pipeline, broker, db_conn, events=OUTAGE_EVENTS, min_segments=3)
    finally:
        pipeline.close()
    result.assert_exact()
    assert figures.segments_max >= 3
    assert figures.spooled_when_killed > 0, "the collector was killed only after the spool had drained"
    assert figures.acknowledged == figures.counted >= OUTAGE_EVENTS


async def test_a_503_after_a_send_timeout_means_resend_the_same_batch_and_it_counts_once(
    stack_config: StackConfig, broker: SpareBroker, db: asyncpg.Connection
) -> None:
    """What README and docs/contract-decisions.md promise about `503`: not acknowledged, the
    outcome of the events unknown (the broker may still take a send that timed out); resend the
    identical batch, and each event is counted once."""
    config = StackConfig(
        stack_config.database_url,
        stack_config.events_topic,
        stack_config.dead_letter_topic,
        stack_config.consumer_group,
        kafka_bootstrap=broker.bootstrap,
        spool_dir=stack_config.spool_dir,
    )
    # A spool too small for any batch: a send that times out can only be answered 503.
    app = create_collector(config.collector_settings(publish_timeout_s=1.0, spool_max_bytes=1024), CollectorRegistry())
    batch = [upload(org_code="D1", record_count=5) for _ in range(20)]
    async with running(app, "http://collector") as collector:

        async def ready() -> bool:
            return (await collector.get("/readyz")).json()["kafka"] == "ok"

        await load_reference(collector, admin_headers())
        await wait_for(ready, "collector ready on the spare broker", timeout_s=60)
        first = [upload(org_code="D1", record_count=5) for _ in range(3)]
        assert (await collector.post("/v1/uploads", json={"events": first}, headers=admin_headers())).status_code == 202

        broker_pid = int((broker.state_dir / "kafka.pid").read_text())
        os.kill(broker_pid, signal.SIGSTOP)  # the broker takes the request and does not answer
        try:
            refused = await collector.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "unavailable" and int(refused.headers["Retry-After"]) >= 1

        # The send that timed out is still delivered by the producer: the 503'd events arrive.
        await wait_for(lambda: _copies_on_topic(config, batch[0]["event_id"], 1), "the timed-out send", 60)

        # The client does what the 503 asks: the identical batch again.
        async def resent() -> bool:
            answer = await collector.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
            return answer.status_code == 202

        await wait_for(resent, "the resent batch acknowledged", 60)
        await wait_for(lambda: _copies_on_topic(config, batch[0]["event_id"], 2), "both copies on the topic", 60)

    async with aggregator_running(config):

        async def all_counted() -> bool:
            return await count_events(db) >= len(first) + len(batch)

        await wait_for(all_counted, "every event counted", 60)
        await asyncio.sleep(0.5)
    assert await count_events(db) == len(first) + len(batch)
    records = await db.fetchval("SELECT sum(records) FROM upload_daily")
    assert records == 5 * (len(first) + len(batch))


async def _copies_on_topic(config: StackConfig, event_id: str, at_least: int) -> bool:
    """Whether the topic holds `event_id` in at least that many records."""
    consumer = AIOKafkaConsumer(
        config.events_topic, bootstrap_servers=config.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        copies = 0
        polled = await consumer.getmany(timeout_ms=2000)
        for records in polled.values():
            copies += sum(1 for r in records if r.value is not None and f'"{event_id}"'.encode() in r.value)
        return copies >= at_least
    finally:
        await consumer.stop()


def _limit_file_size() -> None:
    # The kernel refuses writes past 1 MiB per file with EFBIG, as a full disk refuses them
    # with ENOSPC; Python ignores SIGXFSZ, so the write fails instead of killing the process.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))


def _spawn_with_small_files(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.collector"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_limit_file_size,  # noqa: PLW1509  (the child is a fresh interpreter)
    )


async def test_a_full_disk_answers_503_over_http_and_keeps_everything_acknowledged(
    stack_config: StackConfig, tmp_path: Path
) -> None:
    port = free_port()
    spool_dir = tmp_path / "spool"
    env = {
        **os.environ,
        # No broker listens here: every request goes to the spool.
        "TELEMETRY_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "TELEMETRY_DATABASE_URL": stack_config.database_url,
        "TELEMETRY_ADMIN_TOKEN": ADMIN_TOKEN,
        "TELEMETRY_EVENTS_TOPIC": stack_config.events_topic,
        "TELEMETRY_DEAD_LETTER_TOPIC": stack_config.dead_letter_topic,
        "TELEMETRY_COLLECTOR_PORT": str(port),
        "TELEMETRY_SPOOL_DIR": str(spool_dir),
        "TELEMETRY_LOG_LEVEL": "WARNING",
    }
    process = _spawn_with_small_files(env)
    acknowledged: list[dict[str, Any]] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            async def answers() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(answers, "collector process up", timeout_s=60)
            loaded = await client.put("/v1/admin/reference", json=reference_body(), headers=admin_headers())
            assert loaded.status_code in (200, 201), loaded.text
            refused = None
            for _ in range(200):
                batch = [upload(org_code="D01", record_count=1) for _ in range(500)]
                response = await client.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
                if response.status_code != 202:
                    refused = response
                    break
                acknowledged += batch
            assert refused is not None, "the disk never filled up"
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "unavailable" and int(refused.headers["Retry-After"]) >= 1
            assert acknowledged, "nothing was acknowledged before the disk filled up"
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Everything answered 202 is in the spool, whole, and nothing else.
    spool = Spool(spool_dir, max_bytes=1 << 30)
    spooled: list[bytes] = []
    while not spool.empty:
        batch_read = spool.read_batch(1000)
        spooled += [r.value for r in batch_read.records]
        spool.advance(batch_read)
    spool.close()
    ids = [event_id for value in spooled for event_id in _event_ids(value)]
    assert ids == [e["event_id"] for e in acknowledged]


def _event_ids(value: bytes) -> list[str]:
    import orjson

    return [e["event_id"] for e in orjson.loads(value)["events"]]
