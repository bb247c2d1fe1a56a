"""Aggregator crashes, rebalances, pauses, PostgreSQL outages and graceful shutdown, under load.

Each test runs the real services as processes (one collector, one or two aggregators in one
consumer group) on a database and topics of its own, posts a bounded steady load through the
collector that remembers exactly which events were answered `202`, injects its faults, and
then checks, for every institution, that the distinct acknowledged events and their sums are
exactly what event_keys, the raw tables and every rollup hold, once the backlog has drained by
itself (harness.check_exact).

Where a fault must land at a precise point of a batch ("killed before its commit"), the test
does not race a signal against a millisecond window: test-only triggers in the test's own
database (harness.GATE_*) make the aggregator's transaction wait at that point while the test
acts, and pg_xact_status then proves what became of that very transaction. The services carry
no test hook.

PostgreSQL faults run on a throwaway cluster of the test's own (deploy/local/postgres.sh on a
free port); the shared broker and server are never stopped or signalled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.faults.harness import (
    GATE_COMMIT,
    GATE_START,
    GATE_WRITTEN,
    Gates,
    Load,
    Offsets,
    Pipeline,
    Service,
    ThrowawayPostgres,
    finish_exact,
    log_dir_for,
    migrate_database,
    precreate_offsets,
    wait_until,
)
from tests.fixtures.stack import ADMIN_TOKEN, StackConfig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

# Long enough to be an outage the aggregators must wait out with batches failing, short enough
# for the suite; the soak (tests/faults/soak.py) keeps PostgreSQL down for minutes.
PG_OUTAGE_S = float(os.environ.get("TELEMETRY_TEST_PG_OUTAGE_S", "12"))
# Each kill costs about a session timeout (10 s) before the dead member's partitions move: the
# suite goes through the three moments twice; TELEMETRY_TEST_KILL_ROUNDS=n for more.
KILL_ROUNDS = int(os.environ.get("TELEMETRY_TEST_KILL_ROUNDS", "2"))


def _pipeline(config: StackConfig, database_url: str, name: str) -> Pipeline:
    return Pipeline(
        database_url=database_url,
        kafka_bootstrap=config.kafka_bootstrap,
        events_topic=config.events_topic,
        dead_letter_topic=config.dead_letter_topic,
        consumer_group=config.consumer_group,
        admin_token=ADMIN_TOKEN,
        log_dir=log_dir_for(name),
        spool_dir=config.spool_dir,
    )


@pytest_asyncio.fixture
async def pipeline(stack_config: StackConfig, request: pytest.FixtureRequest) -> AsyncIterator[Pipeline]:
    """Processes on the shared broker and server, with this test's database, topics and group."""
    p = _pipeline(stack_config, stack_config.database_url, request.node.name)
    try:
        yield p
    finally:
        p.close()


@pytest_asyncio.fixture
async def gates(stack_config: StackConfig) -> AsyncIterator[Gates]:
    """The gate triggers in this test's database, and the session that arms them."""
    g = Gates(stack_config.database_url)
    await g.install()
    try:
        yield g
    finally:
        await g.close()


