"""What the fault tests and the soak share: real processes, a bounded load that remembers every
`202`, the exact check, and the gates that hold an aggregator at a chosen point of its batch.

Nothing here is a mock. The collector and the aggregators run as `python -m services.<name>`
processes, so a signal hits the real thing; a spare broker (or a three-broker cluster) and a
throwaway PostgreSQL cluster are started through the project's own `deploy/local/kafka.sh` and
`postgres.sh` on free loopback ports and state folders of their own, so stopping them never
touches the shared stack. This module is not a test module (pytest does not collect it) and does not import
pytest: the soak (`python -m tests.faults.soak`) runs it outside pytest.

Every wait is bounded and fails with `HarnessError` saying what it waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from services.storage.keys import event_key
from tests.fixtures.events import REFERENCE
from tests.fixtures.stack import free_port

REPO = Path(__file__).resolve().parents[2]
LOG_ROOT = REPO / ".state" / "test-logs" / "faults"
PLATFORM_ZONE = ZoneInfo("Asia/Shanghai")
PARTITIONS = 6
# Prefix of the application_name of every aggregator started here: the gates below only
# ever hold those sessions, never the collector's or the test's own.
AGGREGATOR_APP_PREFIX = "fault-agg-"


class HarnessError(AssertionError):
    """A bounded wait ran out, or a component did not do what it must."""


def log_dir_for(name: str, keep: int = 40) -> Path:
    """A new folder for one run's process logs; only the newest `keep` runs' folders are kept."""
    LOG_ROOT.mkdir(parents=True, exist_ok=True)

    def modified(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # pruned by a run beside this one
            return 0.0

    folders = sorted((p for p in LOG_ROOT.iterdir() if p.is_dir()), key=modified)
    for old in folders[: max(len(folders) - keep + 1, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return LOG_ROOT / f"{name}-{stamp}-{os.getpid()}"


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float, every_s: float = 0.05) -> float:
    """Poll `check` until true; return the seconds it took; raise HarnessError after `timeout_s`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        if await check():
            return loop.time() - start
        if loop.time() - start > timeout_s:
            raise HarnessError(f"timed out after {timeout_s:.0f}s waiting for: {what}")
        await asyncio.sleep(every_s)


