"""Property-based fuzzing of both services from their own OpenAPI descriptions (schemathesis).

The collector and the aggregator each run under uvicorn in a thread of this process, on a free
loopback port, against the real broker and a database of this module alone, so the requests go
through the same HTTP parser as in production. Every operation is fuzzed with valid and invalid
inputs, once with the admin token and once with an institution token; a 5xx, an undocumented
status or content type, or a body that does not match its declared schema fails the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import httpx
import hypothesis
import pytest
import pytest_asyncio
import schemathesis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import BaseSchema

from services.aggregator.app import create_app as create_aggregator
from services.collector.app import create_app as create_collector
from tests.fixtures.events import REFERENCE, kiosk, upload
from tests.fixtures.server import ServerThread
from tests.fixtures.stack import WAIT_S, StackConfig, admin_headers, cloned_database

pytestmark = [
    pytest.mark.integration,
    pytest.mark.fuzz,
    # Hypothesis warns when the global `random` state changes while it draws an example; here the
    # servers' threads (the Kafka client picks brokers at random) change it, not the strategies.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies"),
]

# Examples per operation and phase, sized so the whole module stays well under two minutes on
# two cores; the seed makes a failure reproducible run after run.
MAX_EXAMPLES = 25
SEED = 20200401

# Known codes and edge values for part of the generated events, so that some pass the reference
# checks and the model's calendar checks (the schemas' patterns also allow "0000-00-00"), are
# published and go through the aggregator: the fuzzing then reaches the consumer and the rollups
# with odd but valid events (offsets of ±23:59, the years 1900 and 9998, the largest amounts).
_TIMESTAMPS = [
    "2020-04-30T16:30:00Z",
    "2020-04-10T23:59:59.999999999+08:00",
    "1900-01-01T00:00:00+23:59",
    "9998-12-31T23:59:59-23:59",
    "2020-02-29T12:00:00-00:00",
]
_KNOWN = {
    "org_code": [i["org_code"] for i in REFERENCE["institutions"]],
    "table_code": [t["table_code"] for t in REFERENCE["tables"]],
    "kiosk_id": [k["kiosk_id"] for k in REFERENCE["kiosks"]],
    "business_date": ["2020-04-10", "1900-01-01", "9998-12-31", "2020-02-29"],
    "uploaded_at": _TIMESTAMPS,
    "occurred_at": _TIMESTAMPS,
    "booked_at": _TIMESTAMPS,
    "amount": ["0", "0.5", "12.50", "999999999999.99"],
}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "dictionaries": {field: {"values": values} for field, values in _KNOWN.items()},
        "parameters": {
            f"body.{prefix}{field}": {"dictionary": field, "probability": 0.8}
            for field in _KNOWN
            for prefix in ("", "events[*].")
        },
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            # Invalid input must be refused with a 4xx of the contract (413: more than 1,000 events).
            "negative_data_rejection": {
                "enabled": True,
                "expected-statuses": [400, 401, 403, 404, 405, 413, 415, 422, 429],
            },
        },
    }
)


@dataclass(frozen=True)
class Stack:
    """The two running services."""

    collector_url: str
    aggregator_url: str
    aggregator_metrics_url: str


@pytest_asyncio.fixture(scope="module")
async def fuzz_database(template_db: str) -> AsyncIterator[str]:
    """A database for this module's servers (module scope: starting them once keeps the run short)."""
    async with cloned_database(template_db, "fuzz") as url:
        yield url


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {WAIT_S:.0f}s waiting for: {what}")


@pytest.fixture(scope="module")
def stack(fuzz_database: str) -> Iterator[Stack]:
    """Collector and aggregator serving one database and topic, with reference data and some events."""
    tag = uuid.uuid4().hex[:10]
    config = StackConfig(fuzz_database, f"test.{tag}.events", f"test.{tag}.dead-letter", f"test-{tag}")
    collector_app = create_collector(config.collector_settings(), CollectorRegistry())
    aggregator_app = create_aggregator(config.aggregator_settings(), CollectorRegistry())
    with ServerThread(collector_app) as collector, ServerThread(aggregator_app) as aggregator:
        with httpx.Client(base_url=collector.base_url, headers=admin_headers(), timeout=WAIT_S) as client:
            _wait(lambda: client.get("/readyz").json()["kafka"] == "ok", "collector connected to Kafka")
            assert client.put("/v1/admin/reference", json=REFERENCE).status_code in (200, 201)
            # Some events, so the reports have rows to compute and format.
            uploads = [upload(org_code=org) for org in ("D1", "D2", "H1")]
            assert client.post("/v1/uploads", json={"events": uploads}).status_code == 202
            assert client.post("/v1/kiosk-transactions", json=kiosk()).status_code == 202
        with httpx.Client(base_url=aggregator.base_url, headers=admin_headers(), timeout=WAIT_S) as client:
            report = {"month": "2020-04", "kind": "district"}
            _wait(lambda: len(client.get("/v1/reports/uploads", params=report).json()) == 2, "events applied")
        yield Stack(collector.base_url, aggregator.base_url, aggregator_app.state.metrics_listener.url)


