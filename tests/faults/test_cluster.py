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

import asyncio
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from services.collector.app import create_app as create_collector
from services.topics import MIN_INSYNC, check_topics, ensure_topics, event_topics
from tests.faults.harness import (
    BROKERS,
    CLUSTER_SERVICE_ENV,
    Load,
    Offsets,
    Pipeline,
    SpareCluster,
    finish_exact,
    log_dir_for,
    wait_until,
)
from tests.fixtures.events import load_reference, upload
from tests.fixtures.stack import ADMIN_TOKEN, StackConfig, admin_headers, aggregator_running, running

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# How long a fault is held under load before the cluster is healed; the soak holds it longer.
OUTAGE_S = float(os.environ.get("TELEMETRY_TEST_CLUSTER_OUTAGE_S", "6"))
TOPIC_SOURCE_OWN = 1  # DescribeConfigs config_source: the topic's own setting


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpareCluster]:
    """One cluster for the module, stopped at the end even if a test or the start failed."""
    spare = SpareCluster(tmp_path_factory.mktemp("cluster"), quick_start=True)
    try:
        spare.start()
        yield spare
    finally:
        spare.remove()


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
        described = await healthy.listed(topic, partitions)
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
        assert registry.get_sample_value("collector_kafka_topics_below_settings") == 1
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
        assert metrics.registry.get_sample_value("aggregator_kafka_topics_below_settings") == 1


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
        assert registry.get_sample_value("collector_kafka_topics_below_settings") == 0

        async def forwarded() -> bool:
            return registry.get_sample_value("collector_spool_events") == 0

        await wait_until(forwarded, "the spool forwarded", 60, every_s=0.2)
    offsets = Offsets(healthy.bootstrap, config.events_topic, config.consumer_group)
    await offsets.start()
    try:
        assert sum((await offsets.ends()).values()) == 1  # the request's one record (one institution)
    finally:
        await offsets.stop()


# -- faults ----------------------------------------------------------------------------------

# Four JVMs, a collector and up to three aggregators share two cores: a lighter load than the
# single-broker fault tests'.
RATE = float(os.environ.get("TELEMETRY_TEST_CLUSTER_RATE", "1000"))


