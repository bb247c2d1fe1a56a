"""The five benchmarks. Each builds its own slice of the stack, measures, and returns figures.

Targets are printed next to the figures, never asserted: a benchmark that misses its target
still finishes, cleans up and records what it saw (CPU per component, optional profile).
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import io
import os
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaProducer
from rich.console import Console

from bench import cpu, load, workload
from bench.keystore import prefill, store_size
from bench.profile import Profile
from bench.reference_write import ReferenceRate, copy_on_conflict
from bench.stack import (
    KAFKA,
    REPO,
    Service,
    Slice,
    backend_pids,
    bench_slice,
    infrastructure_pids,
    institution_token,
    metric_sum,
    scrape,
    start_services,
)
from services.cli.progress import wait_until_applied
from services.settings import ToolSettings
from services.storage.migrate import migrate
from services.streams import STREAMS

TELEMETRY = REPO / ".venv" / "bin" / "telemetry"

TARGET_BATCH_EVENTS_S = 50_000
TARGET_SINGLE_REQUESTS_S = 5_000
TARGET_SINGLE_P99_MS = 20.0  # at --single-rate (10,000 requests/s), issue 12
TARGET_AGGREGATOR_EVENTS_S = 70_000
TARGET_REFERENCE_RATIO = 0.4
DEMO_MONTH = date(2020, 4, 1)  # the month of the aggregator's load (a few of its events count in March)
TARGET_DEMO_S = 180.0  # the demo month replayed and reported within 3 minutes (developers' guide)
TARGET_LATENCY_P99_MS = 100.0  # POST -> report at 20,000 events/s in the background, issue 12


@dataclass
class Figure:
    """One measured number and its target."""

    name: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    note: str = ""
    per_core: float | None = None
    """The rate per core of CPU the work took, broker included where it is in the path (for ratios)."""

    @property
    def met(self) -> bool | None:
        """Whether the target is met (None: no target)."""
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "value": round(self.value, 2),
            "unit": self.unit,
            "target": self.target,
            "target_is": "minimum" if self.higher_is_better else "maximum",
            "met": self.met,
            "note": self.note,
            "per_core": round(self.per_core) if self.per_core else None,
        }


@dataclass
class Result:
    """A benchmark's figures and everything needed to interpret them."""

    benchmark: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    """Command-line options shared by the benchmarks."""

    seconds: float
    results_dir: Path
    profile: bool
    use_wrk: bool
    probes: int
    background_rate: float
    batch_connections: int
    single_connections: int
    wait_quiet_s: float = 0.0
    single_rate: float = 10_000.0
    paced_connections: int = 256
    minutes: float = 10.0
    memory_rate: float = 100_000.0
    prefill_keys: int = 0

    @property
    def log_dir(self) -> Path:
        """Where the services' logs of this run go."""
        return self.results_dir / "logs"


async def _cpu_roots(piece: Slice, *services: Service | None, exclude: int | None = None) -> cpu.Roots:
    roots: dict[str, int | list[int] | None] = {svc.name: svc.pid for svc in services if svc is not None}
    roots.update(infrastructure_pids())
    roots["postgres"] = [pid for pid in await backend_pids(piece.iso) if pid != exclude]
    return roots


async def _measure(roots: cpu.Roots, action: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, float], float]:
    """Run `action`, returning its value, CPU use per component over it, and its wall time."""
    before = cpu.snapshot(roots)
    started = time.perf_counter()
    value = await action()
    wall = time.perf_counter() - started
    return value, cpu.usage(before, cpu.snapshot(roots), wall), wall


# --- collector -----------------------------------------------------------------------------


