"""Key-store candidates for bounded, month-partitioned dedupe: PostgreSQL CPU per key.

    .venv/bin/python -m bench.keystore [--months 13] [--keys-per-month 300000] [--batches 10]

Builds each candidate in a scratch database `bench_keystore_<tag>` (dropped afterwards), fills
it with `--months` months of keys by SQL (`generate_series`, not through the aggregator), then
applies `--batches` batches of 20,000 keys of the newest month (1 % of them resends of keys of
the older months, as a resend stamped with the time of sending would be) the way the
aggregator would, and reports the **CPU time of the PostgreSQL backend** per key
(`/proc/<pid>/stat`, so other work on the machine does not inflate it), best of the batches'
median. Candidates:

- `flat`: one table, primary key (event_type, org_code, event_id): `INSERT ... ON CONFLICT DO
  NOTHING` (what the store did before months; it cannot drop a month's keys without a DELETE);
- `months-exists`: partitioned by month, a unique index per partition; one statement finds
  the batch's keys in any month (`EXISTS` over the partitioned table: one index probe per
  partition and key), then the new ones are inserted into their own month's partition;
- `months-exists-c`: the same with `COLLATE "C"` key columns (byte comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date

import asyncpg

from bench.stack import db_url

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
BATCH = 20_000
ORGS = 2_000


def backend_cpu_s(pid: int) -> float:
    """utime + stime of a PostgreSQL backend, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def month_start(n: int) -> date:
    """The n-th month from January 2025."""
    return date(2025 + n // 12, n % 12 + 1, 1)


def _flat_ddl(collate: str) -> str:
    return f"""
    CREATE TABLE event_keys (event_type text {collate} NOT NULL, org_code text {collate} NOT NULL,
        event_id text {collate} NOT NULL, month date NOT NULL, received_at timestamptz NOT NULL,
        applied_at timestamptz NOT NULL, PRIMARY KEY (event_type, org_code, event_id))"""


def _months_ddl(collate: str, months: int) -> str:
    parts = [
        f"""CREATE TABLE event_keys (event_type text {collate} NOT NULL, org_code text {collate} NOT NULL,
        event_id text {collate} NOT NULL, month date NOT NULL, received_at timestamptz NOT NULL,
        applied_at timestamptz NOT NULL) PARTITION BY RANGE (month)"""
    ]
    for n in range(months + 1):
        first, after = month_start(n), month_start(n + 1)
        name = f"event_keys_{first:%Y_%m}"
        parts.append(f"CREATE TABLE {name} PARTITION OF event_keys FOR VALUES FROM ('{first}') TO ('{after}')")
        parts.append(f"CREATE UNIQUE INDEX ON {name} (event_type, org_code, event_id)")
    return ";\n".join(parts)


def _uuid_ddl(method: str, months: int) -> str:
    parts = [
        """CREATE TABLE event_keys (key uuid NOT NULL, month date NOT NULL, received_at timestamptz NOT NULL,
        applied_at timestamptz NOT NULL) PARTITION BY RANGE (month)"""
    ]
    for n in range(months + 1):
        first, after = month_start(n), month_start(n + 1)
        name = f"event_keys_{first:%Y_%m}"
        parts.append(f"CREATE TABLE {name} PARTITION OF event_keys FOR VALUES FROM ('{first}') TO ('{after}')")
        unique = "UNIQUE" if method == "btree" else ""
        parts.append(f"CREATE {unique} INDEX ON {name} USING {method} (key)")
    return ";\n".join(parts)


def _hash(org: str, event_id: str) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.blake2b(f"upload\0{org}\0{event_id}".encode(), digest_size=16).digest())


def _fill_sql(months: int, per_month: int, hashed: bool = False) -> list[str]:
    if hashed:
        return [
            f"""INSERT INTO event_keys SELECT md5('upload' || chr(1) || 'H' || lpad((i % {ORGS})::text, 4, '0')
                   || chr(1) || '{month_start(n):%Y-%m}:T0001:realtime:' || lpad(i::text, 9, '0'))::uuid,
                   '{month_start(n)}', now(), now() FROM generate_series(1, {per_month}) AS i"""
            for n in range(months)
        ]
    # Ids as integrators make them: the month, a table, a sequence number; an institution's ids
    # grow in time, so its newest keys sit together at the end of its index range.
    return [
        f"""INSERT INTO event_keys SELECT 'upload', 'H' || lpad((i % {ORGS})::text, 4, '0'),
               '{month_start(n):%Y-%m}:T0001:realtime:' || lpad(i::text, 9, '0'),
               '{month_start(n)}', now(), now() FROM generate_series(1, {per_month}) AS i"""
        for n in range(months)
    ]


