"""A decoded poll waiting to be applied, and where to go back to when it must be dropped."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import ConsumerRecord, TopicPartition

from services.aggregator.decoding import DeadLetter
from services.aggregator.store import Batch


@dataclass
class Intake:
    """The records taken from one poll, their valid events as a batch, and their dead letters."""

    records: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    batch: Batch
    dead: list[DeadLetter]


def earliest_offsets(
    *polls: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
) -> dict[TopicPartition, int]:
    """Per partition, the lowest first offset among the polls (where reading must resume)."""
    earliest: dict[TopicPartition, int] = {}
    for poll in polls:
        for tp, records in poll.items():
            if records:
                first = records[0].offset
                earliest[tp] = min(first, earliest.get(tp, first))
    return earliest
