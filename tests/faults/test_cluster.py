"""The platform on a real three-broker cluster: topics as durable as configured, and broker and
consumer-group faults under load.

The module starts one cluster of its own (three brokers and a KRaft controller through
deploy/local/kafka.sh with TELEMETRY_KAFKA_BROKERS=3, on free ports, in a pytest folder) and
stops it at the end, whatever happened; each test gets its own topics, consumer group and
database, and finds every broker running and in sync. The shared stack's broker is never used.

Topics: the services create theirs with the configured replication factor and
min.insync.replicas, and refuse to become ready on existing topics that are weaker (a topic of
replication factor 1, a min.insync.replicas below the setting, the broker's default included).

Faults, each ending with the exact check (harness.check_exact: every acknowledged event counted
once, in event_keys, the raw tables and every rollup, for every institution): the leader of the
partitions being written SIGKILLed; two of three brokers down, so that acks=all cannot be
satisfied and the collector acknowledges from its spool; a rolling restart of all three
brokers; three aggregators in one group, two of them SIGKILLed one after the other.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from services.topics import MIN_INSYNC, check_topics, ensure_topics, event_topics
from tests.faults.harness import (
    Offsets,
    SpareCluster,
    wait_until,
)
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import StackConfig, admin_headers, aggregator_running, running

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# How long a fault is held under load before the cluster is healed; the soak holds it longer.
OUTAGE_S = float(os.environ.get("TELEMETRY_TEST_CLUSTER_OUTAGE_S", "8"))
TOPIC_SOURCE_OWN = 1  # DescribeConfigs config_source: the topic's own setting


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpareCluster]:
    """One cluster for the module, stopped at the end even if a test or the start failed."""
    spare = SpareCluster(tmp_path_factory.mktemp("cluster"))
    try:
        spare.start()
        yield spare
    finally:
        spare.stop()


@pytest.fixture
def healthy(cluster: SpareCluster) -> Iterator[SpareCluster]:
    """The cluster with every broker running, before the test and after it (for the next one)."""
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.start()


@pytest.fixture
def names() -> tuple[str, str, str]:
    """Events topic, dead-letter topic and consumer group of this test alone."""
    tag = uuid.uuid4().hex[:10]
    return f"cluster.{tag}.events", f"cluster.{tag}.dead-letter", f"cluster-{tag}"


@pytest.fixture
def config(healthy: SpareCluster, database_url: str, names: tuple[str, str, str], tmp_path: Path) -> StackConfig:
    """In-process services' settings: this test's database and names, on the cluster."""
    events, dead_letters, group = names
    return StackConfig(database_url, events, dead_letters, group, healthy.bootstrap, tmp_path / "spool")


# -- topics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("replication", "min_insync"), [(3, 2), (1, 1)])
async def test_topics_are_created_with_the_configured_replication(
    healthy: SpareCluster, names: tuple[str, str, str], replication: int, min_insync: int
) -> None:
    """Replication factor and min.insync.replicas as configured, as the topic's own settings.

    (1, 1) matters on a cluster whose brokers default to min.insync.replicas=2: a topic of one
    copy that took the broker's default could never acknowledge a write.
    """
    events, dead_letters, _ = names
    created = await ensure_topics(healthy.bootstrap, event_topics(events, dead_letters, 6, replication, min_insync))
    assert sorted(created) == sorted([events, dead_letters])
    for topic, partitions in ((events, 6), (dead_letters, 1)):
        described = await healthy.partitions(topic)
        assert [len(p["replicas"]) for p in described] == [replication] * partitions
        assert await healthy.topic_config(topic, MIN_INSYNC) == (str(min_insync), TOPIC_SOURCE_OWN)


async def test_more_copies_than_brokers_is_a_problem_not_a_silent_single_copy(
    healthy: SpareCluster, names: tuple[str, str, str]
) -> None:
    events, dead_letters, _ = names
    problems = await check_topics(healthy.bootstrap, event_topics(events, dead_letters, 6, 4, 2))
    assert len(problems) == 2
    assert all("cannot be created with replication factor 4" in p for p in problems)
    assert (await healthy.leaders(events)) == {}


async def _readiness(client: httpx.AsyncClient) -> httpx.Response:
    """/readyz once the topics have been checked (in the background) and, on the collector, the
    reference data loaded."""
    answers: list[httpx.Response] = []

    async def checked() -> bool:
        answers.append(await client.get("/readyz"))
        body = answers[-1].json()
        return bool(body["topics"] != "not checked yet" and body.get("reference_version", 0) is not None)

    await wait_until(checked, "the topics checked", 60, every_s=0.2)
    return answers[-1]


async def test_topic_below_the_configured_replication_keeps_both_services_unready(
    healthy: SpareCluster, config: StackConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """An events topic of one copy and a dead-letter topic whose own min.insync.replicas is 1, made
    before the services start, while 3 copies (and so min.insync.replicas 2) are configured."""
    await healthy.create_topic(config.events_topic, 6, 1, {})
    await healthy.create_topic(config.dead_letter_topic, 1, 3, {MIN_INSYNC: "1"})
    expected = [
        f"topic {config.events_topic} has replication factor 1, below the configured 3 "
        "(TELEMETRY_EVENTS_REPLICATION_FACTOR)",
        f"topic {config.dead_letter_topic} has min.insync.replicas=1 (from the topic's own setting), "
        "below the configured 2 (TELEMETRY_EVENTS_MIN_INSYNC_REPLICAS)",
    ]
    caplog.set_level(logging.ERROR, logger="services.topics")
    registry = CollectorRegistry()
    settings = config.collector_settings(events_replication_factor=3)
    async with running(create_collector(settings, registry), "http://collector") as collector:
        await load_reference(collector, admin_headers())
        readiness = await _readiness(collector)
        assert readiness.status_code == 503
        assert readiness.json()["topics"] == "; ".join(expected)
        assert registry.get_sample_value("collector_kafka_topics_ok") == 0
        logged = [r for r in caplog.records if r.getMessage().startswith("kafka topics are less durable")]
        assert [getattr(r, "problems", None) for r in logged] == [expected]
        # Still acknowledged, from the spool: nothing goes to the weaker topic.
        batch = [upload(record_count=2) for _ in range(20)]
        answer = await collector.post("/v1/uploads", json={"events": batch}, headers=admin_headers())
        assert answer.status_code == 202, answer.text
        assert (await collector.get("/readyz")).json()["spooling"] is True
        assert registry.get_sample_value("collector_spool_events") == len(batch)

        async def forwarder_tried() -> bool:
            tried = registry.get_sample_value("collector_kafka_publish_errors_total", {"error_type": "not_connected"})
            return (tried or 0) >= 2  # the request's own attempt, then the spool forwarder's

        await wait_until(forwarder_tried, "the spool forwarder trying (and not publishing)", 30, every_s=0.1)
    offsets = Offsets(healthy.bootstrap, config.events_topic, config.consumer_group)
    await offsets.start()
    try:
        assert sum((await offsets.ends()).values()) == 0
    finally:
        await offsets.stop()

    async with aggregator_running(config, events_replication_factor=3) as aggregator:
        readiness = await _readiness(aggregator)
        assert readiness.status_code == 503
        assert readiness.json() == {"database": "ok", "consumer": "running", "topics": "; ".join(expected)}
        metrics = aggregator.app.state.metrics  # type: ignore[attr-defined]
        assert metrics.registry.get_sample_value("aggregator_kafka_topics_ok") == 0


async def test_min_insync_from_the_brokers_default_counts_and_a_fix_makes_it_ready(
    healthy: SpareCluster, config: StackConfig
) -> None:
    """Topics without a min.insync.replicas of their own take the brokers' default (2 here): below
    a configured 3, the collector is not ready and spools; once an operator sets the topics'
    min.insync.replicas to 3, the next check makes it ready and the spool is forwarded."""
    await healthy.create_topic(config.events_topic, 6, 3, {})
    await healthy.create_topic(config.dead_letter_topic, 1, 3, {})
    assert await healthy.topic_config(config.events_topic, MIN_INSYNC) == ("2", 4)  # 4: the broker's default
    registry = CollectorRegistry()
    settings = config.collector_settings(
        events_replication_factor=3, events_min_insync_replicas=3, kafka_topics_recheck_s=0.5
    )
    async with running(create_collector(settings, registry), "http://collector") as collector:
        await load_reference(collector, admin_headers())
        readiness = await _readiness(collector)
        assert readiness.status_code == 503
        for topic in (config.events_topic, config.dead_letter_topic):
            assert (
                f"topic {topic} has min.insync.replicas=2 (from the broker's default), below the configured 3"
                in readiness.json()["topics"]
            )
        batch = [upload(record_count=3) for _ in range(10)]
        assert (await collector.post("/v1/uploads", json={"events": batch}, headers=admin_headers())).status_code == 202
        assert registry.get_sample_value("collector_spool_events") == len(batch)

        for topic in (config.events_topic, config.dead_letter_topic):
            await healthy.set_topic_config(topic, {MIN_INSYNC: "3"})

        async def ready() -> bool:
            return (await collector.get("/readyz")).status_code == 200

        await wait_until(ready, "the collector ready once the topics are fixed", 60, every_s=0.2)
        assert (await collector.get("/readyz")).json()["topics"] == "ok"
        assert registry.get_sample_value("collector_kafka_topics_ok") == 1

        async def forwarded() -> bool:
            return registry.get_sample_value("collector_spool_events") == 0

        await wait_until(forwarded, "the spool forwarded", 60, every_s=0.2)
    offsets = Offsets(healthy.bootstrap, config.events_topic, config.consumer_group)
    await offsets.start()
    try:
        assert sum((await offsets.ends()).values()) == 1  # the request's one record (one institution)
    finally:
        await offsets.stop()