def _batches(months: int, per_month: int, batches: int) -> list[tuple[list[str], list[str], list[date]]]:
    rng = random.Random(7)
    out = []
    newest = month_start(months)
    for b in range(batches):
        orgs, ids, ms = [], [], []
        for k in range(BATCH):
            i = b * BATCH + k + 1
            if rng.random() < 0.01:  # a resend of a key first counted in an older month
                n, j = rng.randrange(months), rng.randrange(1, per_month + 1)
                orgs.append(f"H{j % ORGS:04d}")
                ids.append(f"{month_start(n):%Y-%m}:T0001:realtime:{j:09d}")
            else:
                orgs.append(f"H{i % ORGS:04d}")
                ids.append(f"{newest:%Y-%m}:T0001:realtime:{i:09d}")
            ms.append(newest)
        out.append((orgs, ids, ms))
    return out


async def _apply_flat(conn: asyncpg.Connection, orgs: list[str], ids: list[str], ms: list[date]) -> int:
    n: int = await conn.fetchval(
        """WITH i AS (INSERT INTO event_keys SELECT 'upload', o, e, m, now(), now()
                      FROM unnest($1::text[], $2::text[], $3::date[]) AS t(o, e, m)
                      ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i""",
        orgs,
        ids,
        ms,
    )
    return n


async def _apply_months(conn: asyncpg.Connection, orgs: list[str], ids: list[str], ms: list[date]) -> int:
    found = await conn.fetch(
        """SELECT t.o, t.e FROM unnest($1::text[], $2::text[]) AS t(o, e)
           WHERE EXISTS (SELECT 1 FROM event_keys k
                         WHERE k.event_type = 'upload' AND k.org_code = t.o AND k.event_id = t.e)""",
        orgs,
        ids,
    )
    seen = {(r[0], r[1]) for r in found}
    keep = [(o, e, m) for o, e, m in zip(orgs, ids, ms, strict=True) if (o, e) not in seen]
    await conn.copy_records_to_table(
        "event_keys",
        records=[("upload", o, e, m, _NOW, _NOW) for o, e, m in keep],
        columns=["event_type", "org_code", "event_id", "month", "received_at", "applied_at"],
    )
    return len(keep)


async def _apply_uuid(conn: asyncpg.Connection, orgs: list[str], ids: list[str], ms: list[date]) -> int:
    keys = [_hash(o, e) for o, e in zip(orgs, ids, strict=True)]
    found = await conn.fetch("SELECT key FROM event_keys WHERE key = ANY($1::uuid[])", keys)
    seen = {r[0] for r in found}
    keep = [(k, m) for k, m in zip(keys, ms, strict=True) if k not in seen]
    await conn.copy_records_to_table(
        "event_keys",
        records=[(k, m, _NOW, _NOW) for k, m in keep],
        columns=["key", "month", "received_at", "applied_at"],
    )
    return len(keep)


_NOW = __import__("datetime").datetime.now(__import__("datetime").UTC)

Apply = Callable[[asyncpg.Connection, list[str], list[str], list[date]], Awaitable[int]]
CANDIDATES: dict[str, tuple[Callable[[int], str], Apply]] = {
    "flat": (lambda months: _flat_ddl(""), _apply_flat),
    "months-exists": (lambda months: _months_ddl("", months), _apply_months),
    "months-exists-c": (lambda months: _months_ddl('COLLATE "C"', months), _apply_months),
    "months-any-uuid": (lambda months: _uuid_ddl("btree", months), _apply_uuid),
    "months-any-uuid-hash": (lambda months: _uuid_ddl("hash", months), _apply_uuid),
}


