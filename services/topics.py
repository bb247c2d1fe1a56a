"""The project's Kafka topics: created with explicit partitions, replication factor and
`min.insync.replicas` (auto-creation is off on the broker), and existing ones checked to be at
least that durable before a service calls itself ready.

A topic made by someone else, or by an earlier release that ignored the replication setting,
can be weaker than the settings promise: replication factor 1 on a three-broker cluster, or
`min.insync.replicas=1` (its own, or the broker's default), under which `acks=all` is satisfied
by the leader alone. Such a topic is never altered here (moving replicas is an operator's
decision); the problem is reported, by `/readyz`, a log line and a gauge, until it is fixed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidReplicationFactorError, KafkaError, TopicAlreadyExistsError, for_code

from services.settings import CommonSettings

log = logging.getLogger(__name__)

MIN_INSYNC = "min.insync.replicas"
# DescribeConfigs' config_source: where an effective value comes from (KIP-226).
_SOURCES = {
    1: "the topic's own setting",
    2: "the broker's setting",
    3: "the cluster's default",
    4: "the broker's default",
    5: "Kafka's default",
}
# Right after a topic is created, its metadata may not list the partitions yet.
_METADATA_ATTEMPTS = 20
_METADATA_WAIT_S = 0.25


@dataclass(frozen=True)
class TopicSpec:
    """A topic and how it is laid out."""

    name: str
    partitions: int
    config: dict[str, str]
    replication_factor: int = 1
    min_insync_replicas: int = 1


def event_topics(
    events_topic: str,
    dead_letter_topic: str,
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> list[TopicSpec]:
    """The events topic (keyed by org_code) and its dead-letter topic."""
    big = {"max.message.bytes": str(4 * 1024 * 1024)}
    return [
        TopicSpec(events_topic, partitions, big, replication_factor, min_insync_replicas),
        TopicSpec(dead_letter_topic, 1, big, replication_factor, min_insync_replicas),
    ]


@asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    # Closed whatever happens, a failed or cancelled start included.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="health-telemetry-admin")
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


def _new_topic(spec: TopicSpec) -> NewTopic:
    config = {**spec.config, MIN_INSYNC: str(spec.min_insync_replicas)}
    return NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=config)


async def _create_missing(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> tuple[list[str], dict[str, str]]:
    """Create the topics that do not exist: (names created, {name: why it cannot be created})."""
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return [], {}
    response = await admin.create_topics([_new_topic(s) for s in missing])
    created: list[str] = []
    problems: dict[str, str] = {}
    by_name = {s.name: s for s in missing}
    # The broker answers per topic; aiokafka raises nothing for these codes.
    for row in response.to_object()["topic_errors"]:
        name, code = row["topic"], row["error_code"]
        error = for_code(code)
        if code == 0:
            created.append(name)
        elif error is TopicAlreadyExistsError:
            # Another process created it between our list and create; checked below like any other.
            log.info("topic created concurrently", extra={"topic": name})
        elif error is InvalidReplicationFactorError:
            problems[name] = (
                f"topic {name} cannot be created with replication factor {by_name[name].replication_factor}: "
                f"{row.get('error_message') or 'the cluster has fewer brokers'}"
            )
        else:
            raise error(f"creating topic {name}: {row.get('error_message') or error.__name__}")
    if created:
        log.info("topics created", extra={"topics": created})
    return created, problems


async def _replication_factors(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """The smallest replica count among each topic's partitions."""
    for _ in range(_METADATA_ATTEMPTS):
        topics = await admin.describe_topics(names)
        factors = {t["topic"]: min((len(p["replicas"]) for p in t["partitions"]), default=0) for t in topics}
        if all(factors.get(n, 0) > 0 for n in names):
            return factors
        await asyncio.sleep(_METADATA_WAIT_S)
    return factors


