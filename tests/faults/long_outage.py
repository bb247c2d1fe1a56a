"""A long broker outage spooled by the collector, with the collector killed while it forwards.

    .venv/bin/python -m tests.faults.long_outage [--events 500000] [--segment-mib 32] [--batch 1000]

The scenario of issue 8, where 295,000 acknowledged events were once lost: the broker is
SIGKILLed; institutions keep posting 1,000-event batches (each a ~190 KB spool frame) from 4
clients until `--events` events are acknowledged from the spool, which fills several segments;
the broker comes back; the collector is SIGKILLed while it forwards the spool and started
again; the backlog drains. Then every acknowledged event is looked up in event_keys, the raw
tables and every rollup (harness.check_exact: acknowledged == counted, per event, both ways).

The test command runs it small (tests/faults/test_spool_outage.py); this entry point runs it
at full size on a spare broker and a throwaway PostgreSQL cluster of its own and prints the
figures recorded in docs/reliability.md. Exit status 0 only if the check is exact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.collector.spool import Spool
from tests.faults.harness import (
    CheckResult,
    HarnessError,
    Load,
    Pipeline,
    SpareBroker,
    ThrowawayPostgres,
    check_exact,
    log_dir_for,
    migrate_database,
    wait_drained,
    wait_until,
)


@dataclass
class OutageFigures:
    """What one run did."""

    acknowledged: int
    counted: int
    requests: int
    retried: int
    outage_s: float
    segments_max: int
    spool_bytes_max: int
    spooled_when_killed: int
    forwarded_when_killed: int
    drain_s: float  # broker back until every acknowledged event was counted


def _segments(spool_dir: Path) -> int:
    return len(list(spool_dir.glob("*.seg")))


def _spool_bytes(spool_dir: Path) -> int:
    return sum(p.stat().st_size for p in spool_dir.glob("*.seg"))


async def run_long_outage(
    pipeline: Pipeline,
    broker: SpareBroker,
    conn: asyncpg.Connection,
    *,
    events: int,
    batch_events: int = 1000,
    min_segments: int = 3,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[OutageFigures, CheckResult]:
    """Run the scenario on a started pipeline whose collector spools into `pipeline.spool_dir`."""
    collector = pipeline.collector
    load = Load(
        collector.url,
        pipeline.headers,
        events_per_s=40 * batch_events,
        batch_events=batch_events,
        concurrency=4,
        duplicate_every=10,
        seed=11,
    )
    load.start()

    async def some_through_the_broker() -> bool:
        return load.acknowledged_count >= 3 * batch_events

    await wait_until(some_through_the_broker, "some batches through the broker", 60)
    say(f"broker SIGKILL with {load.acknowledged_count} events acknowledged")
    outage_started = time.monotonic()
    await asyncio.to_thread(broker.kill)
    segments_max = spool_max = 0

    async def spooled_enough() -> bool:
        nonlocal segments_max, spool_max
        segments_max = max(segments_max, _segments(pipeline.spool_dir))
        spool_max = max(spool_max, _spool_bytes(pipeline.spool_dir))
        return load.acknowledged_count >= events and segments_max >= min_segments

    await wait_until(spooled_enough, f"{events} events acknowledged into {min_segments}+ spool segments", 900, 0.1)
    await load.stop()
    figures = await collector.metrics("collector_spool_events")
    say(
        f"{load.acknowledged_count} acknowledged; spool holds {int(figures['collector_spool_events'])} events "
        f"in {_segments(pipeline.spool_dir)} segments ({_spool_bytes(pipeline.spool_dir) / 2**20:.0f} MiB)"
    )
    if figures["collector_spool_events"] == 0:
        raise HarnessError("nothing was spooled: the outage did not reach the collector")

    spooled = int(figures["collector_spool_events"])
    # The kill must land while the forwarder works through the spool: after its first batch,
    # before its last. The forwarder starts as soon as the broker takes requests, which can be
    # well before `broker.start` returns (it waits until the broker is ready: seconds on a busy
    # machine), and its few batches take well under a second, less than a scrape of /metrics
    # may take then. So the watch starts with the broker, on the spool's own cursor file: it
    # moves, fsync'ed, after each batch the broker acknowledged.
    cursor = pipeline.spool_dir / "cursor"
    cursor_before = cursor.read_bytes()
    say(f"broker restarting after {time.monotonic() - outage_started:.1f}s; watching the spool's cursor")
    restart = asyncio.ensure_future(asyncio.to_thread(broker.start))

    async def forwarding_started() -> bool:
        if restart.done():
            restart.result()  # a broker that could not start ends the wait with its error
        return cursor.read_bytes() != cursor_before

    try:
        await wait_until(forwarding_started, "the spool forwarder's cursor moving", 120, 0.002)
        await collector.kill()
    finally:
        await restart
    back = time.monotonic()
    # What the killed collector left, read by the spool's own code, as the next collector reads it.
    left = Spool(pipeline.spool_dir, max_bytes=2**40)
    try:
        still_spooled = left.pending_events
    finally:
        left.close()
    forwarded = spooled - still_spooled
    say(f"collector SIGKILLed while forwarding: {forwarded} forwarded, {still_spooled} still in the spool")
    collector.start()
    await collector.wait_ready(120)
    await wait_drained(conn, load, timeout_s=600)
    drained = time.monotonic()
    await asyncio.sleep(1.0)  # a late duplicate would show now
    result = await check_exact(conn, load)
    return (
        OutageFigures(
            acknowledged=load.acknowledged_count,
            counted=result.counted,
            requests=load.requests,
            retried=load.retries,
            outage_s=back - outage_started,
            segments_max=segments_max,
            spool_bytes_max=spool_max,
            spooled_when_killed=still_spooled,
            forwarded_when_killed=forwarded,
            drain_s=drained - back,
        ),
        result,
    )


async def main(argv: list[str]) -> int:
    """Run the scenario at full size on components of its own; print its figures."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.long_outage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000, help="events acknowledged during the outage")
    parser.add_argument("--segment-mib", type=int, default=32, help="spool segment size in MiB (default 32)")
    parser.add_argument("--batch", type=int, default=1000, help="events per request (default 1000)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="telemetry-outage-"))
    broker, pg = SpareBroker(root), ThrowawayPostgres()
    pipeline = Pipeline(
        database_url=pg.url,
        kafka_bootstrap=broker.bootstrap,
        events_topic="outage.events",
        dead_letter_topic="outage.events.dead-letter",
        consumer_group="outage-aggregator",
        admin_token="outage-" + secrets.token_urlsafe(24),
        log_dir=log_dir_for("long-outage"),
        spool_dir=root / "collector-spool",
        extra_env={"TELEMETRY_SPOOL_SEGMENT_BYTES": str(args.segment_mib * 2**20), "TELEMETRY_PUBLISH_TIMEOUT_S": "2"},
    )
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {message}", flush=True)

    try:
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(pg.start)
        await migrate_database(pg.url)
        await pipeline.start("a")
        conn = await asyncpg.connect(pg.url)
        try:
            figures, result = await run_long_outage(
                pipeline, broker, conn, events=args.events, batch_events=args.batch, say=say
            )
        finally:
            await conn.close()
        verdict = "exact" if not result.mismatches else f"{len(result.mismatches)} DIFFERENCES"
        print(
            "\n| acknowledged | counted | lost | counted twice | requests (resent) | outage | spool at most "
            "| collector SIGKILL while forwarding | broker back → all counted |\n"
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            f"| {figures.acknowledged} | {figures.counted} | {figures.acknowledged - figures.counted} "
            f"| {0 if not result.mismatches else 'see below'} | {figures.requests} ({figures.retried}) "
            f"| {figures.outage_s:.0f} s "
            f"| {figures.spool_bytes_max / 2**20:.0f} MiB in {figures.segments_max} segments "
            f"| {figures.forwarded_when_killed} forwarded, {figures.spooled_when_killed} still spooled "
            f"| {figures.drain_s:.0f} s |\n\nCheck per event against event_keys, raw tables and rollups: **{verdict}**"
        )
        for mismatch in result.mismatches[:20]:
            print(f"- {mismatch}")
        return 0 if not result.mismatches else 1
    finally:
        pipeline.close()
        with contextlib.suppress(HarnessError):
            await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(pg.remove)
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