async def measure(name: str, months: int, per_month: int, batches: int) -> dict[str, float]:
    """Build candidate `name` in a scratch database and time its batches."""
    database = f"bench_keystore_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(db_url("postgres"))
    await admin.execute(f"CREATE DATABASE {database}")
    try:
        conn = await asyncpg.connect(db_url(database))
        try:
            ddl, apply = CANDIDATES[name]
            await conn.execute(ddl(months))
            started = time.perf_counter()
            for sql in _fill_sql(months, per_month, "uuid" in name):
                await conn.execute(sql)
            await conn.execute("VACUUM ANALYZE event_keys")
            fill_s = time.perf_counter() - started
            size = await conn.fetchval(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size('event_keys'))"
                " FROM pg_partition_tree('event_keys')"
            )
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            per_key: list[float] = []
            for orgs, ids, ms in _batches(months, per_month, batches):
                before = backend_cpu_s(pid)
                async with conn.transaction():
                    await apply(conn, orgs, ids, ms)
                per_key.append((backend_cpu_s(pid) - before) / len(orgs) * 1e6)
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE {database} WITH (FORCE)")
        await admin.close()
    return {
        "keys": months * per_month,
        "fill_s": round(fill_s, 1),
        "bytes_per_key": round(size / (months * per_month), 1),
        "median_us_per_key": round(statistics.median(per_key), 2),
        "best_us_per_key": round(min(per_key), 2),
    }


async def main() -> None:
    """Every candidate, one after the other."""
    parser = argparse.ArgumentParser(prog="python -m bench.keystore")
    parser.add_argument("--months", type=int, default=13)
    parser.add_argument("--keys-per-month", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--only", choices=list(CANDIDATES))
    args = parser.parse_args()
    for name in [args.only] if args.only else CANDIDATES:
        print(name, await measure(name, args.months, args.keys_per_month, args.batches), flush=True)


if __name__ == "__main__":
    asyncio.run(main())


PREFILL_MONTHS = 12


async def prefill(database_url: str, total: int, before: date) -> dict[str, float]:
    """Fill the key store with `total` keys over the 12 closed months before `before`, by SQL.

    As a year of a large province would leave it: one partition per month, each with its
    primary key, the months closed (not archived). The primary key is built after the rows
    are in (a sorted build, minutes faster than 50 million random inserts into it).
    """
    conn = await asyncpg.connect(database_url)
    started = time.perf_counter()
    try:
        per_month = total // PREFILL_MONTHS
        month = before
        for _ in range(PREFILL_MONTHS):
            month = date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)
            part = f"event_keys_{month:%Y_%m}"
            await conn.execute("SELECT ensure_month($1)", month)
            await conn.execute(f"ALTER TABLE {part} DROP CONSTRAINT {part}_pkey")
            # The same institutions as the load (the reference set's), a year earlier.
            await conn.execute(
                f"""INSERT INTO {part} (key, month, received_at, applied_at)
                    SELECT event_key('kiosk', o.orgs[1 + i % cardinality(o.orgs)], 'prefill-' || $1::date || '-' || i),
                           $1::date, now(), now()
                    FROM generate_series(1, $2::int) AS i,
                         (SELECT array_agg(org_code ORDER BY org_code) AS orgs FROM cur_institutions) AS o""",
                month,
                per_month,
            )
            await conn.execute(f"ALTER TABLE {part} ADD PRIMARY KEY (key)")
            await conn.execute(
                "UPDATE months SET state = 'closed', closed_at = now(), cutoff = now() WHERE month = $1", month
            )
        await conn.execute("VACUUM ANALYZE event_keys")
        size = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('event_keys') WHERE isleaf"
        )
    finally:
        await conn.close()
    keys = per_month * PREFILL_MONTHS
    return {
        "keys": keys,
        "months": PREFILL_MONTHS,
        "seconds": round(time.perf_counter() - started, 1),
        "bytes_per_key": round(float(size) / keys, 1) if keys else 0.0,
    }


async def store_size(database_url: str) -> dict[str, float]:
    """Keys held and bytes per key (heap, primary key, TOAST) over every partition."""
    conn = await asyncpg.connect(database_url)
    try:
        keys = int(await conn.fetchval("SELECT count(*) FROM event_keys"))
        size = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree('event_keys') WHERE isleaf"
        )
    finally:
        await conn.close()
    return {"keys": keys, "bytes": int(size), "bytes_per_key": round(float(size) / keys, 1) if keys else 0.0}
