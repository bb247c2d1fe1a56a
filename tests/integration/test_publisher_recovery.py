"""The collector's way back from failures of its own parts, on the real broker and database.

- An idempotent producer that fell out of step with the broker (out-of-order sequence, as
  after some leader changes) fails every later send for ever; the collector replaces it, and
  readiness follows the producer that actually sends.
- The spool forwarder, the only thing that drains the spool, is restarted when it fails, and
  readiness says so meanwhile.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from services.collector.metrics import CollectorMetrics
from services.collector.publisher import DurablePublisher, KafkaPublisher
from services.collector.spool import AsyncSpool, Spool, SpoolBatch
from services.contract.envelope import encode_records
from services.topics import ensure_topics, event_topics
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import (
    StackConfig,
    admin_headers,
    aggregator_running,
    count_events,
    running,
    stored_event_ids,
    wait_for,
)

pytestmark = pytest.mark.integration


def _desynchronise(producer: Any) -> None:
    """Put the producer's sequence numbers ahead of the broker's, as a lost in-flight batch would.

    The broker answers OUT_OF_ORDER_SEQUENCE_NUMBER to every later batch of this producer id:
    aiokafka cannot recover from that on its own.
    """
    numbers = producer._txn_manager._sequence_numbers
    assert numbers, "the producer has not sent anything yet"
    for tp in list(numbers):
        numbers[tp] += 7


async def test_a_producer_out_of_step_with_the_broker_is_replaced_and_nothing_is_lost(
    stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    registry = CollectorRegistry()
    app = create_collector(stack_config.collector_settings(publish_timeout_s=2.0), registry)
    posted: list[dict[str, Any]] = []
    async with running(app, "http://collector") as collector:

        async def ready() -> bool:
            return (await collector.get("/readyz")).json()["kafka"] == "ok"

        await load_reference(collector, admin_headers())
        await wait_for(ready, "collector ready")
        first = [upload(org_code="D1") for _ in range(10)]
        assert (await collector.post("/v1/uploads", json={"events": first}, headers=admin_headers())).status_code == 202
        posted += first

        broken = app.state.publisher.kafka._producer
        _desynchronise(broken)
        for _ in range(5):
            batch = [upload(org_code="D1") for _ in range(10)]
            response = await collector.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
            assert response.status_code == 202, response.text
            posted += batch

        async def replaced_and_drained() -> bool:
            producer = app.state.publisher.kafka._producer
            return producer is not None and producer is not broken and not app.state.publisher.spooling

        await wait_for(replaced_and_drained, "a new producer that delivers the spool", timeout_s=60)
        assert registry.get_sample_value("collector_kafka_producer_resets_total", {"reason": "fatal_error"}) == 1
        await wait_for(ready, "ready again on the new producer")

    async with aggregator_running(stack_config):

        async def all_counted() -> bool:
            return await count_events(db) >= len(posted)

        await wait_for(all_counted, f"{len(posted)} events counted", timeout_s=60)
        await asyncio.sleep(0.5)
    stored = set(await stored_event_ids(db))
    assert stored == {e["event_id"] for e in posted}


async def test_readiness_follows_a_producer_that_cannot_send(stack_config: StackConfig) -> None:
    registry = CollectorRegistry()
    app = create_collector(stack_config.collector_settings(publish_timeout_s=2.0), registry)
    async with running(app, "http://collector") as collector:
        await load_reference(collector, admin_headers())

        async def ready() -> bool:
            return (await collector.get("/readyz")).json()["kafka"] == "ok"

        await wait_for(ready, "collector ready")
        producer = app.state.publisher.kafka._producer
        # aiokafka's sender task stops for good after a fatal error; the broker still answers
        # metadata, which is all the old readiness check asked.
        producer._sender.sender_task.cancel()
        await asyncio.sleep(0.1)
        answer = await collector.get("/readyz")
        # Still ready (the spool acknowledges meanwhile), but not claiming a working Kafka.
        assert (answer.status_code, answer.json()["kafka"]) == (200, "unreachable")
        assert registry.get_sample_value("collector_kafka_producer_resets_total", {"reason": "sender_stopped"}) == 1
        await wait_for(ready, "ready again with a new producer", timeout_s=60)
        assert app.state.publisher.kafka._producer is not producer


class _FailingOnce(Spool):
    """A spool whose first read fails as no spool read should (a bug, an I/O error)."""

    failures = 0

    def read_batch(self, max_records: int, max_bytes: int = 8 << 20) -> SpoolBatch:
        if _FailingOnce.failures == 0:
            _FailingOnce.failures += 1
            raise RuntimeError("simulated failure inside the forwarder")
        return super().read_batch(max_records, max_bytes)


async def test_a_failed_forwarder_is_restarted_and_readiness_says_so(stack_config: StackConfig, tmp_path: Path) -> None:
    await ensure_topics(
        stack_config.kafka_bootstrap, event_topics(stack_config.events_topic, stack_config.dead_letter_topic, 6)
    )
    registry = CollectorRegistry()
    metrics = CollectorMetrics(registry)
    spool = _FailingOnce(tmp_path, max_bytes=1 << 20)
    # What an earlier run left in the spool, for the forwarder to send when it starts.
    records = encode_records("upload", [upload(org_code="D1") for _ in range(5)], datetime.now(UTC))
    spool.append(records)
    kafka = KafkaPublisher(stack_config.kafka_bootstrap, stack_config.events_topic, 5.0, metrics)
    publisher = DurablePublisher(kafka, AsyncSpool(spool), metrics, restart_delay_s=1.0)
    await publisher.start()
    try:
        seen_restarting = False

        async def drained() -> bool:
            nonlocal seen_restarting
            seen_restarting = seen_restarting or not publisher.forwarder_running
            # The spool empties in the advance's thread, before the forwarder counts what it sent.
            return spool.empty and registry.get_sample_value("collector_spool_forwarded_events_total") == 5

        await wait_for(drained, "the restarted forwarder drained the spool", timeout_s=60)
        assert seen_restarting
        assert publisher.forwarder_running
        assert registry.get_sample_value("collector_spool_forwarder_restarts_total") == 1
        assert registry.get_sample_value("collector_spool_forwarded_events_total") == 5
    finally:
        await publisher.stop()
