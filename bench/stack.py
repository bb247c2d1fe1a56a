"""A throw-away slice of the local stack for one benchmark: its own database, topics and services.

The broker and PostgreSQL are the ones `deploy/local/up` runs; everything a benchmark writes
goes to a database `bench_<name>_<tag>` and topics `bench.<tag>.*` that are dropped again
afterwards, and the collector/aggregator under test are separate processes on free ports, so
the running demo stack (its database, topics, consumer group and services) is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient

from services.storage.migrate import migrate
from services.storage.reference import read_reference_folder, replace_reference
from services.storage.tokens import issue_token
from services.topics import ensure_topics, event_topics

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
STATE = Path(os.environ.get("TELEMETRY_STATE_DIR", REPO / ".state"))
DEMO_REFERENCE = REPO / "services" / "demo" / "data" / "reference-2020-04"
KAFKA = os.environ.get("TELEMETRY_BENCH_KAFKA", "127.0.0.1:19092")
SERVER_URL = os.environ.get("TELEMETRY_BENCH_SERVER_URL", "postgresql://telemetry:telemetry@127.0.0.1:55432/postgres")
PARTITIONS = 6  # the services' default (TELEMETRY_EVENTS_PARTITIONS)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def db_url(name: str) -> str:
    """URL of database `name` on the benchmark's PostgreSQL server."""
    return SERVER_URL.rsplit("/", 1)[0] + f"/{name}"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Isolation:
    """The names that keep one benchmark run apart from the demo stack and from other runs."""

    tag: str
    database: str
    events_topic: str
    dead_letter_topic: str
    consumer_group: str
    admin_token: str

    @classmethod
    def new(cls, benchmark: str) -> Isolation:
        """Fresh random names for `benchmark`."""
        tag = uuid.uuid4().hex[:10]
        slug = re.sub(r"[^a-z0-9]+", "_", benchmark.lower())
        return cls(
            tag=tag,
            database=f"bench_{slug}_{tag}",
            events_topic=f"bench.{tag}.events",
            dead_letter_topic=f"bench.{tag}.dead-letter",
            consumer_group=f"bench-{tag}",
            # The services refuse short or guessable admin tokens.
            admin_token="bench-" + secrets.token_urlsafe(24),
        )

    @property
    def database_url(self) -> str:
        """URL of this run's database."""
        return db_url(self.database)

    def service_env(self) -> dict[str, str]:
        """TELEMETRY_* variables pointing a service at this run's topic, group and database."""
        return {
            "TELEMETRY_KAFKA_BOOTSTRAP": KAFKA,
            "TELEMETRY_EVENTS_TOPIC": self.events_topic,
            "TELEMETRY_DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "TELEMETRY_EVENTS_PARTITIONS": str(PARTITIONS),
            "TELEMETRY_CONSUMER_GROUP": self.consumer_group,
            "TELEMETRY_DATABASE_URL": self.database_url,
            "TELEMETRY_ADMIN_TOKEN": self.admin_token,
        }


async def create_database(iso: Isolation) -> None:
    """Create, migrate and load the demo reference set into this run's database."""
    server = await asyncpg.connect(SERVER_URL)
    try:
        await server.execute(f'CREATE DATABASE "{iso.database}"')
    finally:
        await server.close()
    conn = await asyncpg.connect(iso.database_url)
    try:
        await migrate(conn)
        # The collector refuses events of unknown institutions, tables and kiosks.
        await replace_reference(conn, read_reference_folder(DEMO_REFERENCE), source="bench")
    finally:
        await conn.close()


async def drop_database(iso: Isolation) -> None:
    """Drop this run's database."""
    await drop_database_named(iso.database)


async def drop_database_named(name: str, attempts: int = 40) -> None:
    """Drop a database, waiting out sessions we may not terminate (bounded: ~20 s).

    FORCE ends the sessions a killed service may have left behind, but refuses outright when
    one of them belongs to a superuser, which is what an autovacuum worker is after a bulk
    load: then a plain DROP (which cancels autovacuum by itself) is retried.
    """
    server = await asyncpg.connect(SERVER_URL)
    try:
        for attempt in range(attempts):
            try:
                await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except asyncpg.InsufficientPrivilegeError:
                try:
                    await server.execute(f'DROP DATABASE IF EXISTS "{name}"')
                    return
                except asyncpg.ObjectInUseError:
                    if attempt == attempts - 1:
                        raise
            await asyncio.sleep(0.5)
    finally:
        await server.close()


async def institution_token(iso: Isolation, org_code: str) -> str:
    """Issue a token for one institution in this run's database."""
    conn = await asyncpg.connect(iso.database_url)
    try:
        return (await issue_token(conn, org_code, "bench", actor="bench")).token
    finally:
        await conn.close()


async def create_topics(iso: Isolation) -> None:
    """Create this run's topics as the services would (same partitions and configs)."""
    await ensure_topics(KAFKA, event_topics(iso.events_topic, iso.dead_letter_topic, PARTITIONS))