@pytest.fixture
def own_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster this test may crash and restart."""
    pg = ThrowawayPostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


def _load(p: Pipeline) -> Load:
    load = Load(p.collector.url, p.headers)
    load.start()
    return load


async def _restart(victim: Service) -> None:
    """What a supervisor does after a crash: start it again, same settings."""
    await victim.wait_exit(10)
    victim.start()
    await victim.wait_ready()


async def test_aggregator_killed_before_during_and_after_its_database_commit(
    pipeline: Pipeline, gates: Gates, db: asyncpg.Connection
) -> None:
    """SIGKILL at three points of a batch, each held there by a gate so the kill lands exactly:

    - before the commit: event keys, raw rows and rollups written, offsets not yet; the
      transaction must be rolled back (pg_xact_status 'aborted') and the batch applied once
      later by whoever owns the partitions next;
    - during the commit: COMMIT sent and in progress on the server when the process dies; the
      transaction commits without anyone hearing of it, and the Kafka offsets were never
      committed: the next owner must seek to the offsets stored with the rows, not re-apply;
    - after the commit: the commit's answer has reached the process's socket (it was frozen
      with SIGSTOP, the commit released, then killed): same as above from the database's side,
      the process simply never got to commit its Kafka offsets.

    The killed aggregator is restarted at once, as a supervisor would; its partitions move
    when its old member's session times out.
    """
    await pipeline.start("a", "b")
    load = _load(pipeline)
    outcomes = []
    for moment in ("before", "during", "after") * KILL_ROUNDS:
        gate = GATE_WRITTEN if moment == "before" else GATE_COMMIT
        await gates.arm(gate)
        held = await gates.wait_held(gate)
        assert held.xid is not None, "a transaction held there has written rows"
        victim = pipeline.by_app_name(held.app_name)
        if moment == "after":
            victim.send(signal.SIGSTOP)
            await gates.release(gate)

            async def answered(pid: int = held.pid) -> bool:
                return await gates.session_state(pid) == "idle"

            await wait_until(answered, "the held COMMIT answered to the frozen process", 30)
            victim.send(signal.SIGKILL)
        else:
            victim.send(signal.SIGKILL)
            await victim.wait_exit(10)
            await gates.release(gate)
        outcome = await gates.wait_xact_done(held.xid)
        outcomes.append((moment, outcome))
        await _restart(victim)
    assert (
        outcomes
        == [
            ("before", "aborted"),
            ("during", "committed"),
            ("after", "committed"),
        ]
        * KILL_ROUNDS
    )
    await finish_exact(pipeline, load, db)


async def test_second_aggregator_joins_and_leaves_during_load(
    pipeline: Pipeline, gates: Gates, stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    """Rebalances with a batch in flight: B joins while A's batch is held mid-transaction; then
    whichever aggregator is next held mid-transaction leaves (SIGTERM); it rejoins and leaves
    once more at whatever moment the load is at.

    A rebalance does not wait for the batch in hand (the revocation listener does nothing): the
    partitions move while A's transaction is open, B seeks to the stored offsets and waits on
    A's row locks, A commits, and its Kafka commit of partitions it no longer owns fails. Both
    must carry on consuming, and every event must count once.
    """
    await pipeline.start("a")
    a, b = pipeline.aggregator("a"), pipeline.aggregator("b")
    load = _load(pipeline)
    await asyncio.sleep(2)

    held = await gates.hold_wide_batch()
    assert held.app_name == a.app_name and held.xid is not None
    in_batch = await gates.locked_partitions(stack_config.consumer_group, stack_config.events_topic)
    b.start()
    await b.wait_ready()

    async def b_assigned() -> bool:
        return bool(b.alive() and b.assigned_partitions())

    await wait_until(b_assigned, "B to be given partitions while A's batch is open", 30, every_s=0.1)
    # The precondition of the case: partitions of A's open batch now belong to B.
    assert in_batch & set(b.assigned_partitions()), (in_batch, b.assigned_partitions())
    await gates.release(GATE_WRITTEN)
    assert await gates.wait_xact_done(held.xid) == "committed"

    async def b_applies() -> bool:
        got = await b.metrics("aggregator_events_applied_total")
        return got["aggregator_events_applied_total"] > 0

    # Proof that partitions really moved to B while the load ran.
    await wait_until(b_applies, "the joining aggregator to apply events", 60, every_s=0.2)

    await gates.arm(GATE_WRITTEN)
    held = await gates.wait_held(GATE_WRITTEN)
    assert held.xid is not None
    leaving = pipeline.by_app_name(held.app_name)
    leaving.send(signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert leaving.alive(), "left the group with a batch in hand"
    await gates.release(GATE_WRITTEN)
    await leaving.wait_clean_exit(30)
    assert await gates.wait_xact_done(held.xid) == "committed"

    # Once more, unsynchronised: join, work a little, leave.
    leaving.start()
    await leaving.wait_ready()
    await asyncio.sleep(3)
    await leaving.terminate()
    await finish_exact(pipeline, load, db)


async def test_paused_aggregator_wakes_after_its_partitions_moved_and_does_not_apply_its_batch(
    pipeline: Pipeline, gates: Gates, stack_config: StackConfig, db: asyncpg.Connection
) -> None:
    """SIGSTOP with a polled batch in hand, past the session timeout; SIGCONT once B re-applied it.

    The victim is frozen while its transaction waits at the start of apply_batch (batch in hand,
    nothing written and no offset row locked: those rows exist up front), so B is not blocked
    by it. Heartbeats stop with the process, so after the session timeout the group gives B
    every partition; B seeks to the stored offsets and applies past everything that was in the
    topic when the victim froze, which includes the victim's batch. On SIGCONT the victim
    carries on with that batch and must not apply any of it: the offsets stored with the rows
    make it drop the batch as stale (aggregator_events_stale_total grows) or, had it been
    frozen past the sessions' idle-in-transaction timeout, its transaction is gone and the
    batch fails (aggregator_db_errors_total grows). Either way aggregator_events_applied_total
    stays where it was.
    """
    await precreate_offsets(db, stack_config.consumer_group, stack_config.events_topic)
    await pipeline.start("a", "b")
    offsets = Offsets(stack_config.kafka_bootstrap, stack_config.events_topic, stack_config.consumer_group)
    await offsets.start()
    load = _load(pipeline)
    applied, stale, failed = (
        "aggregator_events_applied_total",
        "aggregator_events_stale_total",
        "aggregator_db_errors_total",
    )
    try:
        await asyncio.sleep(2)
        await gates.arm(GATE_START)
        held = await gates.wait_held(GATE_START)
        victim = pipeline.by_app_name(held.app_name)
        before = await victim.metrics(applied, stale, failed)
        victim.send(signal.SIGSTOP)
        ends = await offsets.ends()
        await gates.release(GATE_START)

        async def reapplied() -> bool:
            stored = await offsets.stored(db)
            return all(stored.get(p, 0) >= end for p, end in ends.items())

        await wait_until(reapplied, "the other aggregator to apply past the frozen one's batch", 90, every_s=0.2)
        # The frozen member was evicted (its heartbeats stopped) and the survivor owns all.
        (survivor,) = [s for s in pipeline.aggregators.values() if s is not victim]
        assert survivor.assigned_partitions() == list(range(6)), survivor.assigned_partitions()
        victim.send(signal.SIGCONT)
        after: dict[str, float] = {}

        async def done_with_batch() -> bool:
            after.update(await victim.metrics(applied, stale, failed))
            return after[stale] > before[stale] or after[failed] > before[failed]

        # Read in the same scrape as the verdict, before the victim can have rejoined the
        # group (another rebalance round) and been given new work.
        await wait_until(done_with_batch, "the woken aggregator to be done with its stale batch", 30)
        assert after[applied] == before[applied], (before, after)
    finally:
        await offsets.stop()
    await finish_exact(pipeline, load, db)


async def test_postgres_down_for_a_while_and_stopped_mid_transaction(
    own_postgres: ThrowawayPostgres, stack_config: StackConfig, request: pytest.FixtureRequest
) -> None:
    """`pg_ctl stop -m immediate` twice while an aggregator's transaction is open, under load.

    First with the batch written but not committed, then with its COMMIT in progress (deferred
    triggers run before the commit record): both transactions must be lost in recovery. The
    first outage lasts PG_OUTAGE_S: the collector keeps answering 202 (the events are durable
    in Kafka), the aggregators keep failing their batch and retrying, and report not ready.
    """
    await migrate_database(own_postgres.url)
    gates = Gates(own_postgres.url)
    await gates.install()
    p = _pipeline(stack_config, own_postgres.url, request.node.name)
    db = await asyncpg.connect(own_postgres.url)
    try:
        await p.start("a", "b")
        load = _load(p)
        await asyncio.sleep(2)
        for gate, outage_s in ((GATE_WRITTEN, PG_OUTAGE_S), (GATE_COMMIT, 3.0)):
            await gates.arm(gate)
            held = await gates.wait_held(gate)
            assert held.xid is not None
            await gates.make_xids_durable()
            own_postgres.stop("immediate")
            acknowledged = load.acknowledged_count
            await asyncio.sleep(outage_s / 2)
            readiness = [(await s.get("/readyz", timeout_s=10)).status_code for s in p.aggregators.values()]
            assert readiness == [503, 503], readiness
            await asyncio.sleep(outage_s / 2)
            assert load.acknowledged_count > acknowledged, "the collector stopped acknowledging without PostgreSQL"
            own_postgres.start()
            await gates.close()  # the gate session died with the server
            gates = Gates(own_postgres.url)
            await gates.install()
            assert await gates.xact_status(held.xid) == "aborted"
        await db.close()
        db = await asyncpg.connect(own_postgres.url)
        await finish_exact(p, load, db)
    finally:
        p.close()
        await gates.close()
        await db.close()


async def test_sigterm_drains_in_flight_requests_and_batches(
    pipeline: Pipeline, gates: Gates, db: asyncpg.Connection
) -> None:
    """SIGTERM finishes what is in hand: the aggregator's batch commits, the collector's request gets 202.

    The aggregator is signalled while its batch waits at GATE_WRITTEN (everything written,
    offsets not yet): it must not abandon the batch but commit it, leave the group and shut down cleanly.
    The collector is signalled while a request is half received (its body is sent in two
    halves): it must stop accepting connections, still answer that request 202, and shut down cleanly.
    """
    await pipeline.start("a", "b")
    load = _load(pipeline)
    await asyncio.sleep(2)

    await gates.arm(GATE_WRITTEN)
    held = await gates.wait_held(GATE_WRITTEN)
    assert held.xid is not None
    victim = pipeline.by_app_name(held.app_name)
    victim.send(signal.SIGTERM)
    await asyncio.sleep(1.0)
    assert victim.alive(), "the aggregator exited with a batch in hand"
    await gates.release(GATE_WRITTEN)
    await victim.wait_clean_exit(30)
    assert await gates.wait_xact_done(held.xid) == "committed"
    victim.start()
    await victim.wait_ready()

    batch = load.new_batch("upload", 500)
    body = json.dumps({"events": batch}).encode()
    half_sent, go_on = asyncio.Event(), asyncio.Event()

    async def two_halves() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        # httpx asks for the next chunk once the previous one is written to the socket.
        half_sent.set()
        await go_on.wait()
        yield body[len(body) // 2 :]

    collector = pipeline.collector
    async with httpx.AsyncClient(base_url=collector.url, timeout=60) as client:
        posting = asyncio.create_task(
            client.post(
                "/v1/uploads",
                content=two_halves(),
                headers={**pipeline.headers, "Content-Type": "application/json", "Content-Length": str(len(body))},
            )
        )
        await asyncio.wait_for(half_sent.wait(), 10)
        await asyncio.sleep(0.2)
        collector.send(signal.SIGTERM)

        async def refuses_new_connections() -> bool:
            try:
                async with httpx.AsyncClient(timeout=1) as other:
                    await other.get(f"{collector.url}/healthz")
            except httpx.TransportError:
                return True
            return False

        await wait_until(refuses_new_connections, "the collector to stop accepting connections", 10)
        assert collector.alive(), "the collector exited with a request in flight"
        go_on.set()
        response = await asyncio.wait_for(posting, 30)
    assert response.status_code == 202, response.text
    load.record_acknowledged("upload", batch)
    await collector.wait_clean_exit(45)
    collector.start()
    await collector.wait_ready()
    await finish_exact(pipeline, load, db)
