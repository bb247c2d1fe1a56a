"""`bench.run memory [--minutes 10] [--memory-rate 100000]`: do the services' RSS stay flat under overload?

A collector and an aggregator on this run's slice get the demo month in 1,000-event batches,
paced at `--memory-rate` events/s offered (by default twice the aggregator's 50,000 events/s
target: more than the pipeline sustains on this machine, so the collector is always busy
and the aggregator always behind). Each pass over the month renames every event_id, so every
event is new to the aggregator and takes the whole insert path. After a minute's warm-up
(caches, producer and fetch buffers, pools filling) the resident set size of both processes
is sampled every few seconds for `--minutes`. The figure is the trend: the mean RSS of the
window's last minute over the mean of its first minute (single samples swing by the size of a
Kafka fetch response, tens of MiB); the peak and the least-squares slope are beside it. Flat
means within 10 % (issue 12).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import load, workload
from bench.benchmarks import Figure, Options, Result, _cpu_roots, _measure
from bench.stack import Service, bench_slice, metric_sum, scrape

DEFAULT_RATE = 100_000.0
WARM_UP_S = 60.0
SAMPLE_EVERY_S = 5.0
TARGET_GROWTH_PERCENT = 10.0
CONNECTIONS = 32  # enough that answers taking 0.3 s still leave the offered rate reachable
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process, from /proc (None once it has exited)."""
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * _PAGE


def renamed_batches(bodies: list[workload.Request]) -> Iterator[workload.Request]:
    """The bodies again and again, each pass with every event_id prefixed by the pass number.

    A bytes replace per body (the contract's event_id pattern admits `.`, so `p3.` keeps it
    valid), not a JSON round trip: the harness shares the machine with what it measures.
    """
    for n in itertools.count():
        prefix = b'"event_id":"p%d.' % n
        for req in bodies:
            yield workload.Request(req.path, req.body.replace(b'"event_id":"', prefix), req.events)


def _minute_mean(samples: list[tuple[float, float]], *, first: bool) -> float:
    """Mean MiB of the samples in the first (or last) 60 s of the series."""
    edge = samples[0][0] + 60 if first else samples[-1][0] - 60
    picked = [m for t, m in samples if (t <= edge if first else t >= edge)]
    return sum(picked) / len(picked)


def _slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return 60 * sum((t - mean_t) * (m - mean_m) for t, m in samples) / var


async def _sample(services: dict[str, Service], seconds: float, started: float) -> dict[str, list[tuple[float, float]]]:
    """RSS in MiB of each service every SAMPLE_EVERY_S for `seconds`."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in services}
    deadline = time.perf_counter() + seconds
    while True:
        now = time.perf_counter()
        for name, svc in services.items():
            rss = rss_bytes(svc.pid)
            if rss is None:
                raise RuntimeError(f"the {name} exited during the memory run; see {svc.log_path}")
            out[name].append((round(now - started, 1), round(rss / 2**20, 1)))
        if now >= deadline:
            return out
        await asyncio.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - now)))


async def memory(opts: Options) -> Result:
    """RSS of the collector and the aggregator through `opts.minutes` at `opts.memory_rate` events/s offered."""
    result = Result("memory")
    bodies = await asyncio.to_thread(lambda: list(workload.stream_batches()))
    async with bench_slice("memory", opts.log_dir, collector=True, aggregator=True) as piece:
        col, agg = piece.collector, piece.aggregator
        assert col is not None and agg is not None
        services = {"collector": col, "aggregator": agg}
        stop = asyncio.Event()
        measure_s = opts.minutes * 60
        started = time.perf_counter()
        background = asyncio.create_task(
            load.run_httpx(
                col.url,
                piece.iso.admin_token,
                renamed_batches(bodies),
                seconds=WARM_UP_S + measure_s + 30,
                connections=CONNECTIONS,
                rate_per_s=opts.memory_rate / workload.BATCH,
                stop=stop,
            )
        )
        try:
            warm = await _sample(services, WARM_UP_S, started)
            col_before = await scrape(col.metrics_url)
            samples, usage, wall = await _measure(
                await _cpu_roots(piece, col, agg), lambda: _sample(services, measure_s, started)
            )
            col_after = await scrape(col.metrics_url)
            agg_after = await scrape(agg.metrics_url)
        finally:
            stop.set()
            bg = await background
    accepted = metric_sum(col_after, "collector_events_accepted_total") - metric_sum(
        col_before, "collector_events_accepted_total"
    )
    lag = metric_sum(agg_after, "aggregator_consumer_lag_records")
    details: dict[str, Any] = {
        "offered_events_per_s": opts.memory_rate,
        "accepted_events_per_s": round(accepted / wall) if wall else 0,
        "aggregator_lag_records_at_end": lag,
        "warm_up_s": WARM_UP_S,
        "measured_s": round(wall, 1),
        "cpu_percent_of_one_core": usage,
        "load": bg.as_dict(),
        "rss_mib_warm_up": warm,
        "rss_mib": samples,
    }
    for name, series in samples.items():
        first, last = _minute_mean(series, first=True), _minute_mean(series, first=False)
        peak = max(m for _, m in series)
        growth = 100 * (last - first) / first
        slope = _slope_mb_per_min(series)
        details[name] = {
            "first_minute_mean_mib": first,
            "last_minute_mean_mib": last,
            "start_mib": series[0][1],
            "peak_mib": peak,
            "end_mib": series[-1][1],
            "slope_mib_per_min": slope,
        }
        result.figures.append(
            Figure(
                f"memory: {name} RSS growth over {opts.minutes:g} min",
                growth,
                "%",
                TARGET_GROWTH_PERCENT,
                higher_is_better=False,
                note=f"first minute {first:.0f} MiB, last {last:.0f} (peak {peak:.0f}), {slope:+.2f} MiB/min; "
                f"offered {opts.memory_rate:,.0f} events/s, accepted {details['accepted_events_per_s']:,} events/s; "
                f"{name} CPU {usage.get(name, 0):.0f}%, others {usage.get('others', 0):.0f}%",
            )
        )
    result.details.update(details)
    return result