async def delete_topics(iso: Isolation) -> None:
    """Delete this run's topics; Kafka then also forgets the group's offsets on them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, client_id="health-telemetry-bench")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in (iso.events_topic, iso.dead_letter_topic) if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


@dataclass
class Service:
    """A collector or aggregator process of this run."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    metrics_port: int | None = None

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        """Base URL of its /metrics (the aggregator serves them on a listener of their own)."""
        return f"http://127.0.0.1:{self.metrics_port or self.port}"

    @property
    def pid(self) -> int:
        """Process id (for CPU accounting and profiling)."""
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time (only our own pid, never by name)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def start_service(name: str, iso: Isolation, log_dir: Path, extra_env: Mapping[str, str] | None = None) -> Service:
    """Start `python -m services.<name>` for this run on a free port."""
    port = free_port()
    metrics_port = free_port() if name == "aggregator" else None
    env = dict(os.environ)
    env.update(iso.service_env())
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "TELEMETRY_COLLECTOR_PORT": str(port),
            "TELEMETRY_AGGREGATOR_PORT": str(port),
            "TELEMETRY_AGGREGATOR_METRICS_PORT": str(metrics_port or 0),
            # INFO logs one line per partition assignment etc.; WARNING keeps the hot path quiet.
            "TELEMETRY_LOG_LEVEL": "WARNING",
        }
    )
    # The collector's spool defaults to .state/collector-spool under the cwd, which is the demo
    # collector's: a run of ours must neither fill nor forward the demo stack's spool.
    spool = log_dir / f"spool-{iso.tag}"
    env["TELEMETRY_SPOOL_DIR"] = str(spool)
    env.update(extra_env or {})
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{iso.tag}.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(PYTHON), "-m", f"services.{name}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return Service(name, port, process, log_path, log, metrics_port)


async def wait_ready(service: Service, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll GET /readyz until 200 (bounded); fail with the log's tail if the process dies."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=service.url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.name} exited during start-up:\n{_tail(service.log_path)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{service.name} not ready after {timeout_s:.0f}s:\n{_tail(service.log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Slice:
    """What a benchmark gets: its isolation names and the services it asked for."""

    iso: Isolation
    collector: Service | None
    aggregator: Service | None


@asynccontextmanager
async def bench_slice(
    benchmark: str,
    log_dir: Path,
    *,
    collector: bool,
    aggregator: bool,
    before_services: bool = False,
) -> AsyncIterator[Slice]:
    """Fresh database and topics, the requested services started and ready; all removed afterwards.

    With `before_services`, the caller starts the services itself (`start_services`), e.g.
    after filling the topic.
    """
    piece = Slice(Isolation.new(benchmark), None, None)
    created_db = False
    try:
        await create_database(piece.iso)
        created_db = True
        await create_topics(piece.iso)
        if not before_services:
            await start_services(piece, log_dir, collector=collector, aggregator=aggregator)
        yield piece
    finally:
        for svc in (piece.collector, piece.aggregator):
            if svc is not None:
                svc.stop()
        # Best effort: a failed clean-up must not hide the benchmark's own figures; it says
        # what was left, and `python -m bench.run clean` removes it.
        try:
            await delete_topics(piece.iso)
        except Exception as exc:  # the broker's or the client's error, whatever it is
            print(f"    warning: topics bench.{piece.iso.tag}.* not deleted: {exc!r}", file=sys.stderr)
        if created_db:
            try:
                await drop_database(piece.iso)
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"    warning: database {piece.iso.database} not dropped: {exc!r}", file=sys.stderr)
        shutil.rmtree(log_dir / f"spool-{piece.iso.tag}", ignore_errors=True)


async def start_services(piece: Slice, log_dir: Path, *, collector: bool, aggregator: bool) -> None:
    """Start the services of a slice and wait until they are ready."""
    if collector:
        piece.collector = start_service("collector", piece.iso, log_dir)
    if aggregator:
        piece.aggregator = start_service("aggregator", piece.iso, log_dir)
    for svc in (piece.collector, piece.aggregator):
        if svc is not None:
            await wait_ready(svc)


def infrastructure_pids() -> dict[str, int | None]:
    """PIDs of the broker and the PostgreSQL postmaster of the local stack, from their pid files."""

    def first_line(path: Path) -> int | None:
        try:
            return int(path.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    return {
        "kafka": first_line(STATE / "kafka" / "kafka.pid"),
        "postgres-server": first_line(STATE / "postgres" / "data" / "postmaster.pid"),
    }


async def backend_pids(iso: Isolation) -> list[int]:
    """PostgreSQL backends connected to this run's database (the services' pools).

    The server is shared with the demo stack and other sessions' tests, so its whole process
    tree says little about our load; these backends are ours alone. A backend that connects
    after this call is not counted (the services' pools are opened at start-up).
    """
    server = await asyncpg.connect(SERVER_URL)
    try:
        rows = await server.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", iso.database
        )
    finally:
        await server.close()
    return [r["pid"] for r in rows]


async def scrape(url: str) -> dict[str, float]:
    """Prometheus text of GET /metrics as {'name{labels}': value} (our own tiny parser)."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        text = (await client.get(f"{url}/metrics")).text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            samples[key] = float(value)
    return samples


def metric_sum(samples: Mapping[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


async def clean_leftovers() -> list[str]:
    """Drop every `bench_*` database and delete every `bench.*` topic (runs that were killed)."""
    removed: list[str] = []
    server = await asyncpg.connect(SERVER_URL)
    try:
        names = [
            r["datname"] for r in await server.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'")
        ]
    finally:
        await server.close()
    for name in names:
        await drop_database_named(name)
        removed.append(f"database {name}")
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA, client_id="health-telemetry-bench")
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith("bench.")]
        if topics:
            await admin.delete_topics(topics)
        removed.extend(f"topic {t}" for t in topics)
    finally:
        await admin.close()
    return removed