@pytest_asyncio.fixture
async def pipeline(
    healthy: SpareCluster,
    database_url: str,
    names: tuple[str, str, str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> AsyncIterator[Pipeline]:
    """Collector and aggregators as processes, on the cluster, with this test's database and names."""
    events, dead_letters, group = names
    p = Pipeline(
        database_url=database_url,
        kafka_bootstrap=healthy.bootstrap,
        events_topic=events,
        dead_letter_topic=dead_letters,
        consumer_group=group,
        admin_token=ADMIN_TOKEN,
        log_dir=log_dir_for(request.node.name),
        spool_dir=tmp_path / "spool",
        extra_env=CLUSTER_SERVICE_ENV,
    )
    try:
        yield p
    finally:
        p.close()


def _load(p: Pipeline) -> Load:
    load = Load(p.collector.url, p.headers, events_per_s=RATE)
    load.start()
    return load


async def _leaders(cluster: SpareCluster, topic: str) -> dict[int, int] | None:
    """Partition -> leader, or None while the metadata cannot be read (a broker just went away)."""
    try:
        return await cluster.leaders(topic)
    except KafkaError:
        return None


async def _spool_events(p: Pipeline) -> float:
    return (await p.collector.metrics("collector_spool_events"))["collector_spool_events"]


async def test_leader_of_the_written_partitions_killed_under_load(
    healthy: SpareCluster, pipeline: Pipeline, db: asyncpg.Connection
) -> None:
    """SIGKILL of the broker leading most partitions of the events topic while events are written
    to all of them. Its partitions get new leaders from the in-sync replicas once the controller
    has fenced it; meanwhile the collector acknowledges from its spool. The broker comes back and
    catches up; every acknowledged event is counted once."""
    await pipeline.start("a")
    load = _load(pipeline)
    await asyncio.sleep(2)
    leaders = await healthy.leaders(pipeline.events_topic)
    victim, led = Counter(leaders.values()).most_common(1)[0]
    assert led >= 2, f"leaders not spread: {leaders}"
    killed = time.monotonic()
    await asyncio.to_thread(healthy.kill_broker, victim)

    async def moved() -> bool:
        now = await _leaders(healthy, pipeline.events_topic)
        return now is not None and all(leader not in (victim, -1) for leader in now.values())

    await wait_until(moved, f"every partition led by another broker than {victim}", 60, every_s=0.5)
    await asyncio.sleep(OUTAGE_S)
    assert load.acknowledged_since(killed) > 0, "nothing acknowledged after the leader was killed"
    await asyncio.to_thread(healthy.start_broker, victim)
    await healthy.wait_in_sync([pipeline.events_topic, pipeline.dead_letter_topic])
    await asyncio.sleep(1)
    await finish_exact(pipeline, load, db)


async def test_two_of_three_brokers_down_requests_go_to_the_spool_and_all_arrive(
    healthy: SpareCluster, pipeline: Pipeline, db: asyncpg.Connection
) -> None:
    """Brokers 2 and 3 SIGKILLed under load. Once the controller has fenced them, every partition's
    in-sync replicas are broker 1 alone, fewer than min.insync.replicas=2: broker 1 refuses every
    append (NotEnoughReplicas, in its log), nothing is forwarded, and the collector answers 202
    from its spool. When the two are back and in sync, the spool is forwarded and every
    acknowledged event is counted once."""
    await pipeline.start("a")
    load = _load(pipeline)
    await asyncio.sleep(2)
    survivor_log = healthy.broker_log(1)
    log_from = survivor_log.stat().st_size
    for n in (2, 3):
        await asyncio.to_thread(healthy.kill_broker, n)

    async def too_few_in_sync() -> bool:
        try:
            parts = await healthy.partitions(pipeline.events_topic)
        except KafkaError:
            return False
        return all(p["isr"] == [1] for p in parts)

    await wait_until(too_few_in_sync, "every partition in sync on broker 1 alone", 60, every_s=0.5)
    counters = ("collector_spooled_events_total", "collector_spool_forwarded_events_total")
    before = await pipeline.collector.metrics(*counters)
    acknowledged = load.acknowledged_count
    await asyncio.sleep(OUTAGE_S)
    after = await pipeline.collector.metrics(*counters)
    assert load.acknowledged_count > acknowledged, "nothing acknowledged while Kafka could not"
    assert after["collector_spooled_events_total"] > before["collector_spooled_events_total"]
    assert after["collector_spool_forwarded_events_total"] == before["collector_spool_forwarded_events_total"]
    with survivor_log.open("rb") as log:
        log.seek(log_from)
        refusals = log.read().decode("utf-8", "replace")
    assert f"min.isr requirement of 2 for partition {pipeline.events_topic}-" in refusals
    await asyncio.to_thread(healthy.start)
    await healthy.wait_in_sync([pipeline.events_topic, pipeline.dead_letter_topic])

    async def forwarded() -> bool:
        return await _spool_events(pipeline) == 0

    await wait_until(forwarded, "the spool forwarded to the cluster", 120, every_s=0.5)
    await finish_exact(pipeline, load, db)


async def test_rolling_restart_of_all_three_brokers_under_load(
    healthy: SpareCluster, pipeline: Pipeline, db: asyncpg.Connection
) -> None:
    """Each broker in turn stopped (controlled shutdown: it hands its leaderships over) and started
    again, the next one only once every replica (the consumer offsets' too) is back in sync."""
    await pipeline.start("a")
    load = _load(pipeline)
    await asyncio.sleep(2)
    topics = [pipeline.events_topic, pipeline.dead_letter_topic, "__consumer_offsets"]
    for n in BROKERS:
        restarted = time.monotonic()
        await asyncio.to_thread(healthy.stop_broker, n)
        await asyncio.to_thread(healthy.start_broker, n)
        await healthy.wait_in_sync(topics)
        assert load.acknowledged_since(restarted) > 0, f"nothing acknowledged while broker {n} restarted"
    await asyncio.sleep(1)
    await finish_exact(pipeline, load, db)


async def test_three_aggregators_two_killed_one_after_the_other(
    healthy: SpareCluster, pipeline: Pipeline, db: asyncpg.Connection
) -> None:
    """Three aggregators share the six partitions; one is SIGKILLed, and once the other two own all
    six, another: the last one carries everything, and every acknowledged event counts once."""
    await pipeline.start("a", "b", "c")
    load = _load(pipeline)

    def owners() -> dict[str, list[int]]:
        return {s.name: s.assigned_partitions() for s in pipeline.aggregators.values() if s.alive()}

    async def shared_by_all() -> bool:
        owned = owners()
        every = sorted(p for ps in owned.values() for p in ps)
        return every == list(range(6)) and all(owned.values())

    await wait_until(shared_by_all, "the six partitions shared by the three aggregators", 60, every_s=0.5)
    for name in ("a", "b"):
        await pipeline.aggregator(name).kill()
        await wait_until(shared_by_all, f"the partitions of {name} given to the others", 60, every_s=0.5)
    assert list(owners()) == ["c"]
    await asyncio.sleep(1)
    await finish_exact(pipeline, load, db)
