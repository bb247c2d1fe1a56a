"""What the collector's answer to a batch means, and the counts of a run (pure: no I/O).

- `202`: `Accepted`, every event of the batch is durable.
- `422` with problems by index: `Split`, those events refused with their problems and the
  rest posted again (the collector kept nothing of the batch).
- `429`, `502`, `503`, `504`, or no answer: `Retry`, the same body again after `Retry-After`.
- `401`: `Stop`, the token is refused and no later request can succeed.
- any other `4xx` (`400`, `403`, `413`, a `422` without indexes): `Split` refusing the whole
  batch, with the answer's detail.
- any other `5xx`: `GiveUp`, not acknowledged and not the events' fault; send the file again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.send.batches import Batch
from services.send.records import Problem, Refused

ACCEPTED = 202
UNAUTHENTICATED = 401
INVALID = 422
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Accepted:
    """The batch is durable at the collector; `count` is its `{"accepted": N}`."""

    count: int


@dataclass(frozen=True, slots=True)
class Split:
    """Some (or all) events refused; `rest` is to be posted again (None: nothing left)."""

    refused: tuple[Refused, ...]
    rest: Batch | None
    batch_error: str | None = None
    """For a refusal of the request as a whole (not event by event): what the collector said."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Not acknowledged now; post the same body again after a while."""

    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """No later request can succeed (the token is refused): stop sending."""

    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Not acknowledged, for a reason retrying will not fix: the batch is left unsent."""

    reason: str


Verdict = Accepted | Split | Retry | Stop | GiveUp


def _said(status: int, body: Any) -> tuple[str, str]:
    """(error code, detail) of an error answer in the one error shape, or of whatever came back."""
    if isinstance(body, Mapping):
        return str(body.get("error", f"http_{status}")), str(body.get("detail", ""))
    return f"http_{status}", "" if body is None else str(body)[:500]


def judge(batch: Batch, status: int, body: Any) -> Verdict:
    """What the answer `status` with JSON `body` (None if it was not JSON) to `batch` means."""
    if status == ACCEPTED:
        count = body.get("accepted") if isinstance(body, Mapping) else None
        return Accepted(count if isinstance(count, int) else len(batch))
    error, detail = _said(status, body)
    if status in RETRY_STATUSES:
        return Retry(f"{status} {error}: {detail}")
    if status == UNAUTHENTICATED:
        return Stop(f"401 {error}: {detail}")
    if status >= 500:
        return GiveUp(f"{status} {error}: {detail}")
    if status == INVALID:
        by_index = _problems_by_index(body, len(batch))
        if by_index is not None:
            refused = tuple(
                Refused(batch.events[i].line, status, error, tuple(found), event=batch.events[i].body)
                for i, found in sorted(by_index.items())
            )
            return Split(refused, batch.without(by_index))
    whole = (Problem("(request)", f"{status} {error}: {detail}"),)
    refused = tuple(Refused(e.line, status, error, whole, event=e.body) for e in batch.events)
    return Split(refused, None, batch_error=f"{status} {error}: {detail}")


def _problems_by_index(body: Any, size: int) -> dict[int, list[Problem]] | None:
    """The problems of a `422 invalid_events` by event index; None unless every one names an event of the batch."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list) or not errors:
        return None
    found: dict[int, list[Problem]] = {}
    for problem in errors:
        index = problem.get("index") if isinstance(problem, Mapping) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
            return None
        found.setdefault(index, []).append(Problem(str(problem.get("field", "")), str(problem.get("reason", ""))))
    return found


@dataclass
class Tally:
    """The counts of one file (or of a whole run)."""

    read: int = 0
    """Events read and handed on (lines refused on reading included)."""
    accepted: int = 0
    refused: int = 0
    requests: int = 0
    retries: int = 0
    failure: str | None = None
    """Why the file was not sent whole (it could not be read on); None if it was."""
    notes: list[str] = field(default_factory=list)
    """What the collector said of whole batches it refused or that were given up (the first few)."""

    @property
    def unsent(self) -> int:
        """Events read but neither accepted nor refused: given up after retries, or left when the run stopped."""
        return self.read - self.accepted - self.refused

    def add(self, other: Tally) -> None:
        """Add `other`'s counts to these (a run's total from its files)."""
        self.read += other.read
        self.accepted += other.accepted
        self.refused += other.refused
        self.requests += other.requests
        self.retries += other.retries


MAX_NOTES = 20

# Exit codes of `telemetry send` (documented in README.md, "Backfill: telemetry send").
EXIT_ALL_ACCEPTED = 0
EXIT_REFUSED = 1
EXIT_FILE_ERROR = 2
EXIT_UNSENT = 3


def exit_code(files: list[Tally], stopped: bool) -> int:
    """3 if any event is unsent (or the run stopped), else 2 if a file could not be read on, else 1 if any
    event was refused, else 0."""
    if stopped or any(t.unsent for t in files):
        return EXIT_UNSENT
    if any(t.failure for t in files):
        return EXIT_FILE_ERROR
    if any(t.refused for t in files):
        return EXIT_REFUSED
    return EXIT_ALL_ACCEPTED
