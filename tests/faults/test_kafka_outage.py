"""Kafka stopped while the collector runs: events are spooled (202), forwarded when it is back,
and counted once; 503 with Retry-After only when the spool is full; a collector killed while
spooling loses nothing it acknowledged.

Runs a throwaway broker of its own (other ports, its own state folder) through the
project's kafka.sh, so stopping it never disturbs the other tests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import (
    ADMIN_TOKEN,
    REPO,
    StackConfig,
    admin_headers,
    aggregator_running,
    count_events,
    free_port,
    port_from_env,
    running,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class Broker:
    """A second single-node broker controlled with deploy/local/kafka.sh."""

    def __init__(self, state_dir: Path, port: int, controller_port: int) -> None:
        self.bootstrap = f"127.0.0.1:{port}"
        self._env = {
            **os.environ,
            "TELEMETRY_KAFKA_BROKERS": "1",  # a single broker even where the cluster is asked for
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(controller_port),
            "KAFKA_STATE_DIR": str(state_dir),
            "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
        }

    def _run(self, action: str) -> None:
        done = subprocess.run(
            [str(REPO / "deploy/local/kafka.sh"), action],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"kafka.sh {action} failed:\n{done.stdout}\n{done.stderr}"

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        self._run("start")

    def stop(self) -> None:
        """SIGTERM and wait until it is gone."""
        self._run("stop")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker this test may stop and start."""
    port = port_from_env("TELEMETRY_TEST_SPARE_KAFKA_PORT")
    b = Broker(tmp_path / "kafka", port, controller_port=free_port())
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _config_on(broker: Broker, base: StackConfig) -> StackConfig:
    return StackConfig(
        base.database_url,
        base.events_topic,
        base.dead_letter_topic,
        base.consumer_group,
        kafka_bootstrap=broker.bootstrap,
        spool_dir=base.spool_dir,
    )


async def _count_applied(config: StackConfig, db: asyncpg.Connection, expected: int) -> None:
    async with aggregator_running(config):

        async def applied() -> bool:
            return await count_events(db) >= expected

        await wait_for(applied, f"{expected} distinct events stored", timeout_s=90)
        await asyncio.sleep(0.5)
    assert await count_events(db) == expected


async def test_broker_outage_is_spooled_then_forwarded_and_counted_once(
    broker: Broker, stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    config = _config_on(broker, stack_config)
    # A small spool, so the test also reaches "spool full".
    settings = config.collector_settings(publish_timeout_s=2.0, spool_max_bytes=40_000)
    registry = CollectorRegistry()
    app = create_collector(settings, registry)
    acknowledged: list[dict[str, Any]] = []
    async with running(app, "http://collector") as collector:

        async def ready() -> bool:
            return (await collector.get("/readyz")).json()["kafka"] == "ok"

        await load_reference(collector, admin_headers())
        await wait_for(ready, "collector ready on the spare broker", timeout_s=60)
        before = [upload(record_count=1) for _ in range(5)]
        assert (
            await collector.post("/v1/uploads", json={"events": before}, headers=admin_headers())
        ).status_code == 202
        acknowledged += before

        broker.stop()
        # The spool acknowledges while the broker is away: the collector stays ready.
        first_spooled = [upload(record_count=10) for _ in range(5)]
        response = await collector.post("/v1/uploads", json={"events": first_spooled}, headers=admin_headers())
        assert response.status_code == 202, response.text
        acknowledged += first_spooled
        readiness = await collector.get("/readyz")
        assert readiness.status_code == 200
        assert readiness.json() | {"reference_version": None} == {
            "kafka": "unreachable",
            "topics": "ok",  # checked when the collector connected, before the outage
            "spooling": True,
            "spool_has_room": True,
            "spool_forwarder": "running",
            "reference_version": None,
        }
        refused: list[dict[str, Any]] = []
        for _ in range(200):
            batch = [upload(record_count=10) for _ in range(20)]
            response = await collector.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
            if response.status_code == 503:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.json()["error"] == "unavailable"
                refused = batch
                break
            assert response.status_code == 202, response.text
            acknowledged += batch
        assert refused, "the spool never filled up"
        assert len(acknowledged) > 5, "nothing was spooled while the broker was down"
        assert registry.get_sample_value("collector_spool_events") == len(acknowledged) - 5
        # Full spool and no broker: it cannot acknowledge, so it is not ready.
        readiness = await collector.get("/readyz")
        assert (readiness.status_code, readiness.json()["spooling"], readiness.json()["spool_has_room"]) == (
            503,
            True,
            False,
        )

        broker.start()

        async def drained() -> bool:
            return registry.get_sample_value("collector_spool_events") == 0

        await wait_for(drained, "spool forwarded once the broker is back", timeout_s=90)
        # The client retries what was refused with the same event_ids; sent twice, counted once.
        for _ in range(2):
            response = await collector.post("/v1/uploads", json={"events": refused}, headers=admin_headers())
            assert response.status_code == 202
        acknowledged += refused

    await _count_applied(config, db, len(acknowledged))
    expected_records = sum(e["record_count"] for e in acknowledged)
    assert await db.fetchval("SELECT sum(records) FROM upload_daily") == expected_records


async def test_collector_killed_while_spooling_loses_nothing_acknowledged(
    broker: Broker, stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    config = _config_on(broker, stack_config)
    async with running(create_collector(config.collector_settings(), CollectorRegistry()), "http://c") as collector:
        await load_reference(collector, admin_headers())
    port = port_from_env("TELEMETRY_TEST_KILL_COLLECTOR_PORT")
    env = {
        **os.environ,
        "TELEMETRY_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
        "TELEMETRY_DATABASE_URL": config.database_url,
        "TELEMETRY_ADMIN_TOKEN": ADMIN_TOKEN,
        "TELEMETRY_EVENTS_TOPIC": config.events_topic,
        "TELEMETRY_DEAD_LETTER_TOPIC": config.dead_letter_topic,
        "TELEMETRY_COLLECTOR_PORT": str(port),
        "TELEMETRY_SPOOL_DIR": str(config.spool_dir),
        "TELEMETRY_PUBLISH_TIMEOUT_S": "1",
        "TELEMETRY_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "services.collector"], env=env, stderr=subprocess.DEVNULL)

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{url}/readyz")).json().get("reference_version") is not None
        except httpx.TransportError:
            return False

    first = spawn()
    acknowledged: list[dict[str, Any]] = []
    try:
        await wait_for(healthy, "collector process up", timeout_s=60)
        broker.stop()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(10):
                batch = [upload(record_count=3) for _ in range(50)]
                response = await client.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
                assert response.status_code == 202, response.text
                acknowledged += batch
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    broker.start()
    second = spawn()
    try:
        await wait_for(healthy, "collector process restarted", timeout_s=60)
        await _count_applied(config, db, len(acknowledged))
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert await db.fetchval("SELECT sum(records) FROM upload_daily") == 3 * len(acknowledged)
