"""The benchmarks' own logic that decides what is measured: every stream, the limits, the ratios."""

from __future__ import annotations

import orjson
import pytest

from bench import limits, memory, run, workload
from bench.benchmarks import Figure, Result
from services.streams import STREAMS, Stream

# As ProducerPerformance of kafka-tools 3.9.2 printed it against the local broker.
PRODUCER_PERFORMANCE_LINE = (
    "1000000 records sent, 272034.820457 records/sec (59.67 MB/sec), 202.41 ms avg latency, "
    "513.00 ms max latency, 190 ms 50th, 396 ms 95th, 490 ms 99th, 506 ms 99.9th."
)


@pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))
def test_events_made_from_a_streams_example_are_valid_and_distinct(stream: Stream[object]) -> None:
    events = workload.from_example(stream, 50)
    _, problems = stream.validate(events)
    assert problems == []
    assert len({e["event_id"] for e in events}) == 50


@pytest.mark.parametrize("stream", list(STREAMS.values()), ids=list(STREAMS))
def test_batch_bodies_of_a_stream_with_few_events_are_filled_with_new_ids(stream: Stream[object]) -> None:
    few = workload.from_example(stream, 7)
    (request,) = workload.batch_requests(stream.name, few, size=20)
    events = orjson.loads(request.body)["events"]
    assert request.path == stream.path
    assert len(events) == 20
    assert len({e["event_id"] for e in events}) == 20
    assert stream.validate(events)[1] == []


def test_memory_load_renames_every_event_on_every_pass() -> None:
    stream = next(iter(STREAMS.values()))
    bodies = workload.batch_requests(stream.name, workload.from_example(stream, 6), size=3)
    passes = memory.renamed_batches(bodies)
    seen: set[str] = set()
    for _ in range(3 * len(bodies)):  # three passes over the two bodies
        events = orjson.loads(next(passes).body)["events"]
        assert stream.validate(events)[1] == []
        seen.update(e["event_id"] for e in events)
    assert len(seen) == 3 * 6


def test_rss_trend_compares_the_first_and_the_last_minute() -> None:
    samples = [(0.0, 100.0), (30.0, 110.0), (60.0, 90.0), (90.0, 300.0), (150.0, 120.0), (180.0, 124.0)]
    assert memory._minute_mean(samples, first=True) == pytest.approx(100.0)  # 100, 110, 90
    assert memory._minute_mean(samples, first=False) == pytest.approx(122.0)  # 120, 124


def test_rss_slope_is_mib_per_minute() -> None:
    # 1 MiB more every 30 s is 2 MiB per minute.
    assert memory._slope_mb_per_min([(0.0, 100.0), (30.0, 101.0), (60.0, 102.0)]) == pytest.approx(2.0)
    assert memory._slope_mb_per_min([(0.0, 100.0)]) == 0.0


def test_producer_performance_summary_line_is_read() -> None:
    found = limits._FINAL.search(PRODUCER_PERFORMANCE_LINE)
    assert found is not None
    assert float(found.group(2)) == pytest.approx(272034.820457)
    assert int(found.group(8)) == 490  # p99 ms


def test_ratios_divide_each_figure_by_its_limit_of_the_same_run() -> None:
    results = [
        Result(
            "limits", [Figure(limits.FIG_PRODUCER, 200_000, "records/s"), Figure(limits.FIG_DEDUPE, 100_000, "rows/s")]
        ),
        Result(
            "collector-batch",
            [
                Figure("collector-batch /v1/uploads", 150_000, "events/s"),
                Figure("collector-batch /v1/x", 0, "events/s"),
            ],
        ),
        Result("aggregator", [Figure("aggregator apply (steady)", 45_000, "events/s")]),
    ]
    got = {f.name: (f.value, f.met) for f in limits.ratios(results)}
    assert got == {
        "ratio: collector-batch /v1/uploads ÷ Kafka ProducerPerformance": (0.75, True),
        "ratio: aggregator apply (steady) ÷ COPY to a stage + INSERT ON CONFLICT": (0.45, True),
    }


def test_a_ratio_also_compares_per_core_figures_when_both_have_one() -> None:
    results = [
        Result("limits", [Figure(limits.FIG_PRODUCER, 100_000, "records/s", per_core=250_000)]),
        Result("collector-batch", [Figure("collector-batch /v1/uploads", 50_000, "events/s", per_core=200_000)]),
    ]
    (ratio,) = limits.ratios(results)
    assert ratio.value == pytest.approx(0.5)
    assert ratio.note.endswith("per core incl. the broker 200,000 ÷ 250,000 = 0.80")


def test_no_ratio_without_the_limit_in_the_same_run() -> None:
    assert limits.ratios([Result("collector-batch", [Figure("collector-batch /v1/uploads", 1.0, "events/s")])]) == []


def test_all_runs_the_limits_first_and_not_the_long_memory_run() -> None:
    for argv in ([], ["all"]):
        names, _ = run.parse_args(argv)
        assert names[0] == "limits"
        assert "memory" not in names
        assert "collector-batch" in names
    assert run.parse_args(["collector-single", "limits", "collector-single"])[0] == ["collector-single", "limits"]
    with pytest.raises(SystemExit):
        run.parse_args(["nope"])