async def collector(opts: Options, mode: str) -> Result:
    """Events/s the collector acknowledges, per stream's endpoint, in 1,000-event batches or one event per request.

    Every stream of the registry is measured (its demo-month events, or events made from its
    example). With single events, a second phase posts at a fixed rate (`--single-rate`) and
    its figure is the p99 latency at that rate.
    """
    batch = mode == "batch"
    # Enough distinct bodies that the collector cannot benefit from repetition (it does not
    # deduplicate: repeats are validated and published like new events).
    events = await asyncio.to_thread(workload.collect_streams, 80_000 if batch else 10_000)
    make = workload.batch_requests if batch else workload.single_requests
    requests = {kind: make(kind, evs) for kind, evs in events.items()}
    # (label, connections, fixed rate or None for as fast as answered)
    first = opts.batch_connections if batch else opts.single_connections
    phases: list[tuple[str, int, float | None]] = [("", first, None)]
    if not batch and opts.single_rate > 0:
        phases.append(("paced", opts.paced_connections, opts.single_rate))
    wrk = load.ensure_wrk() if opts.use_wrk else None
    name = f"collector-{mode}"
    result = Result(name)
    result.details.update(
        {
            "load_generator": "wrk (1 thread)" if wrk else "httpx (wrk unavailable)",
            "connections": phases[0][1],
            "distinct_bodies": {k: len(v) for k, v in requests.items()},
            "events_per_request": 1000 if batch else 1,
            "seconds_per_endpoint": opts.seconds,
            "streams": list(requests),
        }
    )
    async with bench_slice(name, opts.log_dir, collector=True, aggregator=False) as piece:
        svc = piece.collector
        assert svc is not None
        for kind, reqs in requests.items():
            path = STREAMS[kind].path
            unit = "events/s" if batch else "requests/s"
            target = TARGET_BATCH_EVENTS_S if batch else TARGET_SINGLE_REQUESTS_S
            refusal = await _refusal(svc.url, piece.iso.admin_token, reqs[0])
            if refusal is not None:
                # A stream the demo month does not have yet, whose example names reference data
                # the demo set lacks: said, not hidden, and the other streams are still measured.
                result.figures.append(Figure(f"{name} {path}", 0.0, unit, target, note=f"NOT MEASURED: {refusal}"))
                result.details[kind] = {"not_measured": refusal}
                continue
            requests_file = opts.results_dir / f"{name}-{kind}-{piece.iso.tag}.requests"
            workload.write_wrk_requests(requests_file, piece.iso.admin_token, reqs)
            try:
                for phase, connections, rate_per_s in phases:

                    async def drive(
                        seconds: float,
                        reqs: list[workload.Request] = reqs,
                        path: Path = requests_file,
                        connections: int = connections,
                        rate_per_s: float | None = rate_per_s,
                    ) -> Any:
                        if wrk:
                            return await asyncio.to_thread(
                                load.run_wrk,
                                wrk,
                                svc.url,
                                path,
                                seconds=seconds,
                                connections=connections,
                                rate_per_s=rate_per_s,
                            )
                        return await load.run_httpx(
                            svc.url,
                            piece.iso.admin_token,
                            _cycle(reqs),
                            seconds=seconds,
                            connections=connections,
                            rate_per_s=rate_per_s,
                        )

                    # Warm-up: connections, producer batches, caches; not measured.
                    await drive(3)
                    before = await scrape(svc.metrics_url)
                    profile = (
                        Profile(svc.pid, opts.results_dir / f"{name}-{kind}-{phase or 'max'}.pyspy.txt", opts.seconds)
                        if opts.profile
                        else None
                    )
                    roots = await _cpu_roots(piece, svc)
                    run, usage, wall = await _measure(roots, functools.partial(drive, opts.seconds))
                    after = await scrape(svc.metrics_url)
                    accepted = metric_sum(after, "collector_events_accepted_total", event_type=kind) - metric_sum(
                        before, "collector_events_accepted_total", event_type=kind
                    )
                    rate = accepted / run.seconds
                    p99 = run.latency_ms.get("p99", 0.0)
                    phase_details = {
                        "accepted_events": accepted,
                        "per_collector_core": _per_core(rate, usage, "collector"),
                        # wrk closes its connections mid-request when its time is up; those
                        # requests are counted 499 (client closed request): a few are expected.
                        "non_202_responses": _non_202(before, after),
                        "load": run.as_dict(),
                        "cpu_percent_of_one_core": usage,
                        "wall_s": round(wall, 2),
                        "publish_ms_mean": _hist_mean_ms(before, after, "collector_kafka_publish_duration_seconds"),
                        "profile": profile.finish() if profile else None,
                    }
                    if rate_per_s is None:
                        result.figures.append(
                            Figure(
                                f"{name} {path}",
                                rate,
                                unit,
                                target,
                                note=_cpu_note(rate, usage, "collector", unit) + f", p99 {p99:.0f} ms",
                                per_core=_per_core(rate, usage, "collector", "kafka"),
                            )
                        )
                        result.details[kind] = phase_details
                    else:
                        result.figures.append(
                            Figure(
                                f"{name} {path} p99 at {rate_per_s:,.0f}/s",
                                p99,
                                "ms",
                                TARGET_SINGLE_P99_MS,
                                higher_is_better=False,
                                note=f"{rate:,.0f} requests/s reached, p50 {run.latency_ms.get('p50', 0):.1f} ms, "
                                f"p90 {run.latency_ms.get('p90', 0):.1f} ms, {connections} connections; "
                                + _cpu_note(rate, usage, "collector", unit),
                            )
                        )
                        result.details[kind][phase] = phase_details
            finally:
                requests_file.unlink(missing_ok=True)
    return result


