"""Optional sampling profile of a service during a measurement (`--profile`), with py-spy.

py-spy reads the target's memory from outside (no code change, --nonblocking: the service is
never paused), and its raw output is folded stacks, which we summarise into the functions
that hold the CPU: by own time (leaf frame) and by inclusive time (anywhere on the stack).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.stack import REPO

PY_SPY = REPO / ".venv" / "bin" / "py-spy"
_LINE = re.compile(r":\d+\)$")


def available() -> str | None:
    """py-spy's path (the venv's, else PATH), or None."""
    if PY_SPY.exists():
        return str(PY_SPY)
    return shutil.which("py-spy")


class Profile:
    """`py-spy record` of one pid for a fixed time, started now."""

    def __init__(self, pid: int, out: Path, seconds: float, rate: int = 200) -> None:
        spy = available()
        if spy is None:
            raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
        self.out = out
        self.seconds = seconds
        self.rate = rate
        out.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(rate),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def finish(self, top: int = 15) -> dict[str, Any]:
        """Wait for py-spy and summarise its samples."""
        try:
            _, err = self._process.communicate(timeout=self.seconds + 60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return {"error": "py-spy did not finish"}
        if not self.out.exists():
            return {"error": err.decode(errors="replace")[-500:]}
        return summarise(self.out, top, self.seconds * self.rate)


def _frame(text: str) -> str:
    # "apply_batch (services/aggregator/store.py:123)" -> without the line number, so one
    # function's samples add up wherever in it they were taken.
    return _LINE.sub(")", text.strip())


def summarise(path: Path, top: int, expected_samples: float) -> dict[str, Any]:
    """Top functions by own and by inclusive samples, as percentages of all samples taken."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    idle_threads = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        if frames[0].startswith("Thread._bootstrap") and frames[-1].startswith("Condition.wait"):
            # A pool thread waiting for work: py-spy --nonblocking cannot tell it is idle.
            idle_threads += count
            continue
        total += count
        own[frames[-1]] += count
        # Inclusive time only for the project's own functions: the framework frames above them
        # (uvicorn, starlette, asyncio) are on every stack and would fill the list.
        for frame in {f for f in frames if "(services/" in f}:
            inclusive[frame] += count

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": f, "percent": round(100 * n / total, 1)} for f, n in counter.most_common(top)]

    return {
        "file": str(path),
        "samples": total,
        "idle_thread_samples": idle_threads,
        # Idle samples (waiting in epoll) are not recorded: this is roughly the CPU share.
        "busy_percent": round(100 * total / expected_samples, 1) if expected_samples else None,
        "own": table(own),
        "inclusive_project": table(inclusive),
    }
