"""`python -m bench.run [limits|collector-batch|collector-single|aggregator|latency|demo|memory|all ...] [--seconds N]`.

Prints a table of figures against their targets and writes the full results (figures, CPU per
component, load-generator statistics, optional profiles) to bench/results/<time>-<name>.json.
Needs the local stack's Kafka and PostgreSQL (`deploy/local/up`); it starts its own services.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import benchmarks, limits, memory
from bench.benchmarks import Options, Result
from bench.cpu import machine_busy_percent
from bench.load import ensure_wrk
from bench.stack import REPO, clean_leftovers

RESULTS = Path(__file__).resolve().parent / "results"
BUSY_WARNING = 25.0  # percent of one core used by others before a benchmark starts

BENCHMARKS: dict[str, Callable[[Options], Awaitable[Result]]] = {
    # First: the limits the later figures of the same run are divided by.
    "limits": limits.limits,
    "collector-batch": lambda o: benchmarks.collector(o, "batch"),
    "collector-single": lambda o: benchmarks.collector(o, "single"),
    "aggregator": benchmarks.aggregator,
    "latency": benchmarks.latency,
    "demo": benchmarks.demo,
    "memory": memory.memory,
}
# `all`: everything but the long memory run (10 minutes by default).
ALL = [name for name in BENCHMARKS if name != "memory"]

CAVEAT = (
    "All figures: one 2-core machine shared by the load generator, Kafka, PostgreSQL and the services "
    "under test; Kafka acks=all on one broker (page cache, no fsync per write); PostgreSQL with fsync and "
    "synchronous_commit on."
)


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _environment(opts: Options) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--", "services", "deploy")),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "seconds": opts.seconds,
        "caveat": CAVEAT,
    }


def _format_value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:,.1f} s"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "×":
        return f"{value:.2f} ×"
    if unit == "%":
        return f"{value:.1f} %"
    if unit == "x":
        return f"{value:.2f} x"
    return f"{value:,.0f} {unit}"


def print_table(results: list[Result]) -> None:
    """Figures against targets, one line each."""
    rows = [("benchmark", "figure", "target", "met", "notes")]
    for result in results:
        for fig in result.figures:
            target = "-"
            if fig.target is not None:
                target = ("≥ " if fig.higher_is_better else "≤ ") + _format_value(fig.target, fig.unit)
            met = {True: "yes", False: "NO", None: ""}[fig.met]
            rows.append((fig.name, _format_value(fig.value, fig.unit), target, met, fig.note))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
        if n == 0:
            print("  ".join("-" * w for w in widths) + "  -----")
    print()
    print(CAVEAT)


def parse_args(argv: list[str] | None = None) -> tuple[list[str], Options]:
    """Benchmarks to run and their options."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[1])
    parser.add_argument(
        "benchmark",
        nargs="*",
        # Checked below, not with `choices`: Python 3.11's argparse refuses an empty list against them.
        metavar="{" + ",".join([*BENCHMARKS, "all", "clean"]) + "}",
        help="what to run, in this order (several: one run, with ratios to `limits` when it is among them); "
        "`all` is every benchmark but memory; `clean` removes databases and topics left by killed runs",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=15.0,
        help="measurement time per phase; the aggregator publishes 50,000 x this many events (default 15)",
    )
    parser.add_argument("--probes", type=int, default=300, help="latency probes (default 300)")
    parser.add_argument(
        "--background-rate",
        type=float,
        default=20_000,
        help="events/s posted in the background during the latency probes (default 20000, issue 12's load)",
    )
    parser.add_argument("--batch-connections", type=int, default=8, help="connections for 1,000-event batches")
    parser.add_argument("--single-connections", type=int, default=64, help="connections for single events")
    parser.add_argument(
        "--single-rate",
        type=float,
        default=10_000,
        help="collector-single also posts at this fixed rate and reports its p99 (0: skip; default 10000)",
    )
    parser.add_argument(
        "--paced-connections", type=int, default=256, help="connections for the fixed-rate phase (default 256)"
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="memory: how long the load runs (default 10)")
    parser.add_argument(
        "--memory-rate",
        type=float,
        default=memory.DEFAULT_RATE,
        help=f"memory: events/s offered (default {memory.DEFAULT_RATE:,.0f}, twice the aggregator's target)",
    )
    parser.add_argument("--profile", action="store_true", help="sample the service under test with py-spy")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=f"before each benchmark wait up to this long for the machine to be under {BUSY_WARNING:.0f}%% busy",
    )
    parser.add_argument("--no-wrk", action="store_true", help="use the Python (httpx) load generator")
    parser.add_argument(
        "--prefill-keys",
        type=int,
        default=0,
        metavar="N",
        help="aggregator: first fill the key store with N keys over 12 closed months (e.g. 50000000)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not 1 <= args.probes <= 5_000:
        parser.error("--probes must be between 1 and 5000")
    if not 0.5 <= args.minutes <= 120:
        parser.error("--minutes must be between 0.5 and 120")
    asked = args.benchmark or ["all"]
    unknown = [name for name in asked if name not in (*BENCHMARKS, "all", "clean")]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join([*BENCHMARKS, 'all', 'clean'])}")
    if "clean" in asked and asked != ["clean"]:
        parser.error("clean runs alone")
    names: list[str] = []
    for name in asked:
        for one in ALL if name == "all" else [name]:
            if one not in names:
                names.append(one)
    opts = Options(
        seconds=args.seconds,
        results_dir=RESULTS,
        profile=args.profile,
        use_wrk=not args.no_wrk,
        probes=args.probes,
        background_rate=args.background_rate,
        batch_connections=args.batch_connections,
        single_connections=args.single_connections,
        wait_quiet_s=min(max(args.wait_quiet, 0.0), 3600.0),
        single_rate=max(args.single_rate, 0.0),
        paced_connections=args.paced_connections,
        minutes=args.minutes,
        memory_rate=args.memory_rate,
        prefill_keys=max(args.prefill_keys, 0),
    )
    return names, opts


