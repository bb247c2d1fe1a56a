"""`send_files` against an in-process fake collector (httpx.MockTransport): retries, splits, stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from services.send.files import Source, open_source
from services.send.outcome import exit_code
from services.send.poster import SendOptions, SendReport, send_files
from services.streams import STREAMS

Answer = Callable[[int, list[dict[str, Any]]], httpx.Response | None]


class FakeCollector:
    """Keeps every request; `answer(n, events)` may answer the n-th request, else 202 (or 422 for a
    negative record_count, index by index, as the collector does)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or (lambda n, events: None)
        self.requests: list[httpx.Request] = []
        self.accepted: list[str] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        number = len(self.requests)
        self.requests.append(request)
        await asyncio.sleep(0)
        events = orjson.loads(request.content)["events"]
        scripted = self.answer(number, events)
        if scripted is not None:
            return scripted
        errors = [
            {"index": i, "field": "record_count", "reason": "must be >= 0"}
            for i, e in enumerate(events)
            if e["record_count"] < 0
        ]
        if errors:
            return httpx.Response(422, json={"error": "invalid_events", "detail": "invalid", "errors": errors})
        self.accepted += [e["event_id"] for e in events]
        return httpx.Response(202, json={"accepted": len(events)})

    def event_ids(self, number: int) -> list[str]:
        return [e["event_id"] for e in orjson.loads(self.requests[number].content)["events"]]


def _upload(n: int, record_count: int = 1) -> dict[str, Any]:
    return {
        "event_id": f"u{n}",
        "org_code": "D1",
        "table_code": "OPV",
        "mode": "realtime",
        "business_date": "2020-04-01",
        "uploaded_at": "2020-04-01T10:00:00+08:00",
        "record_count": record_count,
    }


def _file(tmp_path: Path, events: list[dict[str, Any]]) -> Source:
    path = tmp_path / "uploads.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return open_source(path, STREAMS, None, None)


def _send(source: Source, collector: FakeCollector, **options: Any) -> SendReport:
    settings = SendOptions(**{"max_wait_s": 0.0, "concurrency": 2, **options})
    return asyncio.run(
        send_files([source], "http://collector.test", "t" * 20, settings, transport=httpx.MockTransport(collector))
    )


def test_a_503_and_a_429_are_retried_with_the_same_events(tmp_path: Path) -> None:
    busy = {
        0: httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "unavailable", "detail": "spool full"}),
        1: httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "rate_limited", "detail": "slow down"}),
    }
    collector = FakeCollector(lambda n, events: busy.get(n))
    report = _send(_file(tmp_path, [_upload(n) for n in range(3)]), collector, batch_size=3, concurrency=1)
    assert [collector.event_ids(n) for n in range(3)] == [["u0", "u1", "u2"]] * 3
    assert collector.requests[0].content == collector.requests[2].content
    assert collector.requests[0].headers["authorization"] == "Bearer " + "t" * 20
    assert (report.total.accepted, report.total.refused, report.total.retries, report.total.requests) == (3, 0, 2, 3)
    assert exit_code([r.tally for r in report.files], report.stopped is not None) == 0
    assert not report.files[0].refused_file.path.exists()


def test_refused_events_are_written_beside_the_file_and_the_rest_of_their_batch_is_accepted(tmp_path: Path) -> None:
    events = [_upload(n, record_count=-1 if n in (3, 7) else n) for n in range(10)]
    collector = FakeCollector()
    source = _file(tmp_path, events)
    report = _send(source, collector, batch_size=4)
    # Requests: [u0..u3] refused for u3, then [u0..u2] again; [u4..u7] for u7, then [u4..u6]; [u8, u9].
    assert len(collector.requests) == 5
    assert sorted(collector.accepted) == sorted(e["event_id"] for e in events if e["record_count"] >= 0)
    assert (report.total.accepted, report.total.refused, report.total.unsent) == (8, 2, 0)
    records = [orjson.loads(line) for line in source.refused_path.read_bytes().splitlines()]
    assert sorted((r["line"], r["event"]["event_id"], r["status"]) for r in records) == [(4, "u3", 422), (8, "u7", 422)]
    assert all(r["problems"] == [{"field": "record_count", "reason": "must be >= 0"}] for r in records)
    assert exit_code([r.tally for r in report.files], False) == 1


def test_a_batch_still_busy_after_the_retries_is_unsent(tmp_path: Path) -> None:
    def busy(n: int, events: list[dict[str, Any]]) -> httpx.Response | None:
        if events[0]["event_id"] == "u0":
            return httpx.Response(503, json={"error": "unavailable", "detail": "spool full"})
        return None

    collector = FakeCollector(busy)
    report = _send(_file(tmp_path, [_upload(n) for n in range(4)]), collector, batch_size=2, max_retries=2)
    assert (report.total.accepted, report.total.unsent) == (2, 2)
    assert sum(collector.event_ids(n)[0] == "u0" for n in range(len(collector.requests))) == 3
    assert "given up after 2 retries: 503 unavailable: spool full" in report.files[0].tally.notes[0]
    assert exit_code([r.tally for r in report.files], False) == 3


def test_a_connection_that_fails_is_retried(tmp_path: Path) -> None:
    def flaky(n: int, events: list[dict[str, Any]]) -> httpx.Response | None:
        if n == 0:
            raise httpx.ConnectError("connection refused")
        return None

    collector = FakeCollector(flaky)
    report = _send(_file(tmp_path, [_upload(n) for n in range(2)]), collector)
    assert (report.total.accepted, report.total.retries) == (2, 1)
    assert collector.event_ids(0) == collector.event_ids(1)


def test_a_refused_token_stops_the_run(tmp_path: Path) -> None:
    collector = FakeCollector(lambda n, e: httpx.Response(401, json={"error": "unauthenticated", "detail": "no"}))
    report = _send(_file(tmp_path, [_upload(n) for n in range(5000)]), collector, batch_size=10)
    assert report.stopped == "401 unauthenticated: no"
    assert report.total.accepted == 0 and report.total.unsent > 0
    # Stopped at once: not every batch of the file was posted.
    assert len(collector.requests) < 100
    assert exit_code([r.tally for r in report.files], True) == 3
