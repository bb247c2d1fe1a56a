"""How durable the topics must be: the replication settings, and the verdict on described topics.

The broker side (creating topics, reading their metadata and effective configuration) is tested
on a real three-broker cluster in tests/faults/test_cluster.py.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.collector.settings import CollectorSettings
from services.topics import TopicSpec, layout_problems

TOKEN = "x" * 32


@pytest.mark.parametrize(("replication", "expected"), [(1, 1), (2, 2), (3, 2), (5, 2)])
def test_min_insync_defaults_to_two_copies_where_there_are_two(replication: int, expected: int) -> None:
    settings = CollectorSettings(admin_token=TOKEN, events_replication_factor=replication)
    assert settings.min_insync_replicas == expected


def test_min_insync_setting_wins_over_the_default() -> None:
    settings = CollectorSettings(admin_token=TOKEN, events_replication_factor=3, events_min_insync_replicas=3)
    assert settings.min_insync_replicas == 3


def test_more_insync_copies_than_copies_is_refused() -> None:
    with pytest.raises(ValidationError, match="exceeds TELEMETRY_EVENTS_REPLICATION_FACTOR"):
        CollectorSettings(admin_token=TOKEN, events_replication_factor=1, events_min_insync_replicas=2)


SPECS = [TopicSpec("ev", 6, {}, 3, 2), TopicSpec("dl", 1, {}, 3, 2)]


def test_topics_as_durable_as_configured_or_more_have_no_problem() -> None:
    factors = {"ev": 3, "dl": 4}
    min_insync = {"ev": (2, "the topic's own setting"), "dl": (3, "the broker's default")}
    assert layout_problems(SPECS, factors, min_insync) == []


def test_each_shortfall_is_named_with_its_topic_value_and_source() -> None:
    factors = {"ev": 1, "dl": 3}
    min_insync = {"ev": (2, "the topic's own setting"), "dl": (1, "the broker's default")}
    assert layout_problems(SPECS, factors, min_insync) == [
        "topic ev has replication factor 1, below the configured 3 (TELEMETRY_EVENTS_REPLICATION_FACTOR)",
        "topic dl has min.insync.replicas=1 (from the broker's default), below the configured 2 "
        "(TELEMETRY_EVENTS_MIN_INSYNC_REPLICAS)",
    ]


def test_a_topic_that_could_not_be_described_is_a_problem_not_a_pass() -> None:
    problems = layout_problems(SPECS[:1], {}, {})
    assert len(problems) == 2
    assert "replication factor 0" in problems[0]
    assert "min.insync.replicas=0" in problems[1]
