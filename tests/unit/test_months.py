"""Months of events (platform zone), the archived-month test, keys, and a batch split into lanes."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from services.aggregator.store import Batch, DeadRecord
from services.storage.keys import event_key
from services.streams import STREAMS, ConsumedEvent
from services.streams.months import MONTH_ARCHIVED, ArchivedMonths, MonthOf, month_of
from tests.fixtures.events import SHANGHAI, upload

PLUS_8, MINUS_12 = timezone(timedelta(hours=8)), timezone(timedelta(hours=-12))
APRIL, MAY = date(2020, 4, 1), date(2020, 5, 1)
# One second either side of May 1, 00:00 in Shanghai, written with two offsets.
EDGES = [
    (datetime(2020, 4, 30, 23, 59, 59, tzinfo=PLUS_8), APRIL),
    (datetime(2020, 5, 1, 0, 0, 0, tzinfo=PLUS_8), MAY),
    (datetime(2020, 4, 30, 15, 59, 59, tzinfo=UTC), APRIL),
    (datetime(2020, 4, 30, 16, 0, 0, tzinfo=UTC), MAY),
    (datetime(2020, 4, 30, 3, 59, 59, tzinfo=MINUS_12), APRIL),
    (datetime(2020, 4, 30, 4, 0, 0, tzinfo=MINUS_12), MAY),
]


@pytest.mark.parametrize(("moment", "month"), EDGES)
def test_the_month_is_the_platform_zones_whatever_the_offset(moment: datetime, month: date) -> None:
    assert month_of(moment, SHANGHAI) == month
    assert MonthOf(SHANGHAI)(moment) == month


def test_month_of_many_events_keeps_up_across_month_ends_in_any_order() -> None:
    find = MonthOf(SHANGHAI)
    moments = [m for m, _ in EDGES] * 2 + [datetime(2019, 12, 31, 16, tzinfo=UTC), datetime(2020, 4, 5, tzinfo=UTC)]
    expected = [month for _, month in EDGES] * 2 + [date(2020, 1, 1), APRIL]
    assert [find(m) for m in moments] == expected


@pytest.mark.parametrize(("moment", "month"), EDGES)
def test_only_events_of_an_archived_month_are_refused(moment: datetime, month: date) -> None:
    archived = ArchivedMonths.of([APRIL, date(2019, 1, 1)], SHANGHAI)
    assert archived.archived(moment) is (month == APRIL)
    assert ArchivedMonths.of([MAY], SHANGHAI).archived(moment) is (month == MAY)
    assert not ArchivedMonths.of([], SHANGHAI).archived(moment)


def test_an_archived_month_is_a_problem_at_the_streams_moment_field() -> None:
    stream = STREAMS["upload"]
    events, _ = stream.validate(
        [upload(uploaded_at="2020-05-01T00:00:00+08:00"), upload(uploaded_at="2020-04-30T23:59:59+08:00")]
    )
    problems = ArchivedMonths.of([APRIL], SHANGHAI).problems(stream, events)
    assert [(p.index, p.field, p.reason) for p in problems] == [(1, "uploaded_at", MONTH_ARCHIVED)]


def test_every_stream_names_its_moment_field() -> None:
    for stream in STREAMS.values():
        event = stream.model.model_validate(stream.example)
        assert getattr(event, stream.moment_field) is stream.moment(event)


def test_keys_are_md5_of_stream_org_and_id_and_tell_them_apart() -> None:
    org, full = hashlib.md5(b"upload/D1").hexdigest(), hashlib.md5(b"upload/D1/e-1").hexdigest()
    assert event_key("upload", "D1", "e-1") == org[:12] + full[:20]
    # An institution's keys share their first 6 bytes (they sit together in each index).
    assert event_key("upload", "D1", "other")[:12] == org[:12] != event_key("upload", "D2", "e-1")[:12]
    keys = {event_key(*k) for k in [("upload", "D1", "a:b"), ("upload", "D1:a", "b"), ("kiosk", "D1", "a:b")]}
    assert len(keys) == 3


def _consumed(partition: int, offset: int) -> ConsumedEvent[Any]:
    event = STREAMS["upload"].model.model_validate(upload())
    return ConsumedEvent(event, datetime(2020, 4, 1, tzinfo=UTC), partition, offset)


def test_a_batch_splits_into_lanes_of_whole_partitions_in_order_balanced_by_events() -> None:
    sizes = {0: 50, 1: 10, 2: 30, 3: 25, 4: 0}
    events = [_consumed(p, o) for o in range(60) for p, n in sizes.items() if o < n]
    dead = [DeadRecord(3, "upload", "D1", "x", "invalid_event", "")]
    batch = Batch(events, {p: 100 + p for p in sizes}, dead)
    lanes = batch.split(2)
    assert len(lanes) == 2
    for lane in lanes:
        partitions = set(lane.next_offsets)
        assert {c.partition for c in lane.events} <= partitions
        for p in partitions:
            assert [c for c in lane.events if c.partition == p] == [c for c in events if c.partition == p]
            assert lane.next_offsets[p] == 100 + p
    assert sorted(p for lane in lanes for p in lane.next_offsets) == list(sizes)
    assert sorted(len(lane.events) for lane in lanes) == [55, 60]  # 50 + 10 and 30 + 25 (+ the empty one)
    assert [d for lane in lanes for d in lane.dead] == dead
    assert next(lane for lane in lanes if 3 in lane.next_offsets).dead == dead
    assert batch.split(1) == [batch]
