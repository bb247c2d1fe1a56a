"""The replay client against an in-process fake collector (httpx.MockTransport, no network)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest

from services.demo.errors import ReplayError
from services.demo.month import MonthPlan
from services.demo.replay import ENDPOINTS, MAX_BODY_BYTES, ReplayResult, _retry_delay, replay, replay_month
from services.demo.stream import KINDS
from services.streams import STREAMS

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


class FakeCollector:
    """Records every request; answers 202, or what `script` says for the n-th request."""

    def __init__(self, script: dict[int, httpx.Response] | None = None, delay: float = 0.0) -> None:
        self.script = script or {}
        self.delay = delay
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        number = len(self.requests)
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if number in self.script:
            return self.script[number]
        events = orjson.loads(request.content)["events"]
        return httpx.Response(202, json={"accepted": len(events)})

    def bodies(self) -> list[list[dict[str, Any]]]:
        return [orjson.loads(r.content)["events"] for r in self.requests]


def _run(events: list[tuple[str, dict[str, Any]]], collector: Handler, **options: Any) -> ReplayResult:
    async def go() -> ReplayResult:
        return await replay(
            events,
            base_url="http://collector.test",
            token="demo-admin-token",
            progress=False,
            transport=httpx.MockTransport(collector),
            **options,
        )

    return asyncio.run(go())


@pytest.fixture(scope="module")
def some_events(month_plan: MonthPlan) -> list[tuple[str, dict[str, Any]]]:
    """A slice of the real stream: history, 31 March and the first days of April, both kinds."""
    return [(kind, dict(event)) for kind, event in itertools.islice(month_plan.events(), 60_000)]


def test_every_event_is_posted_once_in_batches_to_its_endpoint(some_events: list[tuple[str, dict[str, Any]]]) -> None:
    collector = FakeCollector()
    result = _run(some_events, collector, concurrency=4)
    assert result.events_posted == result.accepted == len(some_events)
    assert result.retries == 0
    assert result.requests == result.batches == len(collector.requests)
    paths = Counter(r.url.path for r in collector.requests)
    assert set(paths) == {"/v1/uploads", "/v1/kiosk-transactions"}
    for request, body in zip(collector.requests, collector.bodies(), strict=True):
        assert 1 <= len(body) <= 1_000
        assert len(request.content) <= MAX_BODY_BYTES
        assert request.headers["authorization"] == "Bearer demo-admin-token"
        assert request.headers["content-type"] == "application/json"
        expected_path = "/v1/uploads" if "table_code" in body[0] else "/v1/kiosk-transactions"
        assert request.url.path == expected_path
        assert all(("table_code" in e) == (expected_path == "/v1/uploads") for e in body)
    posted = Counter(e["event_id"] + e["org_code"] for body in collector.bodies() for e in body)
    sent = Counter(e["event_id"] + e["org_code"] for _, e in some_events)
    assert posted == sent
    # Amounts stay strings on the wire: never a float.
    assert all(isinstance(e["amount"], str) for body in collector.bodies() for e in body if "amount" in e)


def test_several_requests_are_in_flight(some_events: list[tuple[str, dict[str, Any]]]) -> None:
    collector = FakeCollector(delay=0.005)
    _run(some_events[:20_000], collector, concurrency=6)
    assert 1 < collector.max_in_flight <= 6


def test_503_and_429_are_retried_with_the_same_body_after_retry_after(
    some_events: list[tuple[str, dict[str, Any]]],
) -> None:
    busy = httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "broker unavailable"})
    limited = httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "slow down"})
    collector = FakeCollector(script={0: busy, 1: limited})
    result = _run(some_events[:1_000], collector, concurrency=1)
    assert result.retries == 2
    assert result.requests == 3
    assert result.events_posted == 1_000
    assert collector.requests[0].content == collector.requests[1].content == collector.requests[2].content


def test_retries_are_bounded(some_events: list[tuple[str, dict[str, Any]]]) -> None:
    busy = httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "spool full"})
    collector = FakeCollector(script=dict.fromkeys(range(100), busy))
    with pytest.raises(ReplayError, match="spool full") as caught:
        _run(some_events[:10], collector, concurrency=1, max_attempts=3)
    assert caught.value.status == 503
    assert caught.value.retriable
    assert len(collector.requests) == 3


def test_any_other_answer_is_an_error_with_the_detail(some_events: list[tuple[str, dict[str, Any]]]) -> None:
    refused = httpx.Response(422, json={"detail": "event 3: org_code: unknown institution"})
    collector = FakeCollector(script={0: refused})
    with pytest.raises(ReplayError, match="unknown institution") as caught:
        _run(some_events[:5_000], collector, concurrency=1)
    assert caught.value.status == 422
    assert caught.value.detail == "event 3: org_code: unknown institution"
    assert not caught.value.retriable
    # The first refusal stops the replay: nothing was retried.
    assert all(r.content != collector.requests[0].content for r in collector.requests[1:])


def test_a_connection_failure_is_retried() -> None:
    calls = 0

    async def flaky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(202, json={"accepted": 1})

    event = {"event_id": "x", "org_code": "H0001", "table_code": "T0001"}
    result = _run([("upload", event)], flaky, max_retry_after=0.0)
    assert (result.retries, result.events_posted) == (1, 1)


def test_a_body_over_one_mebibyte_is_split() -> None:
    big = [("upload", {"event_id": f"e{n}", "org_code": "H0001", "padding": "x" * 2_000}) for n in range(1_000)]
    collector = FakeCollector()
    result = _run(big, collector)
    assert result.events_posted == 1_000
    assert len(collector.requests) > 1
    assert all(len(r.content) <= MAX_BODY_BYTES for r in collector.requests)


def test_retry_after_as_seconds_date_or_missing() -> None:
    assert _retry_delay(httpx.Response(503, headers={"Retry-After": "2"}), 1, 30.0) == 2.0
    assert _retry_delay(httpx.Response(503, headers={"Retry-After": "120"}), 1, 30.0) == 30.0
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 5 < _retry_delay(httpx.Response(503, headers={"Retry-After": when}), 1, 30.0) <= 10
    assert _retry_delay(httpx.Response(503), 3, 30.0) == 2.0
    assert _retry_delay(None, 1, 30.0) == 0.5


def test_batch_size_is_bounded_by_the_contract() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _run([], FakeCollector(), batch_size=1_001)


def test_an_unknown_kind_is_refused_before_anything_is_sent() -> None:
    collector = FakeCollector()
    with pytest.raises(ValueError, match="unknown event kind"):
        _run([("fax", {"event_id": "a"})], collector)
    assert collector.requests == []


def test_each_stream_of_revision_2_goes_to_its_endpoint() -> None:
    events = [
        (
            "appointment",
            {"event_id": "a1", "org_code": "H0003", "channel": "phone", "booked_at": "2020-04-01T08:00:00Z"},
        ),
        ("hotline_contact", {"event_id": "h1", "org_code": "L3201", "kind": "call", "category": "complaint"}),
        ("remote_upload", {"event_id": "r1", "org_code": "H0007", "platform": "lab", "counts": {"reports": 1}}),
        ("upload", {"event_id": "u1", "org_code": "H0001", "table_code": "T0001"}),
    ]
    collector = FakeCollector()
    result = _run(events, collector)
    assert result.events_posted == 4
    posted = {r.url.path: orjson.loads(r.content)["events"][0]["event_id"] for r in collector.requests}
    assert posted == {
        "/v1/appointments": "a1",
        "/v1/hotline-contacts": "h1",
        "/v1/remote-uploads": "r1",
        "/v1/uploads": "u1",
    }


def _month_paths(**options: Any) -> Counter[str]:
    """Paths of the first requests of `replay_month` (the fake collector stops it with a 422)."""
    refused = httpx.Response(422, json={"detail": "enough"})
    collector = FakeCollector(script=dict.fromkeys(range(150, 10_000), refused))

    async def go() -> None:
        await replay_month(
            "http://collector.test", "t", progress=False, transport=httpx.MockTransport(collector), **options
        )

    with pytest.raises(ReplayError, match="enough"):
        asyncio.run(go())
    return Counter(r.url.path for r in collector.requests)


def test_the_month_replays_only_the_v1_streams_unless_told() -> None:
    assert set(_month_paths()) == {"/v1/uploads", "/v1/kiosk-transactions"}
    everything = _month_paths(kinds=KINDS, concurrency=1)
    assert set(everything) == set(ENDPOINTS.values())


def test_every_registered_stream_is_replayed_to_its_own_path() -> None:
    # The replay names the endpoints of streams not registered yet; once they are, the names
    # and paths must be the registry's.
    for stream in STREAMS.values():
        assert ENDPOINTS.get(stream.name) == stream.path, stream.name
    assert set(ENDPOINTS) == set(KINDS)
