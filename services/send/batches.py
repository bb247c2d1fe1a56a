"""Events into request bodies: at most `size` events and `max_bytes` bytes each (the contract: 1,000, 1 MiB)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass

from services.send.records import TOO_LARGE, Problem, Refused, SourceEvent

_OPEN, _COMMA, _CLOSE = b'{"events":[', b",", b"]}"
OVERHEAD = len(_OPEN) + len(_CLOSE)
"""Bytes of a batch body besides its events and the commas between them."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Events posted in one request; a retry posts the same body again."""

    events: tuple[SourceEvent, ...]

    def body(self) -> bytes:
        """`{"events": [...]}` with each event's JSON exactly as read."""
        return _OPEN + _COMMA.join(e.body for e in self.events) + _CLOSE

    def without(self, indices: Collection[int]) -> Batch | None:
        """This batch less the events at `indices`; None if nothing is left."""
        rest = tuple(e for i, e in enumerate(self.events) if i not in indices)
        return Batch(rest) if rest else None

    def __len__(self) -> int:
        return len(self.events)


def batches(items: Iterable[SourceEvent | Refused], size: int, max_bytes: int) -> Iterator[Batch | Refused]:
    """Consecutive events grouped into batches of at most `size` events and `max_bytes` bytes of body.

    An event too large for any request is refused here (`too_large`): the collector would
    refuse the whole batch it was in. Refusals of the input pass through in their place.
    """
    if size < 1:
        raise ValueError("a batch holds at least one event")
    pending: list[SourceEvent] = []
    used = OVERHEAD
    for item in items:
        if isinstance(item, Refused):
            yield item
            continue
        if OVERHEAD + len(item.body) > max_bytes:
            why = f"the event is {len(item.body):,} bytes; a request holds at most {max_bytes:,}"
            yield Refused(item.line, None, TOO_LARGE, (Problem("(event)", why),), event=item.body)
            continue
        grown = used + len(item.body) + (len(_COMMA) if pending else 0)
        if pending and (len(pending) == size or grown > max_bytes):
            yield Batch(tuple(pending))
            pending, grown = [], OVERHEAD + len(item.body)
        pending.append(item)
        used = grown
    if pending:
        yield Batch(tuple(pending))
