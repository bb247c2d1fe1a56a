"""The dedupe key of an event, as the aggregator stores it in `event_keys` (migration 0010).

16 bytes: the first 6 of md5(`<stream>/<org_code>`), then the first 10 of
md5(`<stream>/<org_code>/<event_id>`) (neither a stream name nor a code can hold a `/`). A
fixed-width key keeps the per-month indexes small and their comparisons cheap, which is what
lets a batch look its keys up in every month; the institution's prefix keeps an
institution's keys together in each index, so a batch touches a few index pages per
institution and month rather than one random page per key (docs/architecture.md, "The key
store"). The SQL function `event_key(stream, org_code, event_id)` computes the same value.
md5 is not used for secrecy, only as a well-spread digest: two ids of one institution share
a key with odds of about n²/2^81 for its n keys kept (1e-10 for ten million).
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import md5


@lru_cache(maxsize=65_536)
def _prefix(stream: str, org_code: str) -> str:
    return md5(f"{stream}/{org_code}".encode(), usedforsecurity=False).hexdigest()[:12]


def event_key(stream: str, org_code: str, event_id: str) -> str:
    """The key as 32 hex digits (PostgreSQL's `uuid` input accepts them as they are)."""
    digest = md5(f"{stream}/{org_code}/{event_id}".encode(), usedforsecurity=False).hexdigest()
    return _prefix(stream, org_code) + digest[:20]
