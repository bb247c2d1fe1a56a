"""Post the demo month through the collector's HTTP API, fast.

Events are grouped per endpoint into `{"events": [...]}` batches of up to 1,000 events
(split further if a body would exceed 1 MiB), serialised once with orjson, and posted by
`concurrency` workers over one `httpx.AsyncClient`. A `429` or `503` is retried with the
very same body (same event_ids, so a retry can never double count) after `Retry-After`,
at most `max_attempts` times in all; so is a connection that failed before an answer.
Any other answer than `202` stops the replay with a `ReplayError` carrying the
response's `detail`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from services.contract.models import MAX_BATCH_EVENTS, MAX_BODY_BYTES
from services.demo.errors import ReplayError
from services.demo.month import DEFAULT_SEED
from services.demo.stream import V1_KINDS, plan_demo_month
from services.send.retry import retry_delay

# Every stream of the demo month and the endpoint its events are posted to (contract v1 and
# revision 2). `replay_month` posts the v1 streams unless told otherwise: the endpoints of
# revision 2 are switched on once the platform has them.
ENDPOINTS: Mapping[str, str] = {
    "upload": "/v1/uploads",
    "kiosk": "/v1/kiosk-transactions",
    "appointment": "/v1/appointments",
    "hotline_contact": "/v1/hotline-contacts",
    "remote_upload": "/v1/remote-uploads",
}
_RETRY_STATUSES = frozenset({429, 503})
_ACCEPTED = 202


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did."""

    events_posted: int
    """Events in batches the collector answered 202 (duplicates of the stream included)."""
    accepted: int
    """Sum of the `accepted` counts of those 202 answers."""
    retries: int
    """Requests sent again after a 429/503 or a failed connection."""
    requests: int
    """HTTP requests sent, retries included."""
    batches: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """Throughput of the whole replay."""
        return self.events_posted / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _Batch:
    path: str
    body: bytes
    events: int
    first_event_id: str


@dataclass(slots=True)
class _Tally:
    posted: int = 0
    accepted: int = 0
    retries: int = 0
    requests: int = 0
    batches: int = 0


class _RateColumn(ProgressColumn):
    """Events per second of the task."""

    def render(self, task: Task) -> Text:
        """Render the speed as events/s."""
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="progress.data.speed")


@contextmanager
def _progress_bar(enabled: bool, total: int | None) -> Iterator[tuple[Progress, TaskID]]:
    progress = Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    with progress:
        yield progress, progress.add_task("replay", total=total)


def _encode(path: str, events: list[Any]) -> list[_Batch]:
    """One body for the batch, or halves of it while a body would exceed 1 MiB."""
    body = orjson.dumps({"events": events})
    if len(body) <= MAX_BODY_BYTES or len(events) == 1:
        return [_Batch(path, body, len(events), str(events[0].get("event_id")))]
    half = len(events) // 2
    return _encode(path, events[:half]) + _encode(path, events[half:])


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return response.text[:500]


def _retry_delay(response: httpx.Response | None, attempt: int, cap: float) -> float:
    """Seconds to wait before the next attempt: Retry-After (seconds or HTTP date), else backoff."""
    return retry_delay(response.headers.get("Retry-After") if response is not None else None, attempt, cap)


async def _post(
    client: httpx.AsyncClient, batch: _Batch, tally: _Tally, max_attempts: int, max_retry_after: float
) -> None:
    for attempt in range(1, max_attempts + 1):
        response: httpx.Response | None = None
        tally.requests += 1
        try:
            response = await client.post(batch.path, content=batch.body)
        except httpx.TransportError as exc:
            # No answer at all: resending the same event_ids is safe, so it is retried too.
            if attempt == max_attempts:
                raise ReplayError(
                    f"POST {batch.path}: no answer after {attempt} attempts: {exc!r}",
                    status=None,
                    detail=repr(exc),
                    retriable=True,
                ) from exc
        else:
            if response.status_code == _ACCEPTED:
                body = response.json()
                tally.accepted += int(body.get("accepted", 0)) if isinstance(body, dict) else 0
                tally.posted += batch.events
                tally.batches += 1
                return
            if response.status_code not in _RETRY_STATUSES or attempt == max_attempts:
                retriable = response.status_code in _RETRY_STATUSES
                detail = _detail(response)
                raise ReplayError(
                    f"POST {batch.path} ({batch.events} events from {batch.first_event_id}):"
                    f" {response.status_code} {detail}",
                    status=response.status_code,
                    detail=detail,
                    retriable=retriable,
                )
        tally.retries += 1
        await asyncio.sleep(_retry_delay(response, attempt, max_retry_after))


