"""Every event stream the platform counts, registered once, in one explicit tuple.

Adding a stream: one folder beside `uploads/` and `kiosk/`, one entry below, a migration for
its tables, its JSON Schemas in `schemas/` and its docs (docs/architecture.md, "Adding a
stream", lists every step). The order is the order of the streams' SQL work in a batch, and
the order in which the collector's routes are declared.
"""

from __future__ import annotations

from services.streams import kiosk, uploads
from services.streams.base import ConsumedEvent, Registry, Stream, registry

STREAMS: Registry = registry(uploads.STREAM, kiosk.STREAM)

__all__ = ["STREAMS", "ConsumedEvent", "Registry", "Stream"]