async def _refusal(url: str, token: str, request: workload.Request) -> str | None:
    """None if the collector accepts this request, else its answer (status and body, shortened)."""
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        response = await client.post(
            request.path, content=request.body, headers={**_JSON, "Authorization": f"Bearer {token}"}
        )
    if response.status_code == 202:
        return None
    return f"{response.status_code} {response.text[:300]}"


def _per_core(rate: float, usage: dict[str, float], *names: str) -> float | None:
    """Throughput per core-second of the named components: what they would do with a core each.

    On a machine shared with other work the raw rate says as much about the neighbours as
    about the service; this figure moves much less from run to run.
    """
    share = sum(usage.get(n, 0.0) for n in names) / 100
    return round(rate / share) if share > 0.05 else None


def _cpu_note(rate: float, usage: dict[str, float], name: str, unit: str) -> str:
    per_core = _per_core(rate, usage, name)
    capacity = f"{per_core:,.0f} {unit} per {name} core" if per_core else "n/a"
    return f"{name} CPU {usage.get(name, 0):.0f}%, {capacity}, others {usage.get('others', 0):.0f}%"


def _cycle(reqs: list[workload.Request]) -> Any:
    while True:
        yield from reqs


def _non_202(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in after.items():
        if key.startswith("collector_http_requests_total{") and 'status="202"' not in key and "/v1/" in key:
            delta = value - before.get(key, 0.0)
            if delta:
                out[key.partition("{")[2].rstrip("}")] = delta
    return out


def _hist_mean_ms(before: dict[str, float], after: dict[str, float], name: str) -> float | None:
    total = metric_sum(after, f"{name}_sum") - metric_sum(before, f"{name}_sum")
    count = metric_sum(after, f"{name}_count") - metric_sum(before, f"{name}_count")
    return round(1000 * total / count, 2) if count else None


# --- aggregator ----------------------------------------------------------------------------


async def _publish(topic: str, records: list[Any]) -> dict[int, list[tuple[int, int]]]:
    """Publish like the collector (idempotent, acks=all); return (offset, events) per partition."""
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=1024 * 1024,
        max_request_size=4 * 1024 * 1024,
        client_id="health-telemetry-bench",
    )
    await producer.start()
    placed: dict[int, list[tuple[int, int]]] = {}
    try:
        for start in range(0, len(records), 2_000):
            chunk = records[start : start + 2_000]
            futures = [await producer.send(topic, r.value, key=r.key) for r in chunk]
            for record, meta in zip(chunk, await asyncio.gather(*futures), strict=True):
                placed.setdefault(meta.partition, []).append((meta.offset, record.events))
    finally:
        await producer.stop()
    return placed


class _Progress:
    """Events applied, from the per-partition next offsets the aggregator stores with its rows."""

    def __init__(self, placed: dict[int, list[tuple[int, int]]]) -> None:
        self._offsets: dict[int, list[int]] = {}
        self._cumulative: dict[int, list[int]] = {}
        for partition, rows in placed.items():
            rows.sort()
            self._offsets[partition] = [o for o, _ in rows]
            running, cumulative = 0, []
            for _, events in rows:
                running += events
                cumulative.append(running)
            self._cumulative[partition] = cumulative
        self.ends = {p: offsets[-1] + 1 for p, offsets in self._offsets.items()}

    def events(self, next_offsets: dict[int, int]) -> int:
        """Events in the records before each partition's next offset."""
        total = 0
        for partition, offsets in self._offsets.items():
            n = bisect.bisect_left(offsets, next_offsets.get(partition, 0))
            total += self._cumulative[partition][n - 1] if n else 0
        return total

    def done(self, next_offsets: dict[int, int]) -> bool:
        """Every record on the topic applied."""
        return all(next_offsets.get(p, 0) >= end for p, end in self.ends.items())


