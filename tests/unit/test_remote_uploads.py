"""Remote-platform uploads without a broker or database: the contract's 422s, the month's figures, the problems.

The figures are checked against `tests.fixtures.remote.expected_report`, a plain fold of the
contract's definitions over the same reference rows and events; the platform's side folds the
events with the stream's own fold and computes the report from those rows and the reference
snapshot, as the aggregator and the report route do (tests/integration/test_remote_uploads.py
goes through HTTP, Kafka and PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.bulletin.remote_platforms import remote_section
from services.collector.ingest import validate_events
from services.contract.models import RemotePlatform
from services.quality.problems import month_span, with_problems
from services.quality.remote import remote_problems
from services.quality.uploads import find_problems
from services.streams import STREAMS, ConsumedEvent
from services.streams.remote_uploads.report import (
    RemoteMonth,
    remote_month_from_deltas,
    remote_report,
    unconnected_uploads,
)
from services.streams.rollups import Deltas
from services.web.errors import InvalidEventsError
from tests.fixtures.remote import (
    expected_report,
    expected_unconnected,
    once,
    remote_reference,
    remote_upload,
    remote_uploads,
    snapshot_of,
)
from tests.fixtures.streams import schema_validator
from tests.unit.bulletin.factories import bulletin_data

STREAM = STREAMS["remote_upload"]
SHANGHAI = ZoneInfo("Asia/Shanghai")
RECEIVED = datetime(2020, 5, 2, tzinfo=UTC)


def _problems(events: list[dict[str, Any]]) -> list[tuple[int | None, str]]:
    with pytest.raises(InvalidEventsError) as refused:
        validate_events(STREAM, events, snapshot_of(remote_reference()))
    return [(p.index, p.field) for p in refused.value.problems]


def _event(platform: str = "lab", **counts: Any) -> dict[str, Any]:
    return remote_upload("H1", platform, "2020-04-10T10:00:00+08:00", "r-1", **counts)


# --- the contract: 422 per index, every problem -------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "counts", "fields"),
    [
        ("lab", {"reports": 1, "images": 3}, ["counts.images"]),  # a count of another platform
        ("consultation", {"cases": 1}, ["counts.cases"]),
        ("ecg", {"reports": 1, "specimens": 2, "cases": 1}, ["counts.reports", "counts.specimens"]),
        ("imaging", {"x-rays": 1}, ["counts.x-rays"]),  # a count of no platform
        ("lab", {}, ["counts"]),  # at least one count
        ("lab", {"reports": -1}, ["counts.reports"]),
        ("lab", {"reports": 10_000_001}, ["counts.reports"]),
        ("lab", {"reports": 1.5}, ["counts.reports"]),
        ("lab", {"reports": "3"}, ["counts.reports"]),
        ("lab", {"reports": True}, ["counts.reports"]),
        ("lab", [1], ["counts"]),
        ("radiology", {"reports": 1}, ["platform"]),
        ("radiology", {"reports": 1, "scans": 1}, ["platform", "counts.scans"]),
        # A key the platform lacks and a bad value of another key: both are named.
        ("ecg", {"cases": -1, "images": 2}, ["counts.images", "counts.cases"]),
    ],
)
def test_counts_must_be_the_platforms_own_keys_with_counts(platform: str, counts: Any, fields: list[str]) -> None:
    good = _event(reports=1)
    bad = {**_event(platform), "event_id": "r-2", "counts": counts}
    assert _problems([good, bad]) == [(1, field) for field in fields]
    # The JSON Schema refuses what the model refuses.
    assert not schema_validator(STREAM.schema).is_valid(bad)


@pytest.mark.parametrize(
    ("platform", "counts"),
    [
        ("consultation", {"consultations": 1}),
        ("ecg", {"cases": 1}),
        ("ecg", {"consultations": 2}),
        ("ecg", {"cases": 1, "consultations": 0}),
        ("lab", {"reports": 0, "specimens": 10_000_000}),
        ("imaging", {"reports": 1, "images": 130}),
        ("imaging", {"images": 1.0}),  # a JSON number without a fraction is an integer
    ],
)
def test_every_key_a_platform_has_is_accepted(platform: str, counts: dict[str, Any]) -> None:
    event = {**_event(platform), "counts": counts}
    assert validate_events(STREAM, [event], snapshot_of(remote_reference())) == 1
    assert schema_validator(STREAM.schema).is_valid(event)


def test_an_unknown_institution_is_refused_and_an_unconnected_one_accepted() -> None:
    ref = snapshot_of(remote_reference())
    # C1 is connected to no platform in April (its ECG connection starts in May): accepted.
    assert not any(ref.is_connected(p, "C1", date(2020, 4, 28)) for p in RemotePlatform)
    assert validate_events(STREAM, [remote_upload("C1", "ecg", "2020-04-28T10:00:00+08:00", "x", cases=1)], ref) == 1
    stranger = remote_upload("Z9", "ecg", "2020-04-28T10:00:00+08:00", "x", cases=1)
    assert _problems([_event(reports=1), stranger]) == [(1, "org_code")]


def test_the_reason_names_the_platforms_own_keys() -> None:
    with pytest.raises(InvalidEventsError) as refused:
        validate_events(STREAM, [_event(reports=1, images=2)], snapshot_of(remote_reference()))
    [problem] = refused.value.problems
    assert "lab" in problem.reason and "reports, specimens" in problem.reason


# --- the month's figures --------------------------------------------------------------------


def _month(body: dict[str, Any], events: list[dict[str, Any]], month: date, org: str | None) -> RemoteMonth:
    """What the report reads, built in memory: the stream's fold of the new (deduplicated) events."""
    deltas = Deltas()
    consumed = [ConsumedEvent(e, RECEIVED, 0, n) for n, e in enumerate(STREAM.validate(once(events))[0])]
    STREAM.fold(consumed, SHANGHAI, deltas)
    names = {i["org_code"]: i["name"] for i in body["institutions"]}
    return remote_month_from_deltas(deltas, month, snapshot_of(body), names, org)