async def replay(
    events: Iterable[tuple[str, Mapping[str, object]]],
    base_url: str,
    token: str,
    *,
    concurrency: int = 8,
    batch_size: int = MAX_BATCH_EVENTS,
    max_attempts: int = 8,
    max_retry_after: float = 30.0,
    total: int | None = None,
    progress: bool = True,
    request_timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ReplayResult:
    """Post `(kind, event)` pairs to the collector at `base_url` as batches, per kind's endpoint (`ENDPOINTS`).

    `token` is sent as `Authorization: Bearer`; it must be allowed to submit for every
    institution of the stream (an admin token for the demo). `total` (events) gives the
    progress bar its ETA. `transport` replaces the network (tests).
    Raises `ReplayError` when a batch is refused or still refused after `max_attempts`.
    """
    if not 1 <= batch_size <= MAX_BATCH_EVENTS:
        raise ValueError(f"batch_size must be 1..{MAX_BATCH_EVENTS}")
    if concurrency < 1 or max_attempts < 1:
        raise ValueError("concurrency and max_attempts must be at least 1")
    tally = _Tally()
    # A small queue: the producer stays just ahead of the workers, so memory stays flat.
    queue: asyncio.Queue[_Batch | None] = asyncio.Queue(maxsize=2 * concurrency)
    started = time.perf_counter()

    async def produce() -> None:
        buffers: dict[str, list[Any]] = {kind: [] for kind in ENDPOINTS}
        for kind, event in events:
            if kind not in buffers:
                raise ValueError(f"unknown event kind {kind!r}; expected one of {sorted(ENDPOINTS)}")
            buffer = buffers[kind]
            buffer.append(event)
            if len(buffer) >= batch_size:
                buffers[kind] = []
                for batch in _encode(ENDPOINTS[kind], buffer):
                    await queue.put(batch)
                # The stream is generated on this thread: let the workers send meanwhile.
                await asyncio.sleep(0)
        for kind, buffer in buffers.items():
            if buffer:
                for batch in _encode(ENDPOINTS[kind], buffer):
                    await queue.put(batch)
        for _ in range(concurrency):
            await queue.put(None)

    async def work(client: httpx.AsyncClient, bar: Progress, task: TaskID) -> None:
        while (batch := await queue.get()) is not None:
            await _post(client, batch, tally, max_attempts, max_retry_after)
            bar.advance(task, batch.events)

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with _progress_bar(progress, total) as (bar, task):
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=request_timeout, transport=transport
        ) as client:
            try:
                # A failing worker cancels the producer and the other workers.
                async with asyncio.TaskGroup() as group:
                    group.create_task(produce())
                    for _ in range(concurrency):
                        group.create_task(work(client, bar, task))
            except ExceptionGroup as failed:
                # Raise the first failure itself (ReplayError, or ValueError for a bad
                # event kind), not the group TaskGroup wraps it in.
                raise failed.exceptions[0] from None
    return ReplayResult(
        events_posted=tally.posted,
        accepted=tally.accepted,
        retries=tally.retries,
        requests=tally.requests,
        batches=tally.batches,
        seconds=time.perf_counter() - started,
    )


async def replay_month(
    base_url: str,
    token: str,
    *,
    seed: int = DEFAULT_SEED,
    kinds: Collection[str] = V1_KINDS,
    concurrency: int = 8,
    progress: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ReplayResult:
    """Generate the April 2020 demo month and post the streams of `kinds` (see `replay`).

    The default is the v1 streams (uploads, kiosk transactions); `stream.KINDS` is all of them.
    """
    month = plan_demo_month(seed)
    return await replay(
        month.events(kinds),
        base_url=base_url,
        token=token,
        concurrency=concurrency,
        total=month.total_events(kinds),
        progress=progress,
        transport=transport,
    )
