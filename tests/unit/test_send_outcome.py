"""`telemetry send`'s batching, its reading of the collector's answers, its counts and exit codes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.send.batches import OVERHEAD, Batch, batches
from services.send.outcome import Accepted, GiveUp, Retry, Split, Stop, Tally, exit_code, judge
from services.send.records import Problem, Refused, SourceEvent
from services.send.retry import retry_delay


def _events(n: int, pad: int = 0) -> list[SourceEvent]:
    return [SourceEvent(i + 2, orjson.dumps({"event_id": f"e{i}", "pad": "x" * pad})) for i in range(n)]


def test_batches_hold_at_most_size_events_in_file_order() -> None:
    events = _events(2345)
    found = list(batches(events, 1000, 1 << 20))
    assert [len(b) for b in found if isinstance(b, Batch)] == [1000, 1000, 345]
    sent = [e for b in found if isinstance(b, Batch) for e in b.events]
    assert sent == events


def test_batches_stay_under_the_byte_limit_and_bodies_are_the_events_as_read() -> None:
    events = _events(50, pad=100)
    one = len(events[0].body)  # every event is the same size but the last digits
    limit = OVERHEAD + 10 * (one + 1)
    found = [b for b in batches(events, 1000, limit) if isinstance(b, Batch)]
    assert all(len(b.body()) <= limit for b in found)
    assert all(len(b) >= 9 for b in found[:-1])  # full up to the limit, not one event each
    decoded = [e for b in found for e in orjson.loads(b.body())["events"]]
    assert decoded == [orjson.loads(e.body) for e in events]


def test_an_event_too_large_for_any_request_is_refused_in_its_place() -> None:
    small, big = SourceEvent(2, b'{"a":1}'), SourceEvent(3, b'{"a":"' + b"x" * 200 + b'"}')
    unreadable = Refused(4, None, "unreadable", (Problem("(line)", "no"),), text="no")
    found = list(batches([small, big, unreadable, small], 1000, 100))
    assert [type(f).__name__ for f in found] == ["Refused", "Refused", "Batch"]
    too_large = found[0]
    assert isinstance(too_large, Refused) and (too_large.line, too_large.error) == (3, "too_large")
    assert too_large.event == big.body
    assert found[1] is unreadable
    last = found[2]
    assert isinstance(last, Batch) and last.events == (small, small)


def test_batch_without_some_events() -> None:
    batch = Batch(tuple(_events(4)))
    rest = batch.without({0, 2})
    assert rest is not None and [e.line for e in rest.events] == [3, 5]
    assert batch.without(range(4)) is None


def _batch(n: int) -> Batch:
    return Batch(tuple(_events(n)))


def test_202_accepts_the_batch() -> None:
    assert judge(_batch(3), 202, {"accepted": 3}) == Accepted(3)


def test_422_refuses_the_events_it_names_and_posts_the_rest_again() -> None:
    batch = _batch(5)
    body = {
        "error": "invalid_events",
        "detail": "2 of 5 events are invalid",
        "errors": [
            {"index": 3, "field": "record_count", "reason": "must be >= 0"},
            {"index": 1, "field": "mode", "reason": "unknown"},
            {"index": 3, "field": "colour", "reason": "unknown field"},
        ],
    }
    verdict = judge(batch, 422, body)
    assert isinstance(verdict, Split) and verdict.batch_error is None
    assert [(r.line, r.problems) for r in verdict.refused] == [
        (3, (Problem("mode", "unknown"),)),
        (5, (Problem("record_count", "must be >= 0"), Problem("colour", "unknown field"))),
    ]
    assert all(r.status == 422 and r.error == "invalid_events" for r in verdict.refused)
    assert verdict.refused[0].event == batch.events[1].body
    assert verdict.rest is not None and [e.line for e in verdict.rest.events] == [2, 4, 6]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (413, {"error": "payload_too_large", "detail": "body exceeds 1048576 bytes"}),
        (400, {"error": "malformed_body", "detail": "empty batch"}),
        (403, {"error": "forbidden", "detail": "event 0 is for org_code 'D2'"}),
        (422, {"error": "invalid_events", "detail": "x", "errors": [{"index": None, "field": "", "reason": "r"}]}),
        (422, {"error": "invalid_events", "detail": "x", "errors": [{"index": 7, "field": "f", "reason": "r"}]}),
        (422, {"error": "invalid_request", "detail": "bad"}),
        (415, "not json at all"),
    ],
)
def test_a_refusal_of_the_whole_request_refuses_every_event_and_says_why(status: int, body: Any) -> None:
    batch = _batch(3)
    verdict = judge(batch, status, body)
    assert isinstance(verdict, Split) and verdict.rest is None
    assert verdict.batch_error is not None and verdict.batch_error.startswith(str(status))
    assert [r.line for r in verdict.refused] == [2, 3, 4]
    assert all(r.status == status and r.problems[0].field == "(request)" for r in verdict.refused)
    if isinstance(body, dict):
        assert body["detail"] in verdict.batch_error and all(r.error == body["error"] for r in verdict.refused)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_busy_answers_are_retried(status: int) -> None:
    assert isinstance(judge(_batch(1), status, {"error": "unavailable", "detail": "later"}), Retry)


def test_401_stops_and_other_5xx_give_up() -> None:
    assert isinstance(judge(_batch(1), 401, {"error": "unauthenticated", "detail": "unknown token"}), Stop)
    assert isinstance(judge(_batch(1), 500, {"error": "internal_error", "detail": "internal error"}), GiveUp)


def test_a_refusal_record_keeps_the_event_exactly_as_sent() -> None:
    event = b'{"event_id": "k1", "amount": 12.50}'
    record = Refused(7, 422, "invalid_events", (Problem("amount", "never a JSON number"),), event=event).record()
    assert record.endswith(b',"event":' + event + b"}\n")
    assert orjson.loads(record) == {
        "line": 7,
        "status": 422,
        "error": "invalid_events",
        "problems": [{"field": "amount", "reason": "never a JSON number"}],
        "event": {"event_id": "k1", "amount": 12.5},
    }
    unreadable = Refused(3, None, "unreadable", (Problem("(line)", "not JSON"),), text="{oops")
    assert orjson.loads(unreadable.record())["text"] == "{oops"


def test_exit_codes() -> None:
    accepted = Tally(read=5, accepted=5)
    refused = Tally(read=5, accepted=4, refused=1)
    unsent = Tally(read=5, accepted=4)
    unreadable = Tally(read=2, accepted=2, failure="f.csv: cannot be read on")
    assert exit_code([accepted, accepted], stopped=False) == 0
    assert exit_code([accepted, refused], stopped=False) == 1
    assert exit_code([refused, unreadable], stopped=False) == 2
    assert exit_code([refused, unsent, unreadable], stopped=False) == 3
    assert exit_code([accepted], stopped=True) == 3
    assert unsent.unsent == 1 and refused.unsent == 0


def test_retry_waits_what_retry_after_says_within_the_cap_else_doubles() -> None:
    assert retry_delay("3", 1, 60.0) == 3.0
    assert retry_delay("120", 1, 60.0) == 60.0
    assert retry_delay("-4", 1, 60.0) == 0.0
    assert retry_delay(None, 1, 60.0) == 0.5
    assert retry_delay("soon", 3, 60.0) == 2.0
    assert retry_delay(None, 20, 60.0) == 60.0
