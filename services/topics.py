"""Create the project's Kafka topics with explicit partitions (auto-creation is off on the broker)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic and how it is laid out."""

    name: str
    partitions: int
    config: dict[str, str]
    replication_factor: int = 1


def event_topics(
    events_topic: str, dead_letter_topic: str, partitions: int, replication_factor: int = 1
) -> list[TopicSpec]:
    """The events topic (keyed by org_code) and its dead-letter topic.

    `min.insync.replicas` is left to the broker's default, which operators of a replicated
    cluster set to 2 (see the README); a topic-level 1 would silently weaken `acks=all`.
    """
    big = {"max.message.bytes": str(4 * 1024 * 1024)}
    return [
        TopicSpec(events_topic, partitions, big, replication_factor),
        TopicSpec(dead_letter_topic, 1, big, replication_factor),
    ]


async def ensure_topics(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="health-telemetry-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        try:
            await admin.create_topics([NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing])
        except TopicAlreadyExistsError:
            # Another process created it between our list and create: that is what we wanted.
            log.info("topic created concurrently", extra={"topics": [s.name for s in missing]})
        return [s.name for s in missing]
    finally:
        await admin.close()
