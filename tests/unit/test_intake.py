"""Where reading resumes when a batch read after a failed one is dropped (services.aggregator.intake)."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from services.aggregator.intake import earliest_offsets

P0, P1, P2 = (TopicPartition("t", p) for p in range(3))


def _records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in offsets]


def test_a_partition_in_both_polls_resumes_at_the_failed_batch() -> None:
    failed = {P0: _records(P0, 10, 11, 12), P1: _records(P1, 5)}
    # Read after it: P0 continued past the failed batch; P2 only in the later poll.
    later = {P0: _records(P0, 13, 14), P2: _records(P2, 40, 41)}
    assert earliest_offsets(failed, later) == {P0: 10, P1: 5, P2: 40}


def test_a_later_poll_that_re_read_from_the_rewind_does_not_move_it_forward() -> None:
    failed = {P0: _records(P0, 10, 11)}
    re_read = {P0: _records(P0, 10, 11, 12)}
    assert earliest_offsets(failed, re_read) == {P0: 10}
    assert earliest_offsets(re_read, failed) == {P0: 10}


def test_a_later_poll_that_starts_earlier_wins() -> None:
    # After a rebalance the later poll may start at the stored offset, before the failed batch.
    assert earliest_offsets({P1: _records(P1, 50, 51)}, {P1: _records(P1, 30, 31)}) == {P1: 30}


def test_empty_record_lists_are_ignored() -> None:
    assert earliest_offsets({P0: []}, {}) == {}