def test_the_months_figures_follow_the_contracts_definitions() -> None:
    body, events = remote_reference(), remote_uploads()
    got = remote_report(_month(body, events, date(2020, 4, 1), None)).model_dump(mode="json")
    assert got == expected_report(body, events, "2020-04")
    # The traps are in the stream, or the comparison proves little.
    ecg = got["platforms"][1]
    assert ecg["connected"] == 5  # H1, C3 (from April 30), M1, A1 (re-connected), O1; not C1 nor C2
    assert [t["org_code"] for t in ecg["top_uploaders"]] == ["O1", "H1", "M1"]  # H1 and M1 tie at 43
    assert got["platforms"][0]["consultations_cumulative"] == 104 + 4


def test_an_institution_sees_only_what_its_own_rows_give() -> None:
    body, events = remote_reference(), remote_uploads()
    for org in ("H1", "C1", "A1", "D2"):
        got = remote_report(_month(body, events, date(2020, 4, 1), org)).model_dump(mode="json")
        assert got == expected_report(body, events, "2020-04", org), org
        for platform in got["platforms"]:
            assert {t["org_code"] for t in platform["top_uploaders"]} <= {org}
    h1 = remote_report(_month(body, events, date(2020, 4, 1), "H1"))
    # Its own consultations since the balance's month, without the city's balance.
    assert h1.platforms[0].consultations_cumulative == 2


def test_uploads_on_days_not_connected_are_counted_and_found() -> None:
    body, events = remote_reference(), remote_uploads()
    data = _month(body, events, date(2020, 4, 1), None)
    found = {(u.org_code, u.platform.value): u.uploads for u in unconnected_uploads(data)}
    assert found == expected_unconnected(body, events, "2020-04")
    assert set(found) >= {("C1", "ecg"), ("C2", "ecg"), ("A1", "ecg"), ("H1", "lab"), ("H1", "imaging")}
    # Counted all the same: H1's imaging reports are in the month's sums.
    assert remote_report(data).platforms[3].reports == 10 + 0 + 4


def test_the_problem_list_names_them_with_their_days_for_any_kind_of_institution() -> None:
    body, events = remote_reference(), remote_uploads()
    data = _month(body, events, date(2020, 4, 1), None)
    span = month_span(date(2020, 4, 1), datetime(2020, 5, 19, tzinfo=SHANGHAI), SHANGHAI)
    page = bulletin_data()
    found = find_problems([*page.districts, *page.hospitals], page.kiosks, page.details, {}, span, 0.95)
    merged = with_problems(found, remote_problems(data))
    listed = {
        (inst.org_code, p.figure.split("：")[0]): p.items
        for inst in merged
        for p in inst.problems
        if p.check == "unconnected_remote_upload"
    }
    want = {org for org, _ in expected_unconnected(body, events, "2020-04")}
    assert {org for org, _ in listed} == want
    assert listed[("C1", "远程心电监测诊断平台")] == ("4月28日",)
    assert listed[("H1", "远程临检诊断平台")] == ("4月20日",)
    # H1 is in the upload report: its remote problem joins its other problems, it is not listed twice.
    assert [inst.org_code for inst in merged].count("H1") == 1
    assert [inst.org_code for inst in merged][: len(found)] == [inst.org_code for inst in found]


def test_the_bulletin_paragraphs_carry_the_reports_figures() -> None:
    body, events = remote_reference(), remote_uploads()
    data = _month(body, events, date(2020, 4, 1), None)
    want = expected_report(body, events, "2020-04")
    section = remote_section(data)
    ecg = next(p for p in section.paragraphs if p.platform is RemotePlatform.ECG)
    figures = {piece.figure: piece.text for piece in ecg.pieces if piece.figure}
    assert figures["connected"] == str(want["platforms"][1]["connected"])
    assert figures["cases"] == str(want["platforms"][1]["cases"])
    # The connected cities by name: most connected institutions first, then the earliest connection.
    assert "联通南京市、拉萨市和马鞍山市3个城市" in ecg.text  # 拉萨 (A1, 2018) before 马鞍山 (M1, 2019)
    assert "4月数据上传量排名前三的分别是某急救中心44份，丙医院43份，马鞍山某医院43份。" in ecg.text
    scoped = remote_section(_month(body, events, date(2020, 4, 1), "C1"))
    assert scoped.scoped and [row.connected for row in scoped.own] == [False] * 4
    # Fewer than three uploaders read as such (C1's own figures: 7 ECG cases, nothing else).
    texts = {p.platform: p.text for p in scoped.paragraphs}
    assert texts[RemotePlatform.ECG].endswith("4月仅甲区社区卫生服务中心上传数据，共7份。")
    assert texts[RemotePlatform.LAB].endswith("4月无数据上传。")
