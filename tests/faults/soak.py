"""A bounded soak: steady load for a few minutes with one fault of each kind, then the exact check.

    .venv/bin/python -m tests.faults.soak --minutes 3 [--rate 1000] [--pg-down-s 60] [--pause-s 15]
    .venv/bin/python -m tests.faults.soak --cluster --minutes 6 [--rate 1000] [--broker-down-s 30] [--two-down-s 60]

Everything runs on loopback in processes of its own: a spare broker (deploy/local/kafka.sh on
free ports), a throwaway PostgreSQL cluster (deploy/local/postgres.sh, under /var/tmp), one
collector and two aggregators in one consumer group. The shared stack is not touched. While
the load runs, five faults are injected one after the other, evenly spread over the run:

- broker restart: SIGKILL of the broker, then started again;
- collector SIGKILL, restarted at once (as a supervisor would);
- aggregator SIGKILL, restarted at once;
- aggregator SIGSTOP for --pause-s (past the group's session timeout), then SIGCONT;
- PostgreSQL stopped like a crash (`pg_ctl stop -m immediate`), down for --pg-down-s.

With --cluster the broker is a three-broker cluster of its own (deploy/local/kafka.sh with
TELEMETRY_KAFKA_BROKERS=3), the topics have replication factor 3 and min.insync.replicas 2,
three aggregators share the consumer group, and the faults are the cluster's:

- leader SIGKILL: the broker leading most partitions of the events topic, down for
  --broker-down-s, then started again and back in sync;
- two of three brokers SIGKILLed, down for --two-down-s (Kafka cannot acknowledge: the
  collector acknowledges from its spool), then started again and back in sync;
- a rolling restart: each broker stopped and started, the next once all replicas are in sync;
- aggregator SIGKILL, not restarted; later another one: the last carries all partitions.

For each fault the table gives when it was injected, how long the component was away, the
events acknowledged meanwhile, and the recovery time: from the moment the component is back
until every event acknowledged up to that moment is counted (looked up key by key in
event_keys, so a stalled partition is not hidden by the others' newer events). At the end
the load stops, the backlog drains by itself, and every acknowledged event is compared with
what event_keys, the raw tables and the rollups hold, for every institution (exact). Exit
status 0 only if that check is exact.

Not part of the test command (it takes minutes); docs/reliability.md has a recorded run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.faults.harness import (
    BROKERS,
    CLUSTER_SERVICE_ENV,
    CheckResult,
    EventKey,
    HarnessError,
    Load,
    Pipeline,
    SpareBroker,
    SpareCluster,
    ThrowawayPostgres,
    check_exact,
    log_dir_for,
    migrate_database,
    wait_drained,
    wait_until,
)

RECOVERY_LIMIT_S = 600.0


@dataclass
class FaultRun:
    """What one fault did."""

    name: str
    injected_at_s: float  # since the load started
    away_s: float  # injected until the component was back
    acknowledged_meanwhile: int
    acknowledged_until_back: int
    of_them_counted: int  # when the recovery was declared: all of them
    recovery_s: float
    spooled: int | None  # events answered from the spool meanwhile, resends included (None: collector restarted)


class Confirmations:
    """Which acknowledged events are counted yet, key by key, through a connection that
    survives PostgreSQL restarts.

    A count of event_keys is not enough to time a recovery: while one aggregator's partitions
    are stalled, the other's newer events make the count catch up before the stalled ones are
    in. So every acknowledged key is looked up until it is found; in steady operation only the
    last second or so of acknowledged events is pending.
    """

    def __init__(self, url: str, load: Load) -> None:
        self._url = url
        self._load = load
        self._conn: asyncpg.Connection | None = None
        self._taken = 0
        self.pending: dict[EventKey, float] = {}  # key -> when it was acknowledged (monotonic)

    async def refresh(self) -> bool:
        """Look up the pending keys; False while the database cannot be reached."""
        log = self._load.ack_log
        for at, key in log[self._taken :]:
            self.pending[key] = at
        self._taken = len(log)
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._url, timeout=5)
            keys = list(self.pending)
            for start in range(0, len(keys), 10_000):
                chunk = keys[start : start + 10_000]
                found = await self._conn.fetch(
                    """SELECT k.t, k.o, k.e FROM unnest($1::text[], $2::text[], $3::text[]) AS k(t, o, e)
                       WHERE EXISTS (SELECT 1 FROM event_keys WHERE key = event_key(k.t, k.o, k.e))""",
                    [k[0] for k in chunk],
                    [k[1] for k in chunk],
                    [k[2] for k in chunk],
                    timeout=30,
                )
                for row in found:
                    del self.pending[(row["t"], row["o"], row["e"])]
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if self._conn is not None:
                self._conn.terminate()
            self._conn = None
            return False
        return True

    def pending_since(self, moment: float) -> int:
        """Events acknowledged at or before `moment` that are not counted yet."""
        return sum(1 for at in self.pending.values() if at <= moment)

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()


class Soak:
    """The run: components, load, faults, results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="telemetry-soak-"))
        self.broker: SpareBroker | SpareCluster = SpareCluster(self.root) if args.cluster else SpareBroker(self.root)
        self.pg = ThrowawayPostgres()
        self.pipeline = Pipeline(
            database_url=self.pg.url,
            kafka_bootstrap=self.broker.bootstrap,
            events_topic="soak.events",
            dead_letter_topic="soak.events.dead-letter",
            consumer_group="soak-aggregator",
            admin_token="soak-" + secrets.token_urlsafe(24),
            log_dir=log_dir_for("soak-cluster" if args.cluster else "soak"),
            spool_dir=self.root / "collector-spool",
            extra_env=CLUSTER_SERVICE_ENV if args.cluster else {},
        )
        self.load = Load(self.pipeline.collector.url, self.pipeline.headers, events_per_s=args.rate, seed=7)
        self.confirmations = Confirmations(self.pg.url, self.load)
        self.runs: list[FaultRun] = []
        self.started = 0.0
        self.elapsed = 0.0

    def say(self, message: str) -> None:
        """One progress line, with the seconds since the load started."""
        since = time.monotonic() - self.started if self.started else 0.0
        print(f"[{since:7.1f}s] {message}", flush=True)

    # -- faults --------------------------------------------------------------------------------
    # Each returns once the component is back (the "heal"); the caller measures the recovery.

    async def broker_restart(self) -> None:
        """SIGKILL the broker (no controlled shutdown, log recovery at start), then start it."""
        assert isinstance(self.broker, SpareBroker)
        await asyncio.to_thread(self.broker.kill)
        await asyncio.to_thread(self.broker.start)

    @property
    def cluster(self) -> SpareCluster:
        """The cluster of a --cluster run."""
        assert isinstance(self.broker, SpareCluster)
        return self.broker

    async def _back_in_sync(self, *brokers: int) -> None:
        """Start the brokers again and wait until every replica of the topics is in sync."""
        for n in brokers:
            await asyncio.to_thread(self.cluster.start_broker, n)
        topics = [self.pipeline.events_topic, self.pipeline.dead_letter_topic, "__consumer_offsets"]
        await self.cluster.wait_in_sync(topics, timeout_s=RECOVERY_LIMIT_S)

    async def leader_kill(self) -> None:
        """SIGKILL the broker leading most partitions of the events topic; keep it down; start it."""
        leaders = await self.cluster.leaders(self.pipeline.events_topic)
        victim = max(BROKERS, key=lambda n: sum(1 for leader in leaders.values() if leader == n))
        self.say(f"broker {victim} leads partitions {sorted(p for p, n in leaders.items() if n == victim)}")
        await asyncio.to_thread(self.cluster.kill_broker, victim)
        await asyncio.sleep(self.args.broker_down_s)
        await self._back_in_sync(victim)

    async def two_brokers_down(self) -> None:
        """SIGKILL brokers 2 and 3: one replica in sync, fewer than min.insync.replicas; then both back."""
        for n in (2, 3):
            await asyncio.to_thread(self.cluster.kill_broker, n)
        await asyncio.sleep(self.args.two_down_s)
        await self._back_in_sync(2, 3)

    async def rolling_restart(self) -> None:
        """Each broker stopped (controlled shutdown) and started, the next once all replicas are in sync."""
        for n in BROKERS:
            await asyncio.to_thread(self.cluster.stop_broker, n)
            await self._back_in_sync(n)

    def aggregator_kill_for_good(self, name: str) -> Callable[[], Awaitable[None]]:
        """SIGKILL aggregator `name`, not restarted: the group gives its partitions to the others."""

        async def kill() -> None:
            victim = self.pipeline.aggregator(name)
            await victim.kill()
            survivors = [s for s in self.pipeline.aggregators.values() if s.alive()]

            async def taken_over() -> bool:
                owned = sorted(p for s in survivors for p in s.assigned_partitions())
                return owned == list(range(6))

            await wait_until(taken_over, f"the partitions of {name} given to the others", RECOVERY_LIMIT_S, 0.5)

        return kill

    async def collector_kill(self) -> None:
        """SIGKILL the collector mid-load, restart it (its spool folder stays)."""
        await self.pipeline.collector.kill()
        self.pipeline.collector.start()
        await self.pipeline.collector.wait_ready(120)

    async def aggregator_kill(self) -> None:
        """SIGKILL aggregator a at whatever moment of its batch it is, restart it."""
        victim = self.pipeline.aggregator("a")
        await victim.kill()
        victim.start()
        await victim.wait_ready(120)

    async def aggregator_pause(self) -> None:
        """SIGSTOP aggregator b past the session timeout: its partitions move; then SIGCONT."""
        victim = self.pipeline.aggregator("b")
        victim.send(signal.SIGSTOP)
        await asyncio.sleep(self.args.pause_s)
        victim.send(signal.SIGCONT)

    async def postgres_restart(self) -> None:
        """Crash-stop PostgreSQL (open transactions lost), keep it down, start it (recovery)."""
        await asyncio.to_thread(self.pg.stop, "immediate")
        await asyncio.sleep(self.args.pg_down_s)
        await asyncio.to_thread(self.pg.start)

    async def inject(self, name: str, fault: Callable[[], Awaitable[None]]) -> None:
        """Run one fault, then wait until every event acknowledged by the time it healed is counted."""
        load = self.load
        injected = time.monotonic()
        acknowledged_before = load.acknowledged_count
        spooled_before, collector_generation = await self._spooled()
        self.say(f"{name}: injected")
        await fault()
        healed = time.monotonic()
        acknowledged = load.acknowledged_count
        spooled_after, same_collector = await self._spooled()
        spooled = spooled_after - spooled_before if same_collector == collector_generation else None
        self.say(f"{name}: back after {healed - injected:.1f}s; {acknowledged} acknowledged so far")
        while True:
            reachable = await self.confirmations.refresh()
            if reachable and self.confirmations.pending_since(healed) == 0:
                break
            if time.monotonic() - healed > RECOVERY_LIMIT_S:
                missing = self.confirmations.pending_since(healed)
                raise HarnessError(f"{name}: {missing} acknowledged events not counted {RECOVERY_LIMIT_S:.0f}s on")
            await asyncio.sleep(0.25)
        recovered = time.monotonic()
        self.say(f"{name}: all {acknowledged} counted {recovered - healed:.1f}s after it was back")
        self.runs.append(
            FaultRun(
                name,
                injected - self.started,
                healed - injected,
                acknowledged - acknowledged_before,
                acknowledged,
                acknowledged - self.confirmations.pending_since(healed),
                recovered - healed,
                spooled,
            )
        )

    async def _spooled(self) -> tuple[int, int]:
        """The collector's count of events acknowledged from its spool, and its generation."""
        collector = self.pipeline.collector
        total = (await collector.metrics("collector_spooled_events_total"))["collector_spooled_events_total"]
        return int(total), collector.generation

    async def confirm_in_background(self) -> None:
        """Keep the pending keys few between faults (each lookup is then small)."""
        while True:
            await self.confirmations.refresh()
            await asyncio.sleep(1.0)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> CheckResult:
        """Start everything, soak with the faults, stop the load, drain, check."""
        args = self.args
        self.say(f"starting a spare broker, a PostgreSQL cluster and the services (logs: {self.pipeline.log_dir})")
        await asyncio.to_thread(self.broker.start)
        await asyncio.to_thread(self.pg.start)
        await migrate_database(self.pg.url)
        await self.pipeline.start(*(("a", "b", "c") if args.cluster else ("a", "b")))
        self.started = time.monotonic()
        self.load.start()
        faults: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("broker SIGKILL + restart", self.broker_restart),
            ("collector SIGKILL + restart", self.collector_kill),
            ("aggregator SIGKILL + restart", self.aggregator_kill),
            (f"aggregator SIGSTOP {args.pause_s:.0f}s + SIGCONT", self.aggregator_pause),
            (f"PostgreSQL immediate stop, down {args.pg_down_s:.0f}s", self.postgres_restart),
        ]
        if args.cluster:
            faults = [
                (f"leader SIGKILL, down {args.broker_down_s:.0f}s + restart", self.leader_kill),
                (f"brokers 2 and 3 SIGKILL, down {args.two_down_s:.0f}s + restart", self.two_brokers_down),
                ("rolling restart of the 3 brokers", self.rolling_restart),
                ("aggregator a SIGKILL (of 3)", self.aggregator_kill_for_good("a")),
                ("aggregator b SIGKILL (of 2)", self.aggregator_kill_for_good("b")),
            ]
        duration = args.minutes * 60
        # Evenly spread, each after the previous one has recovered; steady load in between.
        spacing = duration / (len(faults) + 1)
        for n, (name, fault) in enumerate(faults, start=1):
            wait = self.started + n * spacing - time.monotonic()
            if wait > 0:
                confirming = asyncio.create_task(self.confirm_in_background())
                await asyncio.sleep(wait)
                confirming.cancel()
                await asyncio.gather(confirming, return_exceptions=True)
            await self.inject(name, fault)
        rest = self.started + duration - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)
        self.say("stopping the load; waiting for the backlog to drain")
        await self.load.stop()
        self.elapsed = time.monotonic() - self.started
        conn = await asyncpg.connect(self.pg.url)
        try:
            drained = await wait_drained(conn, self.load, timeout_s=RECOVERY_LIMIT_S)
            self.say(f"drained {drained:.1f}s after the load stopped")
            await asyncio.sleep(1.0)
            return await check_exact(conn, self.load)
        finally:
            await conn.close()

    async def close(self) -> None:
        """Stop everything this run started and remove its folders."""
        self.pipeline.close()
        await self.confirmations.close()
        with contextlib.suppress(HarnessError):
            await asyncio.to_thread(self.broker.stop)
        await asyncio.to_thread(self.pg.remove)
        await asyncio.to_thread(shutil.rmtree, self.root, ignore_errors=True)

    # -- report --------------------------------------------------------------------------------

    def report(self, result: CheckResult) -> str:
        """The results as Markdown tables."""
        load = self.load
        lines = [
            f"Soak of {self.elapsed / 60:.1f} min at {self.args.rate:.0f} events/s offered "
            f"({load.acknowledged_count} distinct events acknowledged, {load.requests} requests, "
            f"{load.retries} retried); answers: {dict(sorted(load.answers.items()))}",
            "",
            "| fault | injected at | away for | acknowledged while away "
            "| spooled meanwhile | acknowledged until back / of them counted | lost | recovery |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in self.runs:
            spooled = "–" if run.spooled is None else str(run.spooled)
            lines.append(
                f"| {run.name} | {run.injected_at_s:.0f} s | {run.away_s:.1f} s | {run.acknowledged_meanwhile} "
                f"| {spooled} | {run.acknowledged_until_back} / {run.of_them_counted} "
                f"| {run.acknowledged_until_back - run.of_them_counted} | {run.recovery_s:.1f} s |"
            )
        worst = max(self.runs, key=lambda r: r.recovery_s)
        verdict = "exact" if not result.mismatches else f"{len(result.mismatches)} DIFFERENCES"
        lines += [
            f"| **end of run** | {self.elapsed:.0f} s | | | | **{result.acknowledged} / {result.counted}** "
            f"| **{result.lost}** | worst {worst.recovery_s:.1f} s ({worst.name}) |",
            "",
            f"Check against event_keys, raw tables and rollups: **{verdict}**; {result.lost} acknowledged events "
            f"lost, {result.unexpected} counted that were never acknowledged, {result.duplicates} counted twice "
            "(events in the rollups beyond the distinct events stored).",
            "",
            "| institution | uploads acknowledged / counted | records acknowledged / counted "
            "| kiosk acknowledged / counted | amount acknowledged / counted |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in result.institutions:
            lines.append(
                f"| {row.org_code} | {row.uploads_acknowledged} / {row.uploads_counted} "
                f"| {row.records_acknowledged} / {row.records_counted} "
                f"| {row.kiosk_acknowledged} / {row.kiosk_counted} "
                f"| {row.amount_acknowledged} / {row.amount_counted} |"
            )
        lines += [f"- {m}" for m in result.mismatches[:20]]
        return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m tests.faults.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the steady load (default 3)")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second offered (default 1000)")
    parser.add_argument("--pg-down-s", type=float, default=60.0, help="how long PostgreSQL stays down (default 60)")
    parser.add_argument("--pause-s", type=float, default=15.0, help="how long an aggregator is frozen (default 15)")
    parser.add_argument("--cluster", action="store_true", help="the three-broker cluster and its faults")
    parser.add_argument(
        "--broker-down-s",
        type=float,
        default=30.0,
        help="--cluster: how long the killed leader stays down (default 30)",
    )
    parser.add_argument(
        "--two-down-s", type=float, default=60.0, help="--cluster: how long two brokers stay down (default 60)"
    )
    return parser.parse_args(argv)


async def main(argv: list[str]) -> int:
    """Run the soak; 0 if every acknowledged event is counted exactly once."""
    soak = Soak(parse_args(argv))
    try:
        result = await soak.run()
        print()
        print(soak.report(result), flush=True)
        return 0 if not result.mismatches else 1
    finally:
        await soak.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
