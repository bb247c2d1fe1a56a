"""Post the events of input files to the collector: batches, a few requests in flight, retries.

The only module of `services.send` that does I/O besides reading the files. Each batch is
posted until it is settled (`outcome.judge`): accepted; split, its refused events written to
`FILE.refused.jsonl` and the rest posted again; retried with the very same body after
`Retry-After` (so the same `event_id`s, which count once however often they arrive) at most
`max_retries` times; or given up. A `401` stops the whole run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from services.contract.models import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from services.send.batches import Batch, batches
from services.send.errors import SourceError
from services.send.files import Source
from services.send.outcome import MAX_NOTES, Accepted, GiveUp, Retry, Split, Stop, Tally, Verdict, judge
from services.send.records import Refused
from services.send.retry import retry_delay


@dataclass(frozen=True, slots=True)
class SendOptions:
    """How `send_files` posts."""

    batch_size: int = MAX_BATCH_EVENTS
    max_bytes: int = MAX_BODY_BYTES
    concurrency: int = 4
    max_retries: int = 10
    """Posts of the same body after the first, per batch, before it is given up."""
    max_wait_s: float = 60.0
    """The longest wait before one retry, whatever `Retry-After` says."""
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch size must be 1..{MAX_BATCH_EVENTS}")
        if self.concurrency < 1 or self.max_retries < 0 or self.max_wait_s < 0 or self.timeout_s <= 0:
            raise ValueError("concurrency must be at least 1; retries, waits and timeouts not negative")


class RefusedFile:
    """`FILE.refused.jsonl`, written as refusals come (so not in line order); one from an earlier run is
    removed first, so what is there afterwards is this run's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] | None = None
        path.unlink(missing_ok=True)

    def write(self, refused: Refused) -> None:
        """Append one refusal."""
        if self._out is None:
            self._out = self.path.open("wb")
        self._out.write(refused.record())

    def close(self) -> None:
        """Flush and close (nothing was created if nothing was refused)."""
        if self._out is not None:
            self._out.close()

    @property
    def written(self) -> bool:
        """Whether anything was refused."""
        return self._out is not None


@dataclass
class FileRun:
    """One input file's part of a run."""

    source: Source
    refused_file: RefusedFile
    tally: Tally = field(default_factory=Tally)


@dataclass
class SendReport:
    """What a run did, per file and in all."""

    files: list[FileRun]
    total: Tally
    stopped: str | None
    """Why the run stopped before the end (a refused token); None if it ran through."""
    seconds: float


class _Stopped(Exception):
    pass


def _note(run: FileRun, batch: Batch, text: str) -> None:
    # Shown in the command's summary, which is where its user looks (the command logs nowhere else).
    first, last = batch.events[0].line, batch.events[-1].line
    if len(run.tally.notes) < MAX_NOTES:
        run.tally.notes.append(f"line {first}: {text}" if first == last else f"lines {first}-{last}: {text}")


def _json(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500] or None


async def send_files(
    sources: Sequence[Source],
    base_url: str,
    token: str,
    options: SendOptions = SendOptions(),
    *,
    on_change: Callable[[Tally], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> SendReport:
    """Post every event of `sources`, in file order, with `options.concurrency` requests in flight.

    `token` goes in `Authorization: Bearer`. `on_change` is called with the run's total
    after every change of its counts (a progress bar); `transport` replaces the network (tests).
    """
    runs = [FileRun(s, RefusedFile(s.refused_path)) for s in sources]
    total = Tally()
    changed = on_change or (lambda tally: None)
    queue: asyncio.Queue[tuple[FileRun, Batch] | None] = asyncio.Queue(maxsize=2 * options.concurrency)
    started = time.perf_counter()

    def refuse(run: FileRun, refused: Refused) -> None:
        run.refused_file.write(refused)
        run.tally.refused += 1
        total.refused += 1

    async def produce() -> None:
        for run in runs:
            try:
                for item in batches(run.source.items(), options.batch_size, options.max_bytes):
                    count = 1 if isinstance(item, Refused) else len(item)
                    run.tally.read += count
                    total.read += count
                    if isinstance(item, Refused):
                        refuse(run, item)
                        changed(total)
                    else:
                        await queue.put((run, item))
                    # Files are read on this thread: let the workers post meanwhile.
                    await asyncio.sleep(0)
            except SourceError as exc:
                # Reported in the summary and by the exit code; the next file is still sent.
                run.tally.failure = str(exc)
        for _ in range(options.concurrency):
            await queue.put(None)

    async def deliver(client: httpx.AsyncClient, run: FileRun, batch: Batch) -> None:
        pending: Batch | None = batch
        attempt = 0
        while pending is not None:
            run.tally.requests += 1
            total.requests += 1
            retry_after: str | None = None
            try:
                response = await client.post(run.source.stream.path, content=pending.body())
            except httpx.TransportError as exc:
                # No answer: resending the same event_ids is safe, whatever the collector kept.
                verdict: Verdict = Retry(f"no answer: {exc!r}")
            else:
                retry_after = response.headers.get("Retry-After")
                verdict = judge(pending, response.status_code, _json(response))
            if isinstance(verdict, Accepted):
                if verdict.count != len(pending):
                    _note(run, pending, f"the collector accepted {verdict.count} of {len(pending)} events")
                run.tally.accepted += len(pending)
                total.accepted += len(pending)
                pending = None
            elif isinstance(verdict, Split):
                for refused in verdict.refused:
                    refuse(run, refused)
                if verdict.batch_error is not None:
                    _note(run, pending, f"refused as a whole: {verdict.batch_error}")
                pending = verdict.rest
            elif isinstance(verdict, Retry):
                attempt += 1
                if attempt > options.max_retries:
                    _note(run, pending, f"given up after {options.max_retries} retries: {verdict.reason}")
                    pending = None
                else:
                    run.tally.retries += 1
                    total.retries += 1
                    await asyncio.sleep(retry_delay(retry_after, attempt, options.max_wait_s))
            elif isinstance(verdict, GiveUp):
                _note(run, pending, f"given up: {verdict.reason}")
                pending = None
            else:
                assert isinstance(verdict, Stop)
                raise _Stopped(verdict.reason)
            changed(total)

    async def work(client: httpx.AsyncClient) -> None:
        while (job := await queue.get()) is not None:
            await deliver(client, *job)

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=options.concurrency, max_keepalive_connections=options.concurrency)
    stopped: str | None = None
    try:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=options.timeout_s, transport=transport
        ) as client:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(produce())
                    for _ in range(options.concurrency):
                        group.create_task(work(client))
            except* _Stopped as failed:
                stopped = str(failed.exceptions[0])
    finally:
        for run in runs:
            run.refused_file.close()
    return SendReport(runs, total, stopped, time.perf_counter() - started)
