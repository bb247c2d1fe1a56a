"""`bench.run limits`: what the broker and the database do with nothing of ours in the way.

Kafka's own ProducerPerformance (the kafka-tools artifact at the broker's version, resolved by
deploy/local/kafka-tools.sh) writes to this run's topic with the collector's producer settings,
and PostgreSQL takes this run's demo events by COPY into their hypertable, and by COPY to a
stage plus the exactly-once write (`INSERT INTO event_keys ... ON CONFLICT DO NOTHING`, then
only the new rows into the hypertable) in one statement. The collector's and the aggregator's
figures of the same run are divided by these (`ratios`), so a figure says how close to the
machine's limit it is, not only how fast it was on that day's machine.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from bench import cpu, workload
from bench.benchmarks import Figure, Options, Result
from bench.stack import KAFKA, REPO, Slice, bench_slice, infrastructure_pids
from services.contract.envelope import encode_records
from services.streams import STREAMS
from services.streams.copytext import timestamp_text

KAFKA_TOOLS = REPO / "deploy" / "local" / "kafka-tools.sh"
PRODUCER_RECORDS = 2_000_000
# The collector's producer (services/collector/publisher.py) is idempotent with acks=all; the
# issue asks for linger.ms=5 as the limit's setting (the collector's own is 2 ms).
PRODUCER_PROPS = ("acks=all", "enable.idempotence=true", "linger.ms=5")
COPY_ROWS = 400_000
COPY_BATCH = 50_000  # rows per transaction, each committed (the aggregator commits per batch too)

FIG_PRODUCER = "limit: Kafka ProducerPerformance"
FIG_COPY = "limit: COPY into a hypertable"
FIG_DEDUPE = "limit: COPY to a stage + INSERT ON CONFLICT"

_FINAL = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th"
)


def kafka_tools_classpath() -> str:
    """The tools' classpath, resolving the jars from Maven Central the first time."""
    done = subprocess.run([str(KAFKA_TOOLS), "classpath"], capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{KAFKA_TOOLS} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def record_size(events: dict[str, list[dict[str, Any]]]) -> int:
    """Mean bytes of one event as the collector writes it (its share of an envelope record)."""
    total_bytes = total_events = 0
    received = datetime.now(UTC)
    for name, evs in events.items():
        for start in range(0, len(evs), workload.BATCH):
            for record in encode_records(name, evs[start : start + workload.BATCH], received):
                total_bytes += len(record.value) + len(record.key)
                total_events += record.events
    return round(total_bytes / total_events) if total_events else 200


async def producer_performance(
    piece: Slice, size: int, records: int = PRODUCER_RECORDS
) -> tuple[Figure, dict[str, Any]]:
    """ProducerPerformance on this run's topic; its records/s and the CPU it and the broker took."""
    classpath = await asyncio.to_thread(kafka_tools_classpath)
    cmd = [
        "java",
        "-Xmx512m",
        "-cp",
        classpath,
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic",
        piece.iso.events_topic,
        "--num-records",
        str(records),
        "--record-size",
        str(size),
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={KAFKA}",
        *PRODUCER_PROPS,
    ]
    roots: cpu.Roots = dict(infrastructure_pids())
    before = cpu.snapshot(roots)
    started = time.perf_counter()
    done = await asyncio.to_thread(
        subprocess.run, cmd, capture_output=True, text=True, check=False, timeout=600, cwd=REPO
    )
    wall = time.perf_counter() - started
    usage = cpu.usage(before, cpu.snapshot(roots), wall)
    found = _FINAL.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(
            f"ProducerPerformance failed ({done.returncode}):\n{done.stdout[-1000:]}\n{done.stderr[-2000:]}"
        )
    rate = float(found.group(2))
    # The JVM's start-up is inside `wall` but not inside ProducerPerformance's own rate.
    note = (
        f"{records:,} records of {size} B, {' '.join(PRODUCER_PROPS)}; p99 {found.group(8)} ms; "
        f"producer JVM {usage.get('reaped-children', 0):.0f}%, kafka {usage.get('kafka', 0):.0f}%, "
        f"others {usage.get('others', 0):.0f}% (over {wall:.1f} s incl. JVM start)"
    )
    details = {
        "command": " ".join([*cmd[:2], "<kafka-tools classpath>", *cmd[4:]]),
        "records": int(found.group(1)),
        "records_per_s": rate,
        "mb_per_s": float(found.group(3)),
        "latency_ms": {
            "avg": float(found.group(4)),
            "max": float(found.group(5)),
            "p50": int(found.group(6)),
            "p95": int(found.group(7)),
            "p99": int(found.group(8)),
        },
        "record_size_bytes": size,
        "wall_s_incl_jvm_start": round(wall, 2),
        "cpu_percent_of_one_core": usage,
        "output_tail": done.stdout.strip()[-400:],
    }
    # Per core of the producer JVM and the broker: the collector's per-core figure counts its
    # broker's CPU too, so the two compare on a machine busy with other work.
    share = (usage.get("reaped-children", 0) + usage.get("kafka", 0)) / 100
    per_core = round(rate / share) if share > 0.05 else None
    details["per_producer_and_broker_core"] = per_core
    figure = Figure(FIG_PRODUCER, rate, "records/s", note=note, per_core=per_core)
    return figure, details


def _copy_lines(rows: int) -> dict[str, list[str]]:
    """COPY text lines of the raw tables (each stream's own line function): the first `rows` demo events.

    The demo month's mix, as the aggregator benchmark applies it; each event under a key of
    its own (the month resubmits some events, and a limit is measured on new keys).
    """
    received = timestamp_text(datetime.now(UTC))
    raw: dict[str, list[dict[str, Any]]] = {}
    for offset, (name, event) in enumerate(workload.demo_stream()):
        if offset >= rows:
            break
        raw.setdefault(name, []).append({**event, "event_id": f"{event['event_id']}.{offset}"[-128:]})
    lines: dict[str, list[str]] = {}
    offset = 0
    for name, events in raw.items():
        stream = STREAMS[name]
        out = lines[name] = []
        for event in stream.list_adapter.validate_python(events):
            out.append(stream.raw.line(event, received, offset % 6, offset))
            offset += 1
    return lines


async def _timed_batches(
    conn: asyncpg.Connection, roots: cpu.Roots, lines: dict[str, list[str]], statements: Sequence[str] | None
) -> tuple[float, int, dict[str, float]]:
    """Write `lines` in COPY_BATCH-row transactions; (seconds, rows, CPU use)."""
    before = cpu.snapshot(roots)
    started = time.perf_counter()
    rows = 0
    for name, stream_lines in lines.items():
        stream = STREAMS[name]
        columns = list(stream.raw.columns)
        for start in range(0, len(stream_lines), COPY_BATCH):
            chunk = stream_lines[start : start + COPY_BATCH]
            body = io.BytesIO("".join(chunk).encode())
            async with conn.transaction():
                if statements is None:
                    await conn.copy_to_table(stream.raw.name, source=body, columns=columns, format="text")
                else:
                    await conn.execute(
                        f"CREATE TEMP TABLE stage ON COMMIT DROP AS SELECT {', '.join(columns)} "
                        f"FROM {stream.raw.name} WITH NO DATA"
                    )
                    await conn.copy_to_table("stage", source=body, columns=columns, format="text")
                    # Statistics for the join below: a fresh temp table has none.
                    await conn.execute("ANALYZE stage")
                    for statement in statements:
                        sql = statement.format(raw=stream.raw.name, columns=", ".join(columns))
                        await conn.execute(sql, *((name,) if "$1" in sql else ()))
            rows += len(chunk)
    wall = time.perf_counter() - started
    return wall, rows, cpu.usage(before, cpu.snapshot(roots), wall)


# The whole exactly-once write in PostgreSQL: each key once (the key store's own key,
# `event_key()`, in the partition of its month; months created as the aggregator does), only
# new events into the raw table. The month here is that of `received_at`, which every raw table
# has: close enough for a yardstick, and it keeps the statement the same for every stream.
_DEDUPE = (
    """SELECT ensure_month(m) FROM (
           SELECT DISTINCT date_trunc('month', received_at AT TIME ZONE 'Asia/Shanghai')::date AS m FROM stage) s""",
    """WITH new AS (
           INSERT INTO event_keys (key, month, received_at)
           SELECT event_key($1, org_code, event_id),
                  date_trunc('month', received_at AT TIME ZONE 'Asia/Shanghai')::date, received_at
           FROM stage ON CONFLICT DO NOTHING RETURNING key)
       INSERT INTO {raw} ({columns})
       SELECT {columns} FROM stage JOIN new ON new.key = event_key($1, stage.org_code, stage.event_id)""",
)


def _backend_note(rate: float, usage: dict[str, float]) -> str:
    share = usage.get("postgres", 0) / 100
    per_core = f", {rate / share:,.0f} rows/s per backend core" if share > 0.05 else ""
    return f"backend CPU {usage.get('postgres', 0):.0f}%{per_core}, others {usage.get('others', 0):.0f}%"


async def copy_limits(piece: Slice, rows: int = COPY_ROWS) -> tuple[list[Figure], dict[str, Any]]:
    """Rows/s of a plain COPY into the raw hypertables, and of COPY to a stage + the deduplicating insert."""
    lines = await asyncio.to_thread(_copy_lines, rows)
    conn = await asyncpg.connect(piece.iso.database_url)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        # The server's whole tree too, so that `others` is what is not PostgreSQL's.
        roots: cpu.Roots = {**infrastructure_pids(), "postgres": [backend]}
        copy_s, copied, copy_cpu = await _timed_batches(conn, roots, lines, None)
        await conn.execute(f"TRUNCATE {', '.join(STREAMS[name].raw.name for name in lines)}")
        dedupe_s, deduped, dedupe_cpu = await _timed_batches(conn, roots, lines, _DEDUPE)
        stored = await conn.fetchval("SELECT count(*) FROM event_keys")
        raw_rows = 0
        for name in lines:
            raw_rows += await conn.fetchval(f"SELECT count(*) FROM {STREAMS[name].raw.name}")
    finally:
        await conn.close()
    if stored != raw_rows or stored != deduped:
        raise RuntimeError(f"the deduplicating write stored {stored} keys and {raw_rows} rows of {deduped}")
    mix = ", ".join(f"{name} {len(v):,}" for name, v in lines.items())
    figures = [
        Figure(
            FIG_COPY,
            copied / copy_s,
            "rows/s",
            note=f"{copied:,} rows ({mix}), {COPY_BATCH:,} per transaction; {_backend_note(copied / copy_s, copy_cpu)}",
        ),
        Figure(
            FIG_DEDUPE,
            deduped / dedupe_s,
            "rows/s",
            note="the same rows: their keys into event_keys, the new ones into the hypertable; "
            + _backend_note(deduped / dedupe_s, dedupe_cpu),
        ),
    ]
    details = {
        "rows": copied,
        "rows_per_stream": {name: len(v) for name, v in lines.items()},
        "rows_per_transaction": COPY_BATCH,
        "distinct_keys": stored,
        "copy": {"seconds": round(copy_s, 2), "cpu_percent_of_one_core": copy_cpu},
        "copy_stage_on_conflict": {
            "seconds": round(dedupe_s, 2),
            "cpu_percent_of_one_core": dedupe_cpu,
            "statement": _DEDUPE,
        },
    }
    return figures, details


async def limits(opts: Options) -> Result:
    """ProducerPerformance and the two COPY paths, on this run's own topic and database."""
    result = Result("limits")
    events = await asyncio.to_thread(workload.collect_streams, 20_000)
    size = record_size(events)
    async with bench_slice("limits", opts.log_dir, collector=False, aggregator=False) as piece:
        producer, producer_details = await producer_performance(piece, size)
        copies, copy_details = await copy_limits(piece)
    result.figures.extend([producer, *copies])
    result.details.update({"producer_performance": producer_details, "copy": copy_details})
    return result


# --- ratios of one run ---------------------------------------------------------------------

# Which figures are divided by which limit (by name prefix), and the ratio issue 12 asks for.
RATIO_OF: Sequence[tuple[str, str, float]] = (
    ("collector-batch ", FIG_PRODUCER, 0.65),
    ("aggregator apply (steady)", FIG_DEDUPE, 0.4),
)


def ratios(results: Sequence[Result]) -> list[Figure]:
    """Each figure of this run that has a limit, divided by that limit measured in the same run."""
    figures = [f for r in results for f in r.figures]
    limits_by_name = {f.name: f.value for f in figures if f.name.startswith("limit: ")}
    per_core_by_name = {f.name: f.per_core for f in figures if f.name.startswith("limit: ")}
    out: list[Figure] = []
    for prefix, limit_name, target in RATIO_OF:
        limit = limits_by_name.get(limit_name)
        if not limit:
            continue
        for fig in figures:
            if fig.name.startswith(prefix) and fig.unit.endswith("/s") and fig.value > 0:
                per_core = ""
                limit_per_core = per_core_by_name.get(limit_name)
                if fig.per_core and limit_per_core:
                    per_core = (
                        f"; per core incl. the broker {fig.per_core:,.0f} ÷ {limit_per_core:,.0f} "
                        f"= {fig.per_core / limit_per_core:.2f}"
                    )
                out.append(
                    Figure(
                        f"ratio: {fig.name} ÷ {limit_name.removeprefix('limit: ')}",
                        fig.value / limit,
                        "×",
                        target,
                        note=f"{fig.value:,.0f} {fig.unit} ÷ {limit:,.0f}{per_core}",
                    )
                )
    return out