async def run(names: list[str], opts: Options) -> list[Result]:
    """Run the benchmarks one after the other; a failing one is reported and the rest still run."""
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    if opts.use_wrk and any(n.startswith("collector") for n in names) and ensure_wrk() is None:
        print("wrk is not available: using the slower httpx load generator", file=sys.stderr)
    results: list[Result] = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in names:
        print(f"==> {name}", file=sys.stderr, flush=True)
        # The figures are only meaningful on an otherwise idle machine: wait (bounded) for it to
        # be quiet if asked, and record how busy it was.
        busy = machine_busy_percent()
        quiet_deadline = time.monotonic() + opts.wait_quiet_s
        while busy > BUSY_WARNING and time.monotonic() < quiet_deadline:
            busy = machine_busy_percent(5.0)
        if busy > BUSY_WARNING:
            print(f"    warning: the machine is already {busy:.0f}% busy (of 200%) before starting", file=sys.stderr)
        started = time.perf_counter()
        try:
            result = await BENCHMARKS[name](opts)
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"    {name} failed: {exc!r}", file=sys.stderr)
            result = Result(name, details={"error": repr(exc)})
        result.details["machine_busy_before_percent"] = busy
        result.details["benchmark_wall_s"] = round(time.perf_counter() - started, 1)
        results.append(result)
        doc = {
            "benchmark": name,
            "environment": _environment(opts),
            "figures": [f.as_dict() for f in result.figures],
            "details": result.details,
        }
        path = opts.results_dir / f"{stamp}-{name}.json"
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        print(f"    {result.details['benchmark_wall_s']}s, results in {path.relative_to(REPO)}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 0 even when targets are missed (they are measured, not asserted)."""
    names, opts = parse_args(argv)
    if names == ["clean"]:
        for removed in uvloop.run(clean_leftovers()):
            print(f"removed {removed}")
        return 0
    results = uvloop.run(run(names, opts))
    ratio_figures = limits.ratios(results)
    if ratio_figures:
        results.append(Result("ratios", ratio_figures))
        path = opts.results_dir / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-ratios.json"
        path.write_bytes(orjson.dumps({"figures": [f.as_dict() for f in ratio_figures]}, option=orjson.OPT_INDENT_2))
    print_table(results)
    return 1 if any("error" in r.details for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