async def migrate_database(url: str) -> None:
    """Apply the migrations now (the services would at start; the prefill needs the tables first)."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def aggregator(opts: Options) -> Result:
    """Events/s the aggregator applies from a pre-filled topic into a fresh database."""
    events = int(TARGET_AGGREGATOR_EVENTS_S * opts.seconds)  # fewer when the demo month runs out
    topic_load = await asyncio.to_thread(workload.topic_records, events)
    result = Result("aggregator")
    async with bench_slice(
        "aggregator", opts.log_dir, collector=False, aggregator=False, before_services=True
    ) as piece:
        if opts.prefill_keys:
            await migrate_database(piece.iso.database_url)
            result.details["prefilled"] = await prefill(piece.iso.database_url, opts.prefill_keys, DEMO_MONTH)
        started = time.perf_counter()
        placed = await _publish(piece.iso.events_topic, topic_load.records)
        publish_s = time.perf_counter() - started
        progress = _Progress(placed)
        conn = await asyncpg.connect(piece.iso.database_url)
        try:
            spawned = time.perf_counter()
            await start_services(piece, opts.log_dir, collector=False, aggregator=True)
            svc = piece.aggregator
            assert svc is not None
            ready = time.perf_counter()
            timeline: list[tuple[float, int]] = []
            roots: cpu.Roots = {}
            monitor_pid = await conn.fetchval("SELECT pg_backend_pid()")
            first: tuple[float, int, cpu.CpuSnapshot] | None = None
            profile: Profile | None = None
            deadline = ready + max(120.0, events / 5_000)
            finished = False
            while time.perf_counter() < deadline:
                rows = await conn.fetch(
                    "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE topic = $1",
                    piece.iso.events_topic,
                )
                now = time.perf_counter()
                offsets = {r["kafka_partition"]: r["next_offset"] for r in rows}
                applied = progress.events(offsets)
                timeline.append((round(now - ready, 3), applied))
                if first is None and applied > 0:
                    # The aggregator's pool connections exist by now: count their backends.
                    roots = await _cpu_roots(piece, svc, exclude=monitor_pid)
                    first = (now, applied, cpu.snapshot(roots))
                    if opts.profile:
                        profile = Profile(svc.pid, opts.results_dir / "aggregator.pyspy.txt", opts.seconds / 2)
                if progress.done(offsets):
                    finished = True
                    break
                await asyncio.sleep(0.1)
            end = time.perf_counter()
            end_cpu = cpu.snapshot(roots) if first is not None else None
            # The keys the run stored (the prefill's made with generate_series are not events).
            stored = await conn.fetchval("SELECT count(*) FROM event_keys") - result.details.get("prefilled", {}).get(
                "keys", 0
            )
            metrics = await scrape(svc.metrics_url)
        finally:
            await conn.close()
        await asyncio.to_thread(svc.stop)  # the reference write below has the database to itself
        result.details["key_store"] = await store_size(piece.iso.database_url)
        reference = await copy_on_conflict(piece.iso.database_url, topic_load.records)
    if first is None or end_cpu is None:
        raise RuntimeError("the aggregator applied nothing; see its log in " + str(opts.log_dir))
    steady_s = end - first[0]
    steady_rate = (topic_load.events - first[1]) / steady_s if steady_s > 0 else 0.0
    _reference_figures(result, steady_rate, reference)
    overall_rate = topic_load.events / (end - spawned)
    txn_count = metric_sum(metrics, "aggregator_db_write_duration_seconds_count")
    steady_usage = cpu.usage(first[2], end_cpu, steady_s)
    result.figures.append(
        Figure(
            "aggregator apply (steady)",
            steady_rate,
            "events/s",
            TARGET_AGGREGATOR_EVENTS_S,
            note=_cpu_note(steady_rate, steady_usage, "aggregator", "events/s")
            + f", postgres CPU {steady_usage.get('postgres', 0):.0f}%, {topic_load.events:,} events"
            + f", µs/event {_cpu_us_per_event(steady_rate, steady_usage)}"
            + (f", {opts.prefill_keys:,} keys in the store before" if opts.prefill_keys else "")
            + ("" if finished else ", DID NOT FINISH"),
        )
    )
    result.figures.append(
        Figure("aggregator incl. start-up", overall_rate, "events/s", None, note="process start to last offset")
    )
    result.details.update(
        {
            "events_published": topic_load.events,
            "records_published": len(topic_load.records),
            "distinct_events": topic_load.distinct_events,
            "stored_event_keys": stored,
            "finished": finished,
            "publish_s": round(publish_s, 2),
            "start_to_ready_s": round(ready - spawned, 2),
            "ready_to_first_progress_s": round(first[0] - ready, 2),
            "steady_s": round(steady_s, 2),
            "cpu_percent_of_one_core": steady_usage,
            "per_aggregator_core": _per_core(steady_rate, steady_usage, "aggregator"),
            "per_aggregator_plus_postgres_core": _per_core(steady_rate, steady_usage, "aggregator", "postgres"),
            "cpu_us_per_event": _cpu_us_per_event(steady_rate, steady_usage),
            "transactions": txn_count,
            "transaction_ms_mean": round(
                1000 * metric_sum(metrics, "aggregator_db_write_duration_seconds_sum") / txn_count, 1
            )
            if txn_count
            else None,
            "events_per_transaction": round(metric_sum(metrics, "aggregator_batch_events_sum") / txn_count, 1)
            if txn_count
            else None,
            "timeline": timeline[:: max(1, len(timeline) // 60)],
            "profile": profile.finish() if profile else None,
        }
    )
    return result


def _cpu_us_per_event(rate: float, usage: dict[str, float]) -> dict[str, float]:
    """CPU µs per event applied, per component: robust to other work on the machine, unlike the rate."""
    if rate <= 0:
        return {}
    return {name: round(usage.get(name, 0.0) / 100 / rate * 1e6, 1) for name in ("aggregator", "postgres", "kafka")}


def _reference_figures(result: Result, steady_rate: float, reference: ReferenceRate) -> None:
    """The ratio against COPY to a stage + INSERT ON CONFLICT, measured in the same run."""
    ratio = steady_rate / reference.rate if reference.rate else 0.0
    result.figures.append(
        Figure(
            "COPY + INSERT ON CONFLICT (same run)",
            reference.rate,
            "events/s",
            note=f"backend {reference.backend_us_per_event:.1f} µs/event; raw rows only, 20,000 per transaction",
        )
    )
    result.figures.append(
        Figure(
            "aggregator / COPY + ON CONFLICT",
            ratio,
            "x",
            TARGET_REFERENCE_RATIO,
            note="steady apply rate over the reference write's rate",
        )
    )
    result.details["reference_copy_on_conflict"] = {
        "events": reference.events,
        "seconds": round(reference.seconds, 2),
        "events_per_s": round(reference.rate),
        "backend_us_per_event": round(reference.backend_us_per_event, 2),
        "ratio": round(ratio, 3),
    }


# --- end-to-end latency --------------------------------------------------------------------

PROBE_ORG = "H0001"  # a hospital of the demo reference set
PROBE_TABLE = "T0001"
PROBE_MONTH = "2021-01"  # no demo event falls in it, so the probes' row counts only probes
PROBE_MONTH_START = date(2021, 1, 1)
PROBE_TIME_LIMIT_S = 180.0


async def latency(opts: Options) -> Result:
    """Event posted to the collector -> visible in GET /v1/reports/uploads, under background load."""
    result = Result("latency")
    async with bench_slice("latency", opts.log_dir, collector=True, aggregator=True, before_services=True) as piece:
        # Issued before the services start, so their token caches load it on start-up.
        token = await institution_token(piece.iso, PROBE_ORG)
        await start_services(piece, opts.log_dir, collector=True, aggregator=True)
        col, agg = piece.collector, piece.aggregator
        assert col is not None and agg is not None
        stop = asyncio.Event()
        # Background: the demo stream in order (unique event_ids), paced, in 1,000-event batches.
        background = asyncio.create_task(
            load.run_httpx(
                col.url,
                piece.iso.admin_token,
                workload.stream_batches(),
                seconds=PROBE_TIME_LIMIT_S + 10,
                connections=4,
                rate_per_s=opts.background_rate / workload.BATCH,
                stop=stop,
            )
        )
        await asyncio.sleep(3)  # let the background load reach its steady state first
        (probes, usage, wall) = await _measure(
            await _cpu_roots(piece, col, agg), lambda: _probe(piece, token, opts.probes)
        )
        stop.set()
        bg = await background
        # Lag left when the probes ended: if it grew, the aggregator could not keep up with the
        # background load and the latencies measure a growing queue rather than the pipeline.
        lag = metric_sum(await scrape(agg.metrics_url), "aggregator_consumer_lag_records")
    figures = {k: load.percentiles([p[k] for p in probes]) for k in ("ack_ms", "applied_ms", "visible_ms")}
    visible = figures["visible_ms"]
    note = f"{len(probes)} probes, background {opts.background_rate:,.0f} events/s"
    result.figures.append(Figure("e2e latency p50 (post -> report)", visible.get("p50", 0), "ms", note=note))
    result.figures.append(
        Figure(
            "e2e latency p99 (post -> report)",
            visible.get("p99", 0),
            "ms",
            TARGET_LATENCY_P99_MS,
            higher_is_better=False,
            note=note,
        )
    )
    result.details.update(
        {
            "probes": len(probes),
            "probe_wall_s": round(wall, 1),
            "percentiles_ms": figures,
            "report_get_ms": load.percentiles([p["report_ms"] for p in probes]),
            "background": bg.as_dict(),
            "background_events_per_s": round(bg.ok * workload.BATCH / bg.seconds) if bg.seconds else 0,
            "aggregator_lag_records_at_end": lag,
            "cpu_percent_of_one_core": usage,
            "method": "POST one upload (institution token) -> 202; watch its rollup row in the database "
            "every 2 ms; once there, GET /v1/reports/uploads until the row shows it",
        }
    )
    return result


async def _probe(piece: Slice, token: str, count: int) -> list[dict[str, float]]:
    col, agg = piece.collector, piece.aggregator
    assert col is not None and agg is not None
    headers = {"Authorization": f"Bearer {token}"}
    out: list[dict[str, float]] = []
    conn = await asyncpg.connect(piece.iso.database_url)
    deadline = time.perf_counter() + PROBE_TIME_LIMIT_S
    try:
        async with (
            httpx.AsyncClient(base_url=col.url, headers=headers, timeout=10) as post,
            httpx.AsyncClient(base_url=agg.url, headers=headers, timeout=10) as get,
        ):
            for n in range(1, count + 1):
                if time.perf_counter() > deadline:
                    break
                event = {
                    "event_id": f"probe-{piece.iso.tag}-{n}",
                    "org_code": PROBE_ORG,
                    "table_code": PROBE_TABLE,
                    "mode": "realtime",
                    "business_date": f"{PROBE_MONTH}-15",
                    "uploaded_at": f"{PROBE_MONTH}-15T10:00:00+08:00",
                    "record_count": 1,
                }
                sent = time.perf_counter()
                response = await post.post("/v1/uploads", content=orjson.dumps(event), headers=_JSON)
                acked = time.perf_counter()
                if response.status_code != 202:
                    raise RuntimeError(f"probe refused: {response.status_code} {response.text}")
                # Cheap wait for the rollup row (a primary-key read), so the aggregator's event
                # loop is not kept busy serving report requests while it should be consuming.
                applied = await _wait_row(conn, n, deadline)
                report_ms = 0.0
                while True:
                    asked = time.perf_counter()
                    rows = (
                        await get.get("/v1/reports/uploads", params={"month": PROBE_MONTH, "kind": "hospital"})
                    ).json()
                    seen = time.perf_counter()
                    report_ms = (seen - asked) * 1000
                    if rows and rows[0]["records_uploaded"] >= n:
                        break
                    if seen > deadline:
                        raise RuntimeError("probe never became visible in the report")
                out.append(
                    {
                        "ack_ms": (acked - sent) * 1000,
                        "applied_ms": (applied - sent) * 1000,
                        "visible_ms": (seen - sent) * 1000,
                        "report_ms": report_ms,
                    }
                )
    finally:
        await conn.close()
    return out


_JSON = {"Content-Type": "application/json"}


async def _wait_row(conn: asyncpg.Connection, expected: int, deadline: float) -> float:
    while time.perf_counter() < deadline:
        records = await conn.fetchval(
            "SELECT records FROM upload_monthly_tables WHERE org_code = $1 AND month = $2 AND table_code = $3",
            PROBE_ORG,
            PROBE_MONTH_START,
            PROBE_TABLE,
        )
        if records is not None and records >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.002)
    raise RuntimeError("probe never reached the rollups")


# --- the demo month ------------------------------------------------------------------------


def _telemetry(args: list[str], env: dict[str, str], log: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(TELEMETRY), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
    with log.open("a") as out:
        out.write(f"$ telemetry {' '.join(args)}  (exit {done.returncode})\n{done.stdout}\n{done.stderr}\n")
    if done.returncode != 0 and args[:2] != ["demo", "check"]:
        raise RuntimeError(f"telemetry {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


# Every section of the bulletin, as an operator prints it after the replay (deploy/local/demo).
DEMO_REPORTS = (
    ["report", "uploads", "--month", "2020-04", "--kind", "district"],
    ["report", "uploads", "--month", "2020-04", "--kind", "hospital"],
    ["report", "kiosks", "--month", "2020-04"],
    ["report", "hotline", "--month", "2020-04"],
    ["report", "appointments", "--month", "2020-04"],
    ["report", "remote-platforms", "--month", "2020-04"],
)


async def demo(opts: Options) -> Result:
    """`telemetry demo replay` + wait until applied + every section's report, on a fresh slice."""
    result = Result("demo")
    async with bench_slice("demo", opts.log_dir, collector=True, aggregator=True) as piece:
        col, agg = piece.collector, piece.aggregator
        assert col is not None and agg is not None
        env = dict(os.environ)
        env.update(piece.iso.service_env())
        env["TELEMETRY_COLLECTOR_URL"] = col.url
        env["TELEMETRY_AGGREGATOR_URL"] = agg.url
        log = opts.log_dir / f"demo-{piece.iso.tag}.log"
        settings = ToolSettings(
            kafka_bootstrap=KAFKA,
            events_topic=piece.iso.events_topic,
            database_url=piece.iso.database_url,
            events_partitions=6,
        )
        roots = await _cpu_roots(piece, col, agg)
        before = cpu.snapshot(roots)
        t0 = time.perf_counter()
        replay = await asyncio.to_thread(_telemetry, ["demo", "replay"], env, log, 600)
        t1 = time.perf_counter()
        # `telemetry wait-applied` has no option for the consumer group (it is fixed to the demo
        # stack's), so its function is called here with this run's group instead.
        applied = await wait_until_applied(settings, Console(file=io.StringIO()), 300.0, group=piece.iso.consumer_group)
        t2 = time.perf_counter()
        usage = cpu.usage(before, cpu.snapshot(roots), t2 - t0)
        for args in DEMO_REPORTS:
            await asyncio.to_thread(_telemetry, args, env, log, 120)
        t3 = time.perf_counter()
        http_ms = await _http_reports(agg.url, piece.iso.admin_token)
        check = await asyncio.to_thread(_telemetry, ["demo", "check"], env, log, 300)
    posted = re.search(r"events_posted=(\d+)", replay.stdout)
    events = int(posted.group(1)) if posted else 0
    total = t3 - t0
    result.figures.append(
        Figure(
            "demo month: replay + applied + reports",
            total,
            "s",
            TARGET_DEMO_S,
            higher_is_better=False,
            note=(
                f"{events:,} events; replay {t1 - t0:.1f}s, catch-up {t2 - t1:.1f}s, "
                f"{len(DEMO_REPORTS)} reports {t3 - t2:.1f}s"
            ),
        )
    )
    result.figures.append(Figure("demo month replay rate", events / (t1 - t0), "events/s", note="end to end HTTP"))
    result.details.update(
        {
            "events_posted": events,
            "replay_s": round(t1 - t0, 2),
            "wait_applied_s": round(t2 - t1, 2),
            "reports_cli_s": round(t3 - t2, 2),
            "applied_in_time": applied,
            "replay_output": replay.stdout.strip()[-500:],
            "http_report_ms": http_ms,
            "cpu_percent_of_one_core_replay_and_apply": usage,
            "bulletin_check": "passed" if check.returncode == 0 else f"FAILED: {check.stdout[-1500:]}",
        }
    )
    return result


async def _http_reports(url: str, token: str) -> dict[str, float]:
    out: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for name, path in (
            ("uploads-district", "/v1/reports/uploads?month=2020-04&kind=district"),
            ("uploads-hospital", "/v1/reports/uploads?month=2020-04&kind=hospital"),
            ("kiosks", "/v1/reports/kiosks?month=2020-04"),
            ("hotline", "/v1/reports/hotline?month=2020-04"),
            ("appointments", "/v1/reports/appointments?month=2020-04"),
            ("remote-platforms", "/v1/reports/remote-platforms?month=2020-04"),
        ):
            started = time.perf_counter()
            response = await client.get(path)
            response.raise_for_status()
            out[name] = round((time.perf_counter() - started) * 1000, 1)
    return out