def _reference_in_force(client: httpx.Client) -> None:
    # The fuzzer loads reference sets of its own; put the test set back (a no-op when in force).
    assert client.put("/v1/admin/reference", json=REFERENCE).status_code in (200, 201)


@pytest.fixture
def admin(stack: Stack) -> dict[str, str]:
    """The admin token's headers, with the test reference set in force."""
    with httpx.Client(base_url=stack.collector_url, headers=admin_headers(), timeout=WAIT_S) as client:
        _reference_in_force(client)
    return admin_headers()


@pytest.fixture
def institution(stack: Stack) -> dict[str, str]:
    """A new token of D1 (the fuzzer may have revoked the earlier ones), with the test reference set in force."""
    with httpx.Client(base_url=stack.collector_url, headers=admin_headers(), timeout=WAIT_S) as client:
        _reference_in_force(client)
        response = client.post("/v1/admin/tokens", json={"org_code": "D1"})
        assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _schema(app: FastAPI) -> BaseSchema:
    # Only the description is needed at collection time; building an app does no I/O, and the
    # served apps (made by `stack`) are built by the same factories, so they describe the same API.
    return schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)


_OPENAPI_ONLY = StackConfig("postgresql://unused/unused", "unused", "unused", "unused")
collector_api = _schema(create_collector(_OPENAPI_ONLY.collector_settings(), CollectorRegistry()))
aggregator_api = _schema(create_aggregator(_OPENAPI_ONLY.aggregator_settings(), CollectorRegistry()))
# No deadline: a request's time depends on the broker and the database, not on the example.
# Health checks off: the function-scoped fixtures are meant to run once per operation (not per
# example), and the dictionaries above make Hypothesis filter more than it likes.
_SETTINGS = hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))


def _call_aggregator(case: schemathesis.Case, stack: Stack, headers: dict[str, str]) -> None:
    if case.operation.path == "/v1/reports/bulletin" and (case.query or {}).get("format") == "pdf":
        # Printing starts Chromium (seconds per page, out of this run's budget) to print the same
        # HTML page that format=html fuzzes; without Chromium the designed answer is a 503.
        return
    case.call_and_validate(base_url=stack.aggregator_url, headers=headers)


@collector_api.parametrize()
@_SETTINGS
def test_collector_api_as_admin(case: schemathesis.Case, stack: Stack, admin: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack.collector_url, headers=admin)


@collector_api.parametrize()
@_SETTINGS
def test_collector_api_as_institution(case: schemathesis.Case, stack: Stack, institution: dict[str, str]) -> None:
    case.call_and_validate(base_url=stack.collector_url, headers=institution)


@aggregator_api.parametrize()
@_SETTINGS
def test_aggregator_api_as_admin(case: schemathesis.Case, stack: Stack, admin: dict[str, str]) -> None:
    _call_aggregator(case, stack, admin)


@aggregator_api.parametrize()
@_SETTINGS
def test_aggregator_api_as_institution(case: schemathesis.Case, stack: Stack, institution: dict[str, str]) -> None:
    _call_aggregator(case, stack, institution)


def _samples(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_every_event_the_fuzzing_got_accepted_was_applied(stack: Stack) -> None:
    """After the fuzzing (this module's tests run in order): the consumer still runs, and every
    event the collector acknowledged was stored or counted as a duplicate, none dead-lettered."""
    with (
        httpx.Client(base_url=stack.collector_url, timeout=WAIT_S) as collector,
        httpx.Client(base_url=stack.aggregator_url, timeout=WAIT_S) as aggregator,
        httpx.Client(base_url=stack.aggregator_metrics_url, timeout=WAIT_S) as aggregator_metrics,
    ):
        accepted = _samples(collector, "collector_events_accepted_total")

        def counted() -> float:
            applied = _samples(aggregator_metrics, "aggregator_events_applied_total")
            return applied + _samples(aggregator_metrics, "aggregator_events_duplicate_total")

        _wait(lambda: counted() >= accepted, f"the aggregator to apply the {accepted:.0f} accepted events")
        assert counted() == accepted
        assert aggregator.get("/readyz").status_code == 200
        assert _samples(aggregator_metrics, "aggregator_dead_letters_total") == 0
        assert _samples(aggregator_metrics, "aggregator_db_errors_total") == 0
