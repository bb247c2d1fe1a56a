"""Wait, with a progress bar, until the aggregator has applied everything on the events topic."""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.settings import DEFAULT_CONSUMER_GROUP, CommonSettings


async def topic_end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """End offset per partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def applied_offsets(conn: asyncpg.Connection, topic: str, group: str) -> dict[int, int]:
    """Next offset to apply per partition, as the aggregator recorded it."""
    rows = await conn.fetch(
        "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE topic = $1 AND consumer_group = $2",
        topic,
        group,
    )
    return {r["kafka_partition"]: r["next_offset"] for r in rows}


async def wait_until_applied(
    settings: CommonSettings, console: Console, timeout_s: float, group: str = DEFAULT_CONSUMER_GROUP
) -> bool:
    """True once every record now on the topic is applied; False after `timeout_s`."""
    ends = await topic_end_offsets(settings.kafka_bootstrap, settings.events_topic, settings.events_partitions)
    total = sum(ends.values())
    conn = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        with Progress(
            TextColumn("aggregator applying records"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("apply", total=total)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while loop.time() < deadline:
                done = await applied_offsets(conn, settings.events_topic, group)
                applied = sum(min(done.get(p, 0), end) for p, end in ends.items())
                progress.update(task, completed=applied)
                if applied >= total:
                    return True
                await asyncio.sleep(0.2)
            return False
    finally:
        await conn.close()
