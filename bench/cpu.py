"""CPU accounting from /proc: who used the machine's 2 cores during a measurement window.

On a 2-core box the load generator, the broker, PostgreSQL and the services all compete, so a
throughput figure means little without knowing who was saturated. A process tree's CPU is its
own time, plus the time of children it already reaped (cutime/cstime, e.g. finished
PostgreSQL backends), plus the trees of its live children.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class _Proc:
    ppid: int
    own: int  # utime + stime + cutime + cstime, in clock ticks


def _scan() -> dict[int, _Proc]:
    procs: dict[int, _Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
        procs[int(entry.name)] = _Proc(ppid, utime + stime + cutime + cstime)
    return procs


def _tree_ticks(root: int, procs: Mapping[int, _Proc], children: Mapping[int, list[int]]) -> int:
    if root not in procs:
        return 0
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        total += procs[pid].own
        stack.extend(children.get(pid, ()))
    return total


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already included in user
    return total - idle, total


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU ticks per named process tree, of the whole machine and of this process's reaped children."""

    trees: dict[str, int]
    busy: int
    total: int
    self_s: float
    children_s: float


def _rusage_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


Roots = Mapping[str, int | Sequence[int] | None]
"""Named process trees: one root pid, several (summed, e.g. one database's backends), or None."""


def snapshot(roots: Roots) -> CpuSnapshot:
    """CPU used so far by each named group of process trees (None counts as absent)."""
    procs = _scan()
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    trees: dict[str, int] = {}
    for name, pids in roots.items():
        if pids is None:
            continue
        group = [pids] if isinstance(pids, int) else pids
        trees[name] = sum(_tree_ticks(pid, procs, children) for pid in group)
    busy, total = _machine_busy_ticks()
    return CpuSnapshot(trees, busy, total, _rusage_s(resource.RUSAGE_SELF), _rusage_s(resource.RUSAGE_CHILDREN))


def usage(before: CpuSnapshot, after: CpuSnapshot, wall_s: float) -> dict[str, float]:
    """Percent of one core per tree over the window (200 = both cores), plus the machine's total.

    `harness` is this Python process (it is the load generator when wrk is not used) and
    `reaped-children` the children that exited in the window (wrk).
    """
    if wall_s <= 0:
        return {}
    # max(0): a process of a group that exited in the window takes its ticks with it.
    out = {name: max(0.0, 100 * (after.trees[name] - ticks) / _TICK / wall_s) for name, ticks in before.trees.items()}
    out["harness"] = 100 * (after.self_s - before.self_s) / wall_s
    out["reaped-children"] = 100 * (after.children_s - before.children_s) / wall_s
    total = after.total - before.total
    cores = os.cpu_count() or 1
    out["machine"] = 100 * cores * (after.busy - before.busy) / total if total > 0 else 0.0
    # Whatever else ran meanwhile (other sessions' tests, the demo stack, the kernel): a large
    # value means the figures were taken on a busy machine and are pessimistic.
    # "postgres" (our database's backends) is part of "postgres-server": not counted twice.
    ours = sum(v for k, v in out.items() if k not in ("machine", "postgres"))
    out["others"] = max(0.0, out["machine"] - ours)
    return {name: round(value, 1) for name, value in out.items()}


def machine_busy_percent(seconds: float = 2.0) -> float:
    """How busy the machine is right now (200 = both cores), sampled over `seconds`."""
    before = _machine_busy_ticks()
    time.sleep(seconds)
    after = _machine_busy_ticks()
    total = after[1] - before[1]
    return round(100 * (os.cpu_count() or 1) * (after[0] - before[0]) / total, 1) if total > 0 else 0.0
