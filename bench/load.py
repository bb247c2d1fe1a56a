"""Load generators: wrk (C, cheap per request) and an asyncio httpx client (fallback, paced load).

On this 2-core machine the load generator takes CPU from the system under test, so the cheaper
it is per request the more the figures say about the collector: wrk with one thread costs a
fraction of what a Python client costs for small requests. It is installed from Debian's
packages when missing; without it the httpx client is used and the results say so.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.workload import Request

LUA = Path(__file__).resolve().parent / "wrk" / "requests.lua"
PACED_LUA = LUA.with_name("paced.lua")


@dataclass
class LoadResult:
    """What a load run did, as the client saw it."""

    tool: str
    requests: int
    ok: int
    errors: int
    seconds: float
    latency_ms: dict[str, float]
    client_cpu_s: float
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the results file."""
        return {
            "tool": self.tool,
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "latency_ms": self.latency_ms,
            "client_cpu_s": round(self.client_cpu_s, 2),
            "statuses": self.statuses,
        }


def ensure_wrk() -> str | None:
    """Path of wrk, installing Debian's package once if it is missing (root only); None if unavailable."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, check=False, timeout=300).returncode != 0:
        # Fresh machines have no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False, timeout=300)
        subprocess.run(install, env=env, capture_output=True, check=False, timeout=300)
    return shutil.which("wrk")


def run_wrk(
    wrk: str,
    url: str,
    requests_file: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    rate_per_s: float | None = None,
) -> LoadResult:
    """Run wrk for `seconds` against `url` with the prepared requests; bounded by a hard timeout.

    With `rate_per_s`, the requests leave on a fixed schedule (bench/wrk/paced.lua) instead of
    as fast as the answers come back.
    """
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(PACED_LUA if rate_per_s else LUA),
        url,
        "--",
        str(requests_file),
        *([f"{rate_per_s / threads:g}"] if rate_per_s else []),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 120)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^WRK_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    doc = orjson.loads(match.group(1))
    errors = doc["connect_errors"] + doc["read_errors"] + doc["write_errors"] + doc["non_2xx"] + doc["timeouts"]
    lat = doc["latency_us"]
    return LoadResult(
        tool=f"wrk -t{threads} -c{connections}" + (f" paced {rate_per_s:g}/s" if rate_per_s else ""),
        requests=doc["requests"],
        ok=doc["requests"] - doc["non_2xx"],
        errors=errors,
        seconds=doc["duration_us"] / 1e6 if doc["duration_us"] else elapsed,
        latency_ms={k: round(lat[k] / 1000, 2) for k in ("mean", "p50", "p90", "p99", "max")},
        client_cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """mean/p50/p90/p99/max of `samples` (in ms), nearest-rank."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "mean": round(sum(ordered) / len(ordered), 2),
        "p50": round(rank(50), 2),
        "p90": round(rank(90), 2),
        "p99": round(rank(99), 2),
        "max": round(ordered[-1], 2),
    }


async def run_httpx(
    url: str,
    token: str,
    requests: Iterator[Request],
    *,
    seconds: float,
    connections: int,
    rate_per_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """Post `requests` with `connections` workers for `seconds` (or until `stop`/exhaustion).

    With `rate_per_s`, requests are paced to that many per second (a background load),
    otherwise sent as fast as the workers can.
    """
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    slot = 0
    cpu_before = time.process_time()

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal slot
        while loop.time() < deadline and not (stop is not None and stop.is_set()):
            if rate_per_s:
                due = started + slot / rate_per_s
                slot += 1
                if due > deadline:
                    return
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
            req = next(requests, None)
            if req is None:
                return
            sent = loop.time()
            try:
                response = await client.post(req.path, content=req.body)
                statuses[str(response.status_code)] += 1
            except httpx.TransportError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append((loop.time() - sent) * 1000)

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    elapsed = loop.time() - started
    ok = sum(n for status, n in statuses.items() if status.startswith("2"))
    total = sum(statuses.values())
    return LoadResult(
        tool=f"httpx x{connections}" + (f" paced {rate_per_s:g}/s" if rate_per_s else ""),
        requests=total,
        ok=ok,
        errors=total - ok,
        seconds=elapsed,
        latency_ms=percentiles(latencies),
        client_cpu_s=time.process_time() - cpu_before,
        statuses=dict(statuses),
    )
