"""The JSON Schemas of `schemas/` as OpenAPI fragments, so the API docs show the real contract."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@cache
def _raw(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text("utf-8"))
    return doc


def load_schema(name: str) -> dict[str, Any]:
    """One schema file of `schemas/`, with its `$ref`s to sibling files inlined."""
    inlined: dict[str, Any] = _inline(_raw(name))
    return inlined


def _inline(node: Any) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            file, _, pointer = ref.partition("#")
            target: Any = _raw(file)
            for part in pointer.strip("/").split("/") if pointer else []:
                target = target[part]
            return _inline(target)
        return {k: _inline(v) for k, v in node.items() if k not in ("$schema", "$id", "$defs")}
    if isinstance(node, list):
        return [_inline(v) for v in node]
    return node


def request_body_schema(name: str) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body by one of our schema files."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": load_schema(name)}},
        }
    }


_ERROR = {"content": {"application/json": {"schema": load_schema("error.schema.json")}}}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": 'All events are durable: `{"accepted": N}`'},
    400: {"description": "Unparseable body", **_ERROR},
    401: {"description": "Missing or unknown token", **_ERROR},
    403: {"description": "Token may not submit for that institution; nothing kept", **_ERROR},
    413: {"description": "Body over 1 MiB or batch over 1,000 events", **_ERROR},
    415: {"description": "Not application/json", **_ERROR},
    422: {"description": "Invalid events, listed by index, field and reason; nothing kept", **_ERROR},
    429: {"description": "This institution is over its rate limit; see Retry-After", **_ERROR},
    503: {"description": "Cannot be made durable now; see Retry-After", **_ERROR},
}