def with_application_name(url: str, name: str) -> str:
    """`url` with `?application_name=name`: asyncpg passes it to the server, so pg_stat_activity
    and the gates tell each process's sessions apart without any hook in the services."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({"application_name": name})) if q)
    return urlunsplit(parts._replace(query=query))


# -- reference data -----------------------------------------------------------------------------

# Two institutions per partition of the 6-partition topic (records are keyed by org_code), so
# every aggregator of a group has work and a rebalance always moves partitions that carry load.
DISTRICTS = ["D01", "D05", "D14", "D03", "D04", "D02"]
HOSPITALS = ["H01", "H07", "H13", "H02", "H06", "H10"]
TABLES = ["OPV", "DIS", "EHR", "HTN", "DM", "LAB", "XTRA"]


def _check_spread() -> None:
    partitioner = DefaultPartitioner()
    everyone = list(range(PARTITIONS))
    used = [partitioner(code.encode(), everyone, everyone) for code in DISTRICTS + HOSPITALS]
    if sorted(used) != sorted(everyone * 2):
        raise HarnessError(f"institutions do not cover each partition twice: {used}")


def reference_body() -> dict[str, list[dict[str, str]]]:
    """PUT /v1/admin/reference body: 12 institutions, the tables, two kiosks per hospital."""
    _check_spread()
    return {
        "institutions": [{"org_code": c, "name": f"区{c}", "kind": "district"} for c in DISTRICTS]
        + [{"org_code": c, "name": f"医院{c}", "kind": "hospital"} for c in HOSPITALS],
        "tables": [dict(t) for t in REFERENCE["tables"]],
        "declarations": [{"org_code": c, "table_code": "OPV"} for c in DISTRICTS + HOSPITALS],
        "kiosks": [{"kiosk_id": f"K-{c}-{n}", "org_code": c} for c in HOSPITALS for n in (1, 2)],
    }


# -- processes ----------------------------------------------------------------------------------


@dataclass
class Service:
    """One service process (`python -m services.<module>`), restartable with the same settings.

    Each start is a new generation with its own application_name and log file, so a killed
    process's sessions and log lines are never confused with its successor's.
    """

    module: str  # "collector" or "aggregator"
    name: str
    port: int
    env: dict[str, str]
    log_dir: Path
    generation: int = 0
    proc: subprocess.Popen[bytes] | None = None
    database_url: str = ""
    metrics_port: int | None = None  # the aggregator's metrics listener; None: /metrics on `port`

    @property
    def url(self) -> str:
        """Base URL of the process's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def app_name(self) -> str:
        """application_name of the current generation's database sessions."""
        prefix = AGGREGATOR_APP_PREFIX if self.module == "aggregator" else "fault-"
        return f"{prefix}{self.name}-{self.generation}"

    @property
    def log_path(self) -> Path:
        """This generation's log (JSON lines)."""
        return self.log_dir / f"{self.name}-{self.generation}.log"

    def start(self) -> None:
        """Start a new generation (the previous one must be gone)."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is still running"
        self.generation += 1
        env = {
            **self.env,
            "TELEMETRY_DATABASE_URL": with_application_name(self.database_url, self.app_name),
            f"TELEMETRY_{self.module.upper()}_PORT": str(self.port),
        }
        if self.metrics_port is not None:
            env["TELEMETRY_AGGREGATOR_METRICS_PORT"] = str(self.metrics_port)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.module}"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        """Pid of the running generation."""
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """The current generation has not exited (a stopped process is alive)."""
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        """Signal this process only (never by name, never a group)."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float) -> int:
        """Exit code once the process is gone."""
        proc = self.proc
        assert proc is not None

        async def gone() -> bool:
            return proc.poll() is not None

        await wait_until(gone, f"{self.name} (pid {proc.pid}) to exit", timeout_s)
        return int(proc.returncode)

    async def kill(self) -> None:
        """SIGKILL and reap."""
        if self.alive():
            self.send(signal.SIGKILL)
        if self.proc is not None:
            await self.wait_exit(10)

    async def terminate(self, timeout_s: float = 45) -> None:
        """SIGTERM (a SIGSTOPped process is continued first); fail unless it shuts down cleanly."""
        if self.alive():
            self.send(signal.SIGCONT)
            self.send(signal.SIGTERM)
        await self.wait_clean_exit(timeout_s)

    async def wait_clean_exit(self, timeout_s: float) -> None:
        """Wait for the exit after a SIGTERM; fail unless the shutdown ran to its end.

        uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done, so a clean
        exit is status -15 (or 0) with "Application shutdown complete." logged, not just 0.
        """
        code = await self.wait_exit(timeout_s)
        log = self.log_path.read_text("utf-8", "replace")
        if code not in (0, -signal.SIGTERM) or "Application shutdown complete." not in log:
            raise HarnessError(f"{self.name} did not shut down cleanly (exit {code}):\n{self.log_tail()}")

    def close(self) -> None:
        """Cleanup for `finally`: make sure this generation is gone (SIGKILL if it must)."""
        self.ask_to_stop()
        self.reap()

    def ask_to_stop(self) -> None:
        """SIGCONT (a paused process could not exit) and SIGTERM, if this generation still runs."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        """Wait up to 30 s for this generation to exit after ask_to_stop, then SIGKILL it."""
        proc = self.proc
        if proc is None:
            return
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    async def get(self, path: str, timeout_s: float = 5) -> httpx.Response:
        """GET from the process's API."""
        async with httpx.AsyncClient(base_url=self.url, timeout=timeout_s) as client:
            return await client.get(path)

    async def ready(self) -> bool:
        """GET /readyz answers 200."""
        try:
            return (await self.get("/readyz", timeout_s=3)).status_code == 200
        except httpx.TransportError:
            return False

    async def wait_ready(self, timeout_s: float = 60) -> float:
        """Seconds until /readyz answers 200; fails early if the process died."""

        async def check() -> bool:
            if not self.alive():
                raise HarnessError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            return await self.ready()

        return await wait_until(check, f"{self.name} ready", timeout_s, every_s=0.2)

    async def metrics(self, *names: str) -> dict[str, float]:
        """Each named sample summed over its labels, all from one scrape of /metrics."""
        if self.metrics_port is None:
            text = (await self.get("/metrics")).text
        else:
            async with httpx.AsyncClient(timeout=5) as client:
                text = (await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
        totals = dict.fromkeys(names, 0.0)
        families = set()
        for family in text_string_to_metric_families(text):
            families.add(family.name)
            for sample in family.samples:
                if sample.name in totals:
                    totals[sample.name] += sample.value
        # A misspelt name would read as a constant 0 and make a test wait for nothing.
        unknown = [n for n in names if not any(n == f or n.startswith(f + "_") for f in families)]
        if unknown:
            raise HarnessError(f"{self.name} exports no metric {unknown}")
        return totals

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of this generation's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def assigned_partitions(self) -> list[int]:
        """The partitions this generation's consumer was last given (from its log)."""
        assigned: list[int] = []
        for line in self.log_path.read_text("utf-8", "replace").splitlines():
            if '"partitions assigned"' in line:
                assigned = list(json.loads(line)["partitions"])
        return assigned

    def logs_contain(self, text: str) -> list[Path]:
        """Logs of every generation so far that contain `text`."""
        found = []
        for n in range(1, self.generation + 1):
            path = self.log_dir / f"{self.name}-{n}.log"
            if path.exists() and text in path.read_text("utf-8", "replace"):
                found.append(path)
        return found


@dataclass
class Pipeline:
    """One collector and some aggregators, all on one database, topic pair and consumer group."""

    database_url: str
    kafka_bootstrap: str
    events_topic: str
    dead_letter_topic: str
    consumer_group: str
    admin_token: str
    log_dir: Path
    spool_dir: Path
    collector: Service = field(init=False)
    aggregators: dict[str, Service] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.collector = self._service("collector", "collector")

    def _service(self, module: str, name: str) -> Service:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TELEMETRY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "TELEMETRY_ADMIN_TOKEN": self.admin_token,
            "TELEMETRY_EVENTS_TOPIC": self.events_topic,
            "TELEMETRY_DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "TELEMETRY_CONSUMER_GROUP": self.consumer_group,
            "TELEMETRY_SPOOL_DIR": str(self.spool_dir),
            # INFO shows joins, assignments and commits skipped; DEBUG also every Kafka request.
            "TELEMETRY_LOG_LEVEL": os.environ.get("TELEMETRY_TEST_SERVICE_LOG_LEVEL", "INFO"),
            "TELEMETRY_CACHE_REFRESH_S": "1",
            **self.extra_env,
        }
        metrics_port = free_port() if module == "aggregator" else None
        return Service(
            module, name, free_port(), env, self.log_dir, database_url=self.database_url, metrics_port=metrics_port
        )

    def aggregator(self, name: str) -> Service:
        """The aggregator called `name` (created, not started, on first use)."""
        if name not in self.aggregators:
            self.aggregators[name] = self._service("aggregator", name)
        return self.aggregators[name]

    def by_app_name(self, app_name: str) -> Service:
        """The aggregator whose current generation uses this application_name."""
        for service in self.aggregators.values():
            if service.app_name == app_name:
                return service
        raise HarnessError(f"no running aggregator has application_name {app_name!r}")

    async def start(self, *aggregators: str) -> None:
        """Start the collector and the named aggregators, load the reference data, wait until ready."""
        self.collector.start()
        for name in aggregators:
            self.aggregator(name).start()
        await wait_until(self._collector_answers, "collector answers", 60, every_s=0.2)
        async with httpx.AsyncClient(base_url=self.collector.url, timeout=30) as client:
            response = await client.put("/v1/admin/reference", json=reference_body(), headers=self.headers)
            if response.status_code not in (200, 201):
                raise HarnessError(f"reference not loaded: {response.status_code} {response.text}")
        await self.collector.wait_ready()
        for name in aggregators:
            await self.aggregator(name).wait_ready()

    async def _collector_answers(self) -> bool:
        if not self.collector.alive():
            raise HarnessError(f"collector exited during start-up:\n{self.collector.log_tail()}")
        try:
            return (await self.collector.get("/healthz", timeout_s=2)).status_code == 200
        except httpx.TransportError:
            return False

    @property
    def headers(self) -> dict[str, str]:
        """The admin token (not rate limited, may post any institution's events)."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    def close(self) -> None:
        """Stop every process still running (SIGCONT first, so a paused one can exit)."""
        services = [*self.aggregators.values(), self.collector]
        # All at once: each takes seconds to shut down cleanly.
        for service in services:
            service.ask_to_stop()
        for service in services:
            service.reap()

    def consumer_crashes(self) -> list[Path]:
        """Aggregator logs saying the consume loop died (the process would stay up consuming nothing)."""
        return [p for s in self.aggregators.values() for p in s.logs_contain("consumer stopped with an error")]


# -- spare broker and throwaway PostgreSQL ------------------------------------------------------


def _run_script(
    script: str, action: str, env: dict[str, str], timeout_s: float = 180, args: list[str] | None = None
) -> None:
    done = subprocess.run(
        [str(REPO / "deploy/local" / script), action, *(args or [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise HarnessError(f"{script} {action} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _kafka_env(root: Path, state_dir: Path, **settings: str) -> dict[str, str]:
    """kafka.sh's environment for brokers of our own: their state folder, the script's step logs
    under `root` (not the shared stack's `.state/`), modest heaps, and `settings` (ports, count)."""
    return {
        **os.environ,
        "TELEMETRY_STATE_DIR": str(root / "state"),
        "KAFKA_STATE_DIR": str(state_dir),
        "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
        **settings,
    }


def _kill_ours(pid_file: Path, state_dir: Path) -> None:
    """SIGKILL the broker whose pid file this is (after checking that its command line is ours)
    and wait until it is gone."""
    _wait_gone(_send_kill(pid_file, state_dir))


def _send_kill(pid_file: Path, state_dir: Path) -> int:
    pid = int(pid_file.read_text().strip())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    if str(state_dir).encode() not in cmdline:
        raise HarnessError(f"pid {pid} is not our spare broker: {cmdline[:200]!r}")
    os.kill(pid, signal.SIGKILL)
    return pid


def _wait_gone(pid: int) -> None:
    # A killed JVM takes a second or two to give its memory back and leave /proc.
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    raise HarnessError(f"spare broker pid {pid} did not die")


class SpareBroker:
    """A single-node broker of our own through deploy/local/kafka.sh, on free ports.

    TELEMETRY_STATE_DIR points the script's step logs into our folder too, so nothing of the
    shared stack's `.state/` is written.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        port, controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        self.state_dir = root / "kafka"
        self._env = _kafka_env(
            root,
            self.state_dir,
            TELEMETRY_KAFKA_BROKERS="1",
            KAFKA_PORT=str(port),
            KAFKA_CONTROLLER_PORT=str(controller),
        )

    def start(self) -> None:
        """Start and wait until it serves requests."""
        _run_script("kafka.sh", "start", self._env)

    def stop(self) -> None:
        """SIGTERM (controlled shutdown) and wait until it is gone."""
        _run_script("kafka.sh", "stop", self._env)

    def kill(self) -> None:
        """SIGKILL the broker process (ours: its pid file is in our state folder)."""
        _kill_ours(self.state_dir / "kafka.pid", self.state_dir)


BROKERS = (1, 2, 3)
# The services' settings on the cluster, as deploy/local/services.sh gives them with
# TELEMETRY_KAFKA_BROKERS=3; a shorter publish timeout sends requests to the spool sooner.
CLUSTER_SERVICE_ENV = {
    "TELEMETRY_EVENTS_REPLICATION_FACTOR": "3",
    "TELEMETRY_EVENTS_MIN_INSYNC_REPLICAS": "2",
    "TELEMETRY_PUBLISH_TIMEOUT_S": "3",
}


class SpareCluster:
    """Three brokers and a KRaft controller of our own (deploy/local/kafka.sh with
    TELEMETRY_KAFKA_BROKERS=3), on free ports, in a state folder of our own.

    Brokers are numbered 1-3 as their node ids; each can be stopped (SIGTERM: a controlled
    shutdown that hands its leaderships over), killed (SIGKILL) and started alone, while the
    controller keeps running, as in a cluster whose controller quorum is healthy.
    """

    def __init__(self, root: Path, quick_start: bool = False) -> None:
        """`quick_start`: JVMs without the optimising compiler, which start a third faster on two
        cores (for tests that restart brokers; the soak keeps the JVM's default)."""
        self.root = root
        self.ports = {n: free_port() for n in BROKERS}
        self.bootstrap = ",".join(f"127.0.0.1:{self.ports[n]}" for n in BROKERS)
        self.state_dir = root / "kafka-cluster"
        self._env = _kafka_env(
            root,
            self.state_dir,
            TELEMETRY_KAFKA_BROKERS="3",
            KAFKA_PORTS=" ".join(str(self.ports[n]) for n in BROKERS),
            KAFKA_CONTROLLER_PORT=str(free_port()),
            KAFKA_JVM_OPTS="-XX:TieredStopAtLevel=1" if quick_start else "",
        )

    def start(self) -> None:
        """Start the controller and every broker not running; wait until they serve requests."""
        _run_script("kafka.sh", "start", self._env)

    def stop(self) -> None:
        """Stop the brokers (controlled shutdown), then the controller."""
        _run_script("kafka.sh", "stop", self._env)

    def remove(self) -> None:
        """Cleanup of a cluster nobody will use again: SIGKILL the brokers and the controller (a
        controlled shutdown takes seconds each and keeps nothing we need), then kafka.sh stop
        for whatever is left (and to check that nothing is)."""
        killed = []
        for node in [*(f"broker-{n}" for n in BROKERS), "controller"]:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError, HarnessError):
                killed.append(_send_kill(self.state_dir / node / "kafka.pid", self.state_dir))
        for pid in killed:
            _wait_gone(pid)
        self.stop()

    def start_broker(self, n: int) -> None:
        """Start broker n (a no-op if it runs) and wait until it serves requests."""
        _run_script("kafka.sh", "start", self._env, args=[str(n)])

    def stop_broker(self, n: int) -> None:
        """SIGTERM broker n (controlled shutdown) and wait until it is gone."""
        _run_script("kafka.sh", "stop", self._env, args=[str(n)])

    def kill_broker(self, n: int) -> None:
        """SIGKILL broker n: no controlled shutdown, its leaderships move when its session expires."""
        _kill_ours(self.state_dir / f"broker-{n}" / "kafka.pid", self.state_dir)

    def broker_log(self, n: int) -> Path:
        """Broker n's log."""
        return self.state_dir / f"broker-{n}" / "broker.log"

    @contextlib.asynccontextmanager
    async def _admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            yield admin
        finally:
            await admin.close()

    async def partitions(self, topic: str) -> list[dict[str, Any]]:
        """The topic's partitions from fresh metadata: partition, leader (-1: none), replicas, isr."""
        async with self._admin() as admin:
            (described,) = await admin.describe_topics([topic])
        return sorted(described["partitions"], key=lambda p: int(p["partition"]))

    async def create_topic(self, name: str, partitions: int, replication: int, config: dict[str, str]) -> None:
        """Create a topic the way someone else might have, before the services start."""
        async with self._admin() as admin:
            response = await admin.create_topics([NewTopic(name, partitions, replication, topic_configs=config)])
        errors = [row for row in response.to_object()["topic_errors"] if row["error_code"]]
        if errors:
            raise HarnessError(f"topic {name} not created: {errors}")

    async def topic_config(self, name: str, key: str) -> tuple[str, int]:
        """A topic's effective value of `key` and its DescribeConfigs source (1: the topic's own setting)."""
        async with self._admin() as admin:
            responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, {key: None})])
        for response in responses:
            for resource in response.to_object()["resources"]:
                for entry in resource["config_entries"]:
                    if entry["config_names"] == key:
                        return str(entry["config_value"]), int(entry["config_source"])
        raise HarnessError(f"no {key} for topic {name}")

    async def set_topic_config(self, name: str, config: dict[str, str]) -> None:
        """Replace the topic's own settings with `config` (AlterConfigs), as an operator fixing it would."""
        async with self._admin() as admin:
            responses = await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, config)])
        errors = [r for resp in responses for r in resp.to_object()["resources"] if r["error_code"]]
        if errors:
            raise HarnessError(f"topic {name} not altered: {errors}")

    async def listed(self, topic: str, partitions: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """The topic's partitions once the metadata lists all of them (a broker may answer before a
        new topic's metadata has reached it)."""
        found: list[dict[str, Any]] = []

        async def complete() -> bool:
            found[:] = await self.partitions(topic)
            return len(found) == partitions

        await wait_until(complete, f"the {partitions} partitions of {topic} in the metadata", timeout_s, 0.2)
        return found

    async def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> node id of its leader (-1 while it has none)."""
        return {int(p["partition"]): int(p["leader"]) for p in await self.partitions(topic)}

    async def wait_in_sync(self, topics: list[str], timeout_s: float = 90) -> float:
        """Seconds until every partition of the topics has a leader and all its replicas in sync."""

        async def in_sync() -> bool:
            try:
                for topic in topics:
                    parts = await self.partitions(topic)
                    if not parts or any(p["leader"] < 0 or sorted(p["isr"]) != sorted(p["replicas"]) for p in parts):
                        return False
            except KafkaError:
                return False
            return True

        return await wait_until(in_sync, f"every replica of {topics} in sync", timeout_s, every_s=0.5)


class ThrowawayPostgres:
    """A PostgreSQL 15 + TimescaleDB cluster of our own, through deploy/local/postgres.sh.

    Its state folder is under /var/tmp, not pytest's tmp_path: the server runs as the postgres
    user, which cannot traverse root's private pytest folders. TELEMETRY_STATE_DIR gives the
    script a state folder of its own (cluster in `<state>/postgres`), PG_PORT a free port.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="telemetry-faults-pg-", dir="/var/tmp"))
        self.port = free_port()
        self.url = f"postgresql://telemetry:telemetry@127.0.0.1:{self.port}/telemetry"
        self._env = {**os.environ, "TELEMETRY_STATE_DIR": str(self.root), "PG_PORT": str(self.port)}

    def start(self) -> None:
        """Create (first time) and start the cluster; role, database and extension exist after."""
        _run_script("postgres.sh", "start", self._env)

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m <mode>`; `immediate` is a crash: open transactions are lost, recovery at start."""
        _run_script("postgres.sh", "stop", {**self._env, "PG_STOP_MODE": mode})

    def remove(self) -> None:
        """Stop (if running) and delete the cluster."""
        with contextlib.suppress(HarnessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


async def migrate_database(url: str) -> None:
    """Apply the migrations (the services would; the gates need the tables first)."""
    from services.storage.migrate import migrate

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


# -- gates --------------------------------------------------------------------------------------

# Test-only triggers installed into the test's own database (never into production code): they
# let the test stop an aggregator's batch transaction at a chosen point, deterministically,
# instead of hoping a signal lands in a millisecond window. A gate is an advisory lock key; the
# trigger takes the lock *shared*, which is granted at once unless the test holds it exclusively
# ("armed"). Only sessions whose application_name starts with AGGREGATOR_APP_PREFIX wait.
# The aggregator applies a batch as up to TELEMETRY_APPLY_CONNECTIONS transactions (a lane of
# partitions each, at once); each goes through every gate, as one whole-batch transaction did.
GATE_START = 71001  # first statement of apply_batch: batch in hand, nothing written, no row locks
GATE_WRITTEN = 71002  # last statement: event keys, raw rows and rollups written, not committed
GATE_COMMIT = 71003  # inside COMMIT (deferred constraint trigger): the commit has begun

_GATES_SQL = f"""
CREATE OR REPLACE FUNCTION fault_gate() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    saved text := current_setting('lock_timeout');
BEGIN
    IF current_setting('application_name') LIKE '{AGGREGATOR_APP_PREFIX}%' THEN
        -- The aggregators' sessions have a lock_timeout; the wait at the gate is the test's,
        -- not theirs, so it is exempt, and every other lock keeps the timeout.
        PERFORM set_config('lock_timeout', '0', true);
        PERFORM pg_advisory_xact_lock_shared(TG_ARGV[0]::bigint);
        PERFORM set_config('lock_timeout', saved, true);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS fault_gate_start ON consumer_offsets;
DROP TRIGGER IF EXISTS fault_gate_written ON consumer_offsets;
DROP TRIGGER IF EXISTS fault_gate_commit ON consumer_offsets;
-- apply_batch opens with INSERT ... ON CONFLICT DO NOTHING on consumer_offsets (a statement
-- trigger fires even when every row conflicts) and ends with the UPDATE of next_offset.
CREATE TRIGGER fault_gate_start BEFORE INSERT ON consumer_offsets
    FOR EACH STATEMENT EXECUTE FUNCTION fault_gate('{GATE_START}');
CREATE TRIGGER fault_gate_written BEFORE UPDATE ON consumer_offsets
    FOR EACH STATEMENT EXECUTE FUNCTION fault_gate('{GATE_WRITTEN}');
CREATE CONSTRAINT TRIGGER fault_gate_commit AFTER UPDATE ON consumer_offsets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fault_gate('{GATE_COMMIT}');
"""


@dataclass(frozen=True)
class Held:
    """A session held at a gate: who, and the transaction id it has (None if it wrote nothing yet)."""

    pid: int
    app_name: str
    xid: int | None


class Gates:
    """Arm, find who is held, release; and read a transaction's fate afterwards."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = None

    async def install(self) -> None:
        """Create the triggers and open the session that holds the gate locks."""
        self._conn = await asyncpg.connect(with_application_name(self._url, "fault-test-gates"))
        await self._conn.execute(_GATES_SQL)

    async def close(self) -> None:
        """Close the session (which releases every gate it holds)."""
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    @property
    def conn(self) -> asyncpg.Connection:
        """The gate session (also used for the test's own queries)."""
        assert self._conn is not None, "gates not installed"
        return self._conn

    async def arm(self, gate: int) -> None:
        """Hold the gate: the next aggregator transaction to reach it waits there."""
        await self.conn.execute("SELECT pg_advisory_lock($1)", gate)

    async def release(self, gate: int) -> None:
        """Let every session waiting at the gate through."""
        await self.conn.execute("SELECT pg_advisory_unlock($1)", gate)

    async def wait_held(self, gate: int, timeout_s: float = 60) -> Held:
        """The first aggregator session found waiting at `gate`."""
        found: list[Held] = []

        async def held() -> bool:
            row = await self.conn.fetchrow(
                """SELECT a.pid, a.application_name, a.backend_xid::text::bigint AS xid
                   FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = 0 AND l.objid = $1
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   ORDER BY a.xact_start LIMIT 1""",
                gate,
            )
            if row is not None:
                found.append(Held(row["pid"], row["application_name"], row["xid"]))
            return bool(found)

        await wait_until(held, f"an aggregator transaction held at gate {gate}", timeout_s, every_s=0.01)
        return found[0]

    async def xact_status(self, xid: int) -> str:
        """'committed', 'aborted' or 'in progress' (pg_xact_status on the 64-bit id)."""
        # backend_xid is 32 bits; pg_xact_status wants the 64-bit id: the epoch of a fresh id of
        # our own (newer than any assigned before), one less if that would put it in the future.
        status = await self.conn.fetchval(
            """WITH s AS (SELECT txid_current() AS now)
               SELECT pg_xact_status((CASE WHEN (((s.now >> 32) << 32) | $1) > s.now
                                           THEN (((s.now >> 32) - 1) << 32) | $1
                                           ELSE ((s.now >> 32) << 32) | $1 END)::text::xid8)
               FROM s""",
            xid,
        )
        return str(status)

    async def make_xids_durable(self) -> None:
        """Commit a transaction of our own so that the held transaction's id survives a crash.

        Transaction ids are not WAL-logged when assigned: after a crash, recovery restarts them
        after the last one it finds in the WAL, so an id whose records were never flushed is
        handed out again and pg_xact_status would describe its new owner. A commit flushes the
        WAL up to its own record, newer than every id assigned before it.
        """
        await self.conn.execute("SELECT txid_current()")

    async def wait_xact_done(self, xid: int, timeout_s: float = 30) -> str:
        """The transaction's final state, once its session has ended it."""
        states: list[str] = []

        async def done() -> bool:
            states.append(await self.xact_status(xid))
            return states[-1] != "in progress"

        await wait_until(done, f"transaction {xid} to end", timeout_s)
        return states[-1]

    async def hold_wide_batch(self) -> Held:
        """Hold, at GATE_WRITTEN, a batch polled after a one-second pause: it spans every partition.

        The first batch is held at GATE_START for a second while the load goes on; meanwhile the
        aggregator's fetcher buffers records of every partition it owns, so the batch it polls
        right after this one carries all of them. That second batch is let through GATE_START and
        held at GATE_WRITTEN: rows written, consumer_offsets rows of all its partitions locked.
        """
        await self.arm(GATE_START)
        await self.wait_held(GATE_START)
        await asyncio.sleep(1.0)
        # Unlock and lock again: the held batch takes the lock shared and runs to its commit;
        # our exclusive request queues ahead of the next batch's, which then waits at the gate.
        await self.release(GATE_START)
        await self.arm(GATE_START)
        await self.wait_held(GATE_START)
        await self.arm(GATE_WRITTEN)
        await self.release(GATE_START)
        held = await self.wait_held(GATE_WRITTEN)
        # The aggregator applies a batch as one transaction per lane of partitions
        # (TELEMETRY_APPLY_CONNECTIONS), all let through GATE_START at once: wait until each
        # lane is held too, so the batch's partitions are all locked when this returns.
        await self.wait_all_held(GATE_WRITTEN, held.app_name)
        return held

    async def wait_all_held(self, gate: int, app_name: str, settle_s: float = 1.0) -> int:
        """Wait until the sessions of `app_name` waiting at `gate` stop growing in number; that number."""
        query = """SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = 0 AND l.objid = $1
                     AND a.application_name = $2"""
        count, stable_since = 0, time.monotonic()
        while time.monotonic() - stable_since < settle_s:
            now = int(await self.conn.fetchval(query, gate, app_name))
            if now != count:
                count, stable_since = now, time.monotonic()
            await asyncio.sleep(0.02)
        return count

    async def locked_partitions(self, group: str, topic: str) -> set[int]:
        """Partitions whose consumer_offsets row some open transaction has locked (its batch's)."""
        async with self.conn.transaction():
            free = await self.conn.fetch(
                """SELECT kafka_partition FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2
                   FOR UPDATE SKIP LOCKED""",
                group,
                topic,
            )
            every = await self.conn.fetch(
                "SELECT kafka_partition FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2", group, topic
            )
        return {r["kafka_partition"] for r in every} - {r["kafka_partition"] for r in free}

    async def session_state(self, pid: int) -> str | None:
        """pg_stat_activity.state of a backend (None once it is gone)."""
        state = await self.conn.fetchval("SELECT state FROM pg_stat_activity WHERE pid = $1", pid)
        return None if state is None else str(state)


# -- the bounded load ---------------------------------------------------------------------------

EventKey = tuple[str, str, str]  # (event type, org_code, event_id)


def _event_key(kind: str, event: dict[str, Any]) -> EventKey:
    return (kind, str(event["org_code"]), str(event["event_id"]))


@dataclass
class Load:
    """Posts batches through the collector at a steady rate; remembers exactly what got `202`.

    Each batch is retried with the same event_ids until it is acknowledged (as the contract
    tells integrators to), so at the end nothing is in doubt: an event is either acknowledged
    or was never posted. Every `duplicate_every`-th request resends an acknowledged batch, so
    the exact check also proves that resubmissions under faults count once.
    """

    collector_url: str
    headers: dict[str, str]
    events_per_s: float = 1500
    batch_events: int = 100
    concurrency: int = 4
    duplicate_every: int = 10
    seed: int = 1
    request_timeout_s: float = 30
    acknowledged: dict[EventKey, dict[str, Any]] = field(default_factory=dict)
    ack_times: list[tuple[float, int]] = field(default_factory=list)  # (monotonic time, distinct acked)
    ack_log: list[tuple[float, EventKey]] = field(default_factory=list)  # each key once, when first acked
    in_doubt: dict[EventKey, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _acked_batches: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._tag = f"{self.seed}-{time.time_ns():x}"
        self._drain_deadline = float("inf")

    # events ------------------------------------------------------------------------------

    def _moment(self) -> datetime:
        # April 2020 in the platform zone; one in ten within a minute of local midnight and
        # written with a UTC offset, so days and months really depend on the zone.
        base = datetime(2020, 4, 1, tzinfo=PLATFORM_ZONE)
        moment = base + timedelta(seconds=self._rng.randrange(0, 30 * 86400))
        if self._rng.random() < 0.1:
            moment = moment.replace(hour=23, minute=59, second=self._rng.randrange(60)) + timedelta(
                seconds=self._rng.choice([0, 61])
            )
            return moment.astimezone(UTC)
        return moment

    def _upload(self) -> dict[str, Any]:
        moment = self._moment()
        records = self._rng.choice([0, 1, 7, 42, 250, 1000])
        return {
            "event_id": f"u-{self._tag}-{next(self._ids)}",
            "org_code": self._rng.choice(DISTRICTS + HOSPITALS),
            "table_code": self._rng.choice(TABLES),
            "mode": self._rng.choice(["realtime", "scheduled"]),
            "business_date": (moment.astimezone(PLATFORM_ZONE) - timedelta(days=self._rng.choice([0, 1])))
            .date()
            .isoformat(),
            "uploaded_at": moment.isoformat(),
            "record_count": records,
            # Documents only with records: whether an upload without records carries its
            # documents into the rollups is a contract question, not what these tests are about.
            "document_count": self._rng.choice([0, 0, 3]) if records else 0,
        }

    def _kiosk(self) -> dict[str, Any]:
        org = self._rng.choice(HOSPITALS)
        return {
            "event_id": f"k-{self._tag}-{next(self._ids)}",
            "org_code": org,
            "kiosk_id": f"K-{org}-{self._rng.choice([1, 2])}",
            "kind": self._rng.choice(["registration", "payment"]),
            "amount": f"{self._rng.randrange(0, 1_000_000) / 100:.2f}",
            "occurred_at": self._moment().isoformat(),
        }

    def _next_batch(self) -> tuple[str, list[dict[str, Any]]]:
        if self._acked_batches and self._rng.randrange(self.duplicate_every) == 0:
            return self._rng.choice(self._acked_batches)
        if self._rng.random() < 0.75:
            return "upload", [self._upload() for _ in range(self.batch_events)]
        return "kiosk", [self._kiosk() for _ in range(self.batch_events)]

    # posting -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers."""
        self._stop.clear()
        self._started = time.monotonic()
        for n in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(n), name=f"load-{n}"))

    async def stop(self, drain_timeout_s: float = 120) -> None:
        """Stop sending new batches; give the batches in hand until `drain_timeout_s` to be acknowledged."""
        self._drain_deadline = time.monotonic() + drain_timeout_s
        self._stop.set()
        done, pending = await asyncio.wait(self._tasks, timeout=drain_timeout_s + 10)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()  # a worker that failed (an unexpected status) fails the caller
        self._tasks.clear()

    async def _worker(self, n: int) -> None:
        interval = self.batch_events * self.concurrency / self.events_per_s
        next_at = time.monotonic() + interval * n / self.concurrency
        async with httpx.AsyncClient(base_url=self.collector_url, timeout=self.request_timeout_s) as client:
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    if self._stop.is_set():
                        return
                # Steady rate, but no catch-up burst after an outage held this worker up.
                next_at = max(next_at + interval, time.monotonic())
                kind, batch = self._next_batch()
                await self._post_until_acknowledged(client, kind, batch)

    async def _post_until_acknowledged(self, client: httpx.AsyncClient, kind: str, batch: list[dict[str, Any]]) -> None:
        path = "/v1/uploads" if kind == "upload" else "/v1/kiosk-transactions"
        while True:
            if self._stop.is_set() and time.monotonic() > self._drain_deadline:
                for event in batch:
                    key = _event_key(kind, event)
                    if key not in self.acknowledged:
                        self.in_doubt[key] = event
                return
            self.requests += 1
            try:
                response = await client.post(path, json={"events": batch}, headers=self.headers)
            except httpx.TransportError as exc:
                # Collector down or killed mid-request: the events may or may not be durable.
                # Resend the same ids; the platform counts each once.
                self.answers[type(exc).__name__] += 1
                self.retries += 1
                await asyncio.sleep(0.25)
                continue
            self.answers[str(response.status_code)] += 1
            if response.status_code == 202:
                self._acknowledge(kind, batch)
                return
            if response.status_code in (429, 503):
                self.retries += 1
                await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))
                continue
            raise HarnessError(f"collector answered {response.status_code}: {response.text[:500]}")

    def new_batch(self, kind: str, events: int) -> list[dict[str, Any]]:
        """Fresh events of `kind` ("upload" or "kiosk") for a request the caller posts itself."""
        make = self._upload if kind == "upload" else self._kiosk
        return [make() for _ in range(events)]

    def record_acknowledged(self, kind: str, batch: list[dict[str, Any]]) -> None:
        """Count a batch the caller posted itself and saw answered 202."""
        self._acknowledge(kind, batch)

    def _acknowledge(self, kind: str, batch: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for event in batch:
            key = _event_key(kind, event)
            if key not in self.acknowledged:
                self.ack_log.append((now, key))
            self.acknowledged[key] = event
            self.in_doubt.pop(key, None)
        self._acked_batches.append((kind, batch))
        self.ack_times.append((now, len(self.acknowledged)))

    @property
    def acknowledged_count(self) -> int:
        """Distinct events acknowledged so far."""
        return len(self.acknowledged)

    def acknowledged_since(self, moment: float) -> int:
        """Distinct events newly acknowledged after `moment` (monotonic clock)."""
        before = 0
        for at, total in self.ack_times:
            if at > moment:
                break
            before = total
        return len(self.acknowledged) - before


# -- the exact check ----------------------------------------------------------------------------


async def counted(conn: asyncpg.Connection) -> int:
    """Distinct events stored (event_keys)."""
    return int(await conn.fetchval("SELECT count(*) FROM event_keys"))


async def wait_drained(conn: asyncpg.Connection, load: Load, timeout_s: float = 120) -> float:
    """Seconds until every acknowledged event is stored; nothing more may arrive afterwards."""
    expected = load.acknowledged_count

    async def caught_up() -> bool:
        got = await counted(conn)
        if got > expected:
            raise HarnessError(f"{got} distinct events stored but only {expected} acknowledged")
        return got == expected

    return await wait_until(caught_up, f"{expected} acknowledged events stored", timeout_s, every_s=0.25)


@dataclass
class InstitutionRow:
    """Acknowledged vs counted for one institution (what the soak prints)."""

    org_code: str
    uploads_acknowledged: int
    uploads_counted: int
    records_acknowledged: int
    records_counted: int
    kiosk_acknowledged: int
    kiosk_counted: int
    amount_acknowledged: Decimal
    amount_counted: Decimal


@dataclass
class CheckResult:
    """Every difference found (empty = exact), and the per-institution figures."""

    mismatches: list[str]
    institutions: list[InstitutionRow]
    acknowledged: int
    counted: int
    lost: int = 0  # acknowledged, not in event_keys
    unexpected: int = 0  # in event_keys, never acknowledged
    duplicates: int = 0  # events the rollups count beyond the distinct ones stored (twice-counted)

    def assert_exact(self) -> None:
        """Raise with the first differences unless acknowledged == counted everywhere."""
        if self.mismatches:
            shown = "\n  ".join(self.mismatches[:40])
            raise HarnessError(f"{len(self.mismatches)} differences between acknowledged and counted:\n  {shown}")


def _compare(what: str, expected: dict[Any, Any], actual: dict[Any, Any], out: list[str]) -> None:
    for key in sorted(set(expected) | set(actual), key=repr):
        want, got = expected.get(key), actual.get(key)
        if want != got:
            out.append(f"{what} {key}: acknowledged {want}, counted {got}")


async def check_exact(conn: asyncpg.Connection, load: Load, zone: ZoneInfo = PLATFORM_ZONE) -> CheckResult:
    """Compare the distinct acknowledged events with every stored figure, for every institution.

    The expectation is computed here from the acknowledged events alone (not with the
    services' rollup code): event_keys and the raw tables must hold each acknowledged event
    once and nothing else; upload_daily, upload_monthly_tables, conformance_daily and
    kiosk_monthly must hold exactly their sums, key by key.
    """
    out: list[str] = []
    if load.in_doubt:
        out.append(f"{len(load.in_doubt)} events were never acknowledged (load stopped before their 202)")
    acked = load.acknowledged
    # The key store holds digests of (stream, org_code, event_id) (migration 0010).
    stored = {r["k"] for r in await conn.fetch("SELECT encode(uuid_send(key), 'hex') AS k FROM event_keys")}
    expected = {event_key(kind, org, event_id): (kind, org, event_id) for kind, org, event_id in acked}
    missing = sorted(expected[k] for k in set(expected) - stored)
    extra = sorted(stored - set(expected))
    if missing:
        out.append(f"{len(missing)} acknowledged events not counted, e.g. {missing[:5]}")
    if extra:
        out.append(f"{len(extra)} events counted that were never acknowledged, e.g. keys {extra[:5]}")

    daily: dict[tuple[str, date], tuple[int, int, int]] = defaultdict(lambda: (0, 0, 0))
    monthly: dict[tuple[str, date, str], tuple[int, int, int]] = defaultdict(lambda: (0, 0, 0))
    conformance: dict[tuple[str, str, date], tuple[int, int]] = defaultdict(lambda: (0, 0))
    kiosk: dict[tuple[str, date, str], tuple[int, Decimal]] = defaultdict(lambda: (0, Decimal("0.00")))
    raw_uploads: dict[str, int] = defaultdict(int)
    raw_kiosk: dict[str, int] = defaultdict(int)
    for (kind, org, _), event in acked.items():
        if kind == "upload":
            day = datetime.fromisoformat(event["uploaded_at"]).astimezone(zone).date()
            r, d = int(event["record_count"]), int(event.get("document_count", 0))
            a = daily[(org, day)]
            daily[(org, day)] = (a[0] + r, a[1] + d, a[2] + 1)
            m = monthly[(org, day.replace(day=1), event["table_code"])]
            monthly[(org, day.replace(day=1), event["table_code"])] = (m[0] + r, m[1] + d, m[2] + 1)
            c = conformance[(org, event["table_code"], date.fromisoformat(event["business_date"]))]
            rt, sc = (r, 0) if event["mode"] == "realtime" else (0, r)
            conformance[(org, event["table_code"], date.fromisoformat(event["business_date"]))] = (c[0] + rt, c[1] + sc)
            raw_uploads[org] += 1
        else:
            month = datetime.fromisoformat(event["occurred_at"]).astimezone(zone).date().replace(day=1)
            k = kiosk[(org, month, event["kind"])]
            kiosk[(org, month, event["kind"])] = (k[0] + 1, k[1] + Decimal(event["amount"]))
            raw_kiosk[org] += 1

    got_daily = {
        (r["org_code"], r["day"]): (r["records"], r["documents"], r["events"])
        for r in await conn.fetch("SELECT org_code, day, records, documents, events FROM upload_daily")
    }
    got_monthly = {
        (r["org_code"], r["month"], r["table_code"]): (r["records"], r["documents"], r["events"])
        for r in await conn.fetch(
            "SELECT org_code, month, table_code, records, documents, events FROM upload_monthly_tables"
        )
    }
    got_conformance = {
        (r["org_code"], r["table_code"], r["business_date"]): (r["realtime_records"], r["scheduled_records"])
        for r in await conn.fetch(
            "SELECT org_code, table_code, business_date, realtime_records, scheduled_records FROM conformance_daily"
        )
    }
    got_kiosk = {
        (r["org_code"], r["month"], r["kind"]): (r["transactions"], r["amount"])
        for r in await conn.fetch("SELECT org_code, month, kind, transactions, amount FROM kiosk_monthly")
    }
    got_raw_uploads = {
        r["org_code"]: r["n"] for r in await conn.fetch("SELECT org_code, count(*) AS n FROM upload_events GROUP BY 1")
    }
    got_raw_kiosk = {
        r["org_code"]: r["n"]
        for r in await conn.fetch("SELECT org_code, count(*) AS n FROM kiosk_transactions GROUP BY 1")
    }
    _compare("upload_daily", dict(daily), got_daily, out)
    _compare("upload_monthly_tables", dict(monthly), got_monthly, out)
    _compare("conformance_daily", dict(conformance), got_conformance, out)
    _compare("kiosk_monthly", dict(kiosk), got_kiosk, out)
    _compare("upload_events rows of", dict(raw_uploads), got_raw_uploads, out)
    _compare("kiosk_transactions rows of", dict(raw_kiosk), got_raw_kiosk, out)

    institutions = []
    for org in sorted(DISTRICTS + HOSPITALS):
        institutions.append(
            InstitutionRow(
                org,
                sum(v[2] for k, v in daily.items() if k[0] == org),
                sum(v[2] for k, v in got_daily.items() if k[0] == org),
                sum(v[0] for k, v in daily.items() if k[0] == org),
                sum(v[0] for k, v in got_daily.items() if k[0] == org),
                sum(v[0] for k, v in kiosk.items() if k[0] == org),
                sum(v[0] for k, v in got_kiosk.items() if k[0] == org),
                sum((v[1] for k, v in kiosk.items() if k[0] == org), Decimal("0.00")),
                sum((v[1] for k, v in got_kiosk.items() if k[0] == org), Decimal("0.00")),
            )
        )
    rollup_events = sum(v[2] for v in got_daily.values()) + sum(v[0] for v in got_kiosk.values())
    return CheckResult(
        out, institutions, len(acked), len(stored), len(missing), len(extra), rollup_events - len(stored)
    )


async def finish_exact(p: Pipeline, load: Load, db: asyncpg.Connection, *, drain_s: float = 120) -> CheckResult:
    """Stop the load, let the backlog drain by itself, then the exact check and the health of every consumer."""
    await load.stop()
    await wait_drained(db, load, timeout_s=drain_s)
    # A late duplicate or replay would show up after the counts first match: look again.
    await asyncio.sleep(1.0)
    result = await check_exact(db, load)
    result.assert_exact()
    if p.consumer_crashes():
        raise HarnessError(f"a consume loop died: {p.consumer_crashes()}")
    for service in p.aggregators.values():
        if service.alive() and not await service.ready():
            raise HarnessError(f"{service.name} not ready at the end:\n{service.log_tail()}")
    return result


# -- Kafka offsets ------------------------------------------------------------------------------


class Offsets:
    """End offsets of the topic (from Kafka) and the next offsets stored with the rows (database)."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id="fault-test-offsets")
        self._topic = topic
        self._group = group

    async def start(self) -> None:
        """Connect (no group: this consumer only reads end offsets)."""
        await self._consumer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()

    async def ends(self) -> dict[int, int]:
        """High watermark of every partition now."""
        tps = [TopicPartition(self._topic, p) for p in range(PARTITIONS)]
        ends = await self._consumer.end_offsets(tps)
        return {tp.partition: int(end) for tp, end in ends.items()}

    async def stored(self, conn: asyncpg.Connection) -> dict[int, int]:
        """Next offset to apply per partition, as the aggregators recorded it."""
        rows = await conn.fetch(
            "SELECT kafka_partition, next_offset FROM consumer_offsets WHERE consumer_group = $1 AND topic = $2",
            self._group,
            self._topic,
        )
        return {r["kafka_partition"]: r["next_offset"] for r in rows}


async def precreate_offsets(conn: asyncpg.Connection, group: str, topic: str) -> None:
    """The consumer_offsets rows an aggregator creates on its first batch, created up front.

    Then no aggregator transaction inserts a new row there, so a session held at GATE_START
    holds no row lock another aggregator could wait for.
    """
    await conn.execute(
        """INSERT INTO consumer_offsets (consumer_group, topic, kafka_partition, next_offset)
           SELECT $1, $2, p, 0 FROM generate_series(0, $3 - 1) AS p ON CONFLICT DO NOTHING""",
        group,
        topic,
        PARTITIONS,
    )