async def _min_insync(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, str]]:
    """Each topic's effective min.insync.replicas (its own setting or the broker's default) and its source."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, n, {MIN_INSYNC: None}) for n in names]
    found: dict[str, tuple[int, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                error = for_code(resource["error_code"])
                raise error(f"describing topic {resource['resource_name']}: {resource['error_message'] or ''}")
            for entry in resource["config_entries"]:
                if entry["config_names"] == MIN_INSYNC:
                    source = _SOURCES.get(entry.get("config_source", 0), "the broker")
                    found[resource["resource_name"]] = (int(entry["config_value"]), source)
    return found


def layout_problems(
    specs: list[TopicSpec], factors: dict[str, int], min_insync: dict[str, tuple[int, str]]
) -> list[str]:
    """Each way the described topics are weaker than `specs` (pure, so it is tested without a broker)."""
    problems = []
    for spec in specs:
        factor = factors.get(spec.name, 0)
        if factor < spec.replication_factor:
            problems.append(
                f"topic {spec.name} has replication factor {factor}, below the configured "
                f"{spec.replication_factor} (TELEMETRY_EVENTS_REPLICATION_FACTOR)"
            )
        value, source = min_insync.get(spec.name, (0, "no answer from the broker"))
        if value < spec.min_insync_replicas:
            problems.append(
                f"topic {spec.name} has min.insync.replicas={value} (from {source}), below the configured "
                f"{spec.min_insync_replicas} (TELEMETRY_EVENTS_MIN_INSYNC_REPLICAS)"
            )
    return problems


async def ensure_topics(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet, with their replication settings; return the names created.

    Raises KafkaError when the broker cannot be reached or refuses for a reason other than the
    topic existing already. Whether existing topics are durable enough is `check_topics`'s job.
    """
    async with _admin(bootstrap) as admin:
        created, problems = await _create_missing(admin, specs)
    if problems:
        raise InvalidReplicationFactorError("; ".join(problems.values()))
    return created


async def check_topics(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create the missing topics, then say how the existing ones fall short of `specs` (empty: they don't).

    The replication factor is read from the metadata of every partition; `min.insync.replicas`
    with DescribeConfigs, which answers the effective value, the broker's default included.
    Raises KafkaError when the broker cannot be reached (the caller retries).
    """
    async with _admin(bootstrap) as admin:
        _, not_created = await _create_missing(admin, specs)
        problems = list(not_created.values())
        present = [s for s in specs if s.name not in not_created]
        names = [s.name for s in present]
        if names:
            factors = await _replication_factors(admin, names)
            min_insync = await _min_insync(admin, names)
            problems += layout_problems(present, factors, min_insync)
        return problems


class TopicGuard:
    """Makes sure the topics exist and are at least as durable as configured; keeps the verdict.

    `until_ok` checks, and while the topics fall short re-checks every `recheck_s`, so fixing
    the topics (reassigning replicas, setting `min.insync.replicas`) makes the service ready
    without a restart. `on_shortfall(True/False)` after each check feeds the service's gauge.
    """

    def __init__(
        self,
        bootstrap: str,
        specs: list[TopicSpec],
        on_shortfall: Callable[[bool], Any] = lambda short: None,
        recheck_s: float = 30.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._specs = specs
        self._on_shortfall = on_shortfall
        self._recheck_s = recheck_s
        self.problems: list[str] | None = None  # None: not checked yet

    @property
    def ok(self) -> bool:
        """The last check found the topics as configured (or stronger)."""
        return self.problems == []

    def describe(self) -> str:
        """For /readyz: "ok", "not checked yet", or every problem found."""
        if self.problems is None:
            return "not checked yet"
        return "ok" if not self.problems else "; ".join(self.problems)

    async def check(self) -> bool:
        """One check (KafkaError when the broker cannot be asked); logs when the verdict changes."""
        problems = await check_topics(self._bootstrap, self._specs)
        if problems and problems != self.problems:
            log.error(
                "kafka topics are less durable than configured; not ready until they are fixed",
                extra={"problems": problems, "bootstrap": self._bootstrap},
            )
        elif not problems and self.problems:
            log.info("kafka topics are now as durable as configured", extra={"topics": [s.name for s in self._specs]})
        self.problems = problems
        self._on_shortfall(bool(problems))
        return not problems

    async def until_ok(self, checked: bool = False) -> None:
        """Check until the topics are as configured: a broker error is retried soon, a problem every recheck_s.

        `checked`: the caller has just checked; the first check waits recheck_s.
        """
        delay = 0.5
        if checked:
            await asyncio.sleep(self._recheck_s)
        while True:
            try:
                if await self.check():
                    return
                wait = self._recheck_s
            except KafkaError as exc:
                log.warning("kafka topics not checked; retrying", extra={"error": repr(exc), "retry_in_s": delay})
                wait, delay = delay, min(delay * 2, 10.0)
            await asyncio.sleep(wait)


def topic_guard(settings: CommonSettings, on_shortfall: Callable[[bool], Any]) -> TopicGuard:
    """The guard of the topics a service's settings name, with their replication settings."""
    specs = event_topics(
        settings.events_topic,
        settings.dead_letter_topic,
        settings.events_partitions,
        settings.events_replication_factor,
        settings.min_insync_replicas,
    )
    return TopicGuard(settings.kafka_bootstrap, specs, on_shortfall, settings.kafka_topics_recheck_s)
