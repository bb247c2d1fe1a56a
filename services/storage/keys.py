"""The dedupe key of an event, as the aggregator stores it in `event_keys` (migration 0010).

md5 of `<stream>/<org_code>/<event_id>` (neither a stream name nor a code can hold a `/`),
16 bytes: a fixed-width key makes the per-month indexes small and their comparisons cheap,
which is what lets a batch look its keys up in every month (docs/architecture.md, "The key
store"). The SQL function `event_key(stream, org_code, event_id)` computes the same value;
md5 is not used for secrecy here, only as a well-spread 128-bit digest (a collision between
two ids of one institution is ~1e-20 likely in a year of a province's events).
"""

from __future__ import annotations

from hashlib import md5


def event_key(stream: str, org_code: str, event_id: str) -> str:
    """The key as 32 hex digits (PostgreSQL's `uuid` input accepts them as they are)."""
    return md5(f"{stream}/{org_code}/{event_id}".encode(), usedforsecurity=False).hexdigest()
