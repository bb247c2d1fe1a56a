"""JSON responses serialised with orjson (fast, and refuses NaN instead of emitting invalid JSON)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JsonResponse(Response):
    """`application/json` body from any orjson-serialisable value."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise `content`."""
        return orjson.dumps(content)
