"""Kafka stopped while the collector runs: 503 with Retry-After, never 202; then counted once.

Runs a throwaway broker of its own (other ports, its own state folder) through the
project's kafka.sh, so stopping it never disturbs the other tests.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import REPO, StackConfig, admin_headers, aggregator_running, count_events, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.faults]


class Broker:
    """A second single-node broker controlled with deploy/local/kafka.sh."""

    def __init__(self, state_dir: Path, port: int) -> None:
        self.bootstrap = f"127.0.0.1:{port}"
        self._env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(port + 1),
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
    b = Broker(tmp_path / "kafka", port=int(os.environ.get("TELEMETRY_TEST_SPARE_KAFKA_PORT", "39092")))
    b.start()
    try:
        yield b
    finally:
        b.stop()


async def test_broker_outage_gives_503_with_retry_after_then_counts_once(
    broker: Broker, stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    config = StackConfig(
        stack_config.database_url,
        stack_config.events_topic,
        stack_config.dead_letter_topic,
        stack_config.consumer_group,
        kafka_bootstrap=broker.bootstrap,
    )
    app = create_collector(config.collector_settings(publish_timeout_s=2.0), CollectorRegistry())
    async with running(app, "http://collector") as collector:

        async def ready() -> bool:
            return (await collector.get("/readyz")).status_code == 200

        await load_reference(collector, admin_headers())
        await wait_for(ready, "collector ready on the spare broker", timeout_s=60)
        before = [upload(record_count=1) for _ in range(5)]
        assert (
            await collector.post("/v1/uploads", json={"events": before}, headers=admin_headers())
        ).status_code == 202

        broker.stop()
        during = [upload(record_count=10) for _ in range(5)]
        for _ in range(3):
            response = await collector.post("/v1/uploads", json={"events": during}, headers=admin_headers())
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"] == "unavailable"
        assert (await collector.get("/readyz")).status_code == 503

        broker.start()

        async def accepted_again() -> bool:
            response = await collector.post("/v1/uploads", json={"events": during}, headers=admin_headers())
            return response.status_code == 202

        await wait_for(accepted_again, "202 once the broker is back", timeout_s=60)

    async with aggregator_running(config):

        async def all_ten() -> bool:
            return await count_events(db) == 10

        await wait_for(all_ten, "10 distinct events stored", timeout_s=60)
    assert await db.fetchval("SELECT sum(records) FROM upload_daily") == 5 * 1 + 5 * 10
