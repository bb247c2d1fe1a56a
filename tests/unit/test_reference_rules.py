"""Reference data of revision 2 without a database: the schema and the model agree, every
inconsistency is named where it is, connections and balances mean what the contract says."""

from __future__ import annotations

import copy
import hashlib
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.contract.models import BalanceMetric, RemotePlatform
from services.storage.errors import ReferenceDataError
from services.storage.refdata import (
    Interval,
    OpeningBalance,
    balance_for,
    check_consistency,
    connected_at_month_end,
    connection_intervals,
    last_day_of_month,
)
from services.storage.reference import checksum, parse_reference, read_reference_folder
from tests.fixtures.events import REFERENCE
from tests.fixtures.reference import REVISION2_COLUMNS, V1_COLUMNS, revision2, with_row, write_folder
from tests.fixtures.streams import schema_validator

CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("a v1 body", copy.deepcopy(REFERENCE), True),
    ("every part of revision 2", revision2(), True),
    ("attributes null", with_row("institutions", 0, level=None, region=None, city=None, district=None), True),
    ("kind hotline", with_row("institutions", 1, kind="hotline"), True),
    ("an unknown kind", with_row("institutions", 1, kind="clinic"), False),
    ("an unknown level", with_row("institutions", 0, level="grade-3a"), False),
    ("an unknown region", with_row("institutions", 0, region="abroad"), False),
    ("an empty city", with_row("institutions", 0, city=""), False),
    ("an unknown platform", with_row("platform_connections", 0, platform="pathology"), False),
    ("a bad connected_on", with_row("platform_connections", 0, connected_on="2018-3-1"), False),
    ("an impossible date", with_row("platform_connections", 0, connected_on="2019-02-29"), False),
    ("no connected_on", with_row("platform_connections", 0, connected_on=...), False),
    (
        "a timestamp as disconnected_on",
        with_row("platform_connections", 1, disconnected_on="2019-06-01T00:00:00Z"),
        False,
    ),
    ("an unknown metric", with_row("opening_balances", 0, metric="calls"), False),
    ("as_of with a day", with_row("opening_balances", 0, as_of="2020-04-01"), False),
    ("as_of month 13", with_row("opening_balances", 0, as_of="2020-13"), False),
    ("a negative balance", with_row("opening_balances", 0, value=-1), False),
    ("a balance as a string", with_row("opening_balances", 0, value="18882599"), False),
    ("a balance written 1e3", with_row("opening_balances", 0, value=1e3), True),
    ("a bad no-upload date", with_row("no_upload_days", 0, date="April 5"), False),
    ("a reason too long", with_row("no_upload_days", 0, reason="x" * 201), False),
    ("an extra column", with_row("booking_platforms", 0, url="https://example.org"), False),
    ("an empty platform name", with_row("booking_platforms", 0, name=""), False),
    ("a booking platform code with a space", with_row("booking_platforms", 0, platform_code="we chat"), False),
]


@pytest.mark.parametrize(("what", "body", "valid"), CASES, ids=[c[0] for c in CASES])
def test_schema_and_model_agree(what: str, body: dict[str, Any], valid: bool) -> None:
    schema_ok = schema_validator("reference-set.schema.json").is_valid(body)
    try:
        parse_reference(body)
        model_ok = True
    except ReferenceDataError:
        model_ok = False
    assert (schema_ok, model_ok) == (valid, valid), what


def _problems(body: dict[str, Any]) -> list[str]:
    return check_consistency(parse_reference(body))


def test_a_consistent_set_has_no_problems() -> None:
    assert _problems(revision2()) == []


@pytest.mark.parametrize(
    ("what", "body", "expected"),
    [
        (
            "unknown institution",
            with_row("platform_connections", 0, org_code="H9"),
            "platform_connections[0] org_code: unknown institution H9",
        ),
        (
            "disconnected before connected",
            with_row("platform_connections", 3, disconnected_on="2018-12-31"),
            "platform_connections[3] disconnected_on: 2018-12-31 is not after connected_on 2019-01-01",
        ),
        (
            "disconnected the day it connected",
            with_row("platform_connections", 3, disconnected_on="2019-01-01"),
            "platform_connections[3] disconnected_on: 2019-01-01 is not after connected_on 2019-01-01",
        ),
        (
            "the same connection twice",
            revision2(
                platform_connections=[
                    {"platform": "ecg", "org_code": "H1", "connected_on": "2018-03-01"},
                    {
                        "platform": "ecg",
                        "org_code": "H1",
                        "connected_on": "2018-03-01",
                        "disconnected_on": "2019-01-01",
                    },
                ]
            ),
            "platform_connections[1]: duplicate (platform, org_code, connected_on) (ecg, H1, 2018-03-01)"
            " (first at platform_connections[0])",
        ),
        (
            "re-opened while still open",
            revision2(
                platform_connections=[
                    {"platform": "lab", "org_code": "H1", "connected_on": "2018-03-01"},
                    {"platform": "lab", "org_code": "H1", "connected_on": "2020-01-01"},
                ]
            ),
            "platform_connections[1]: H1 is connected to lab from 2020-01-01 while still connected since 2018-03-01",
        ),
        (
            "overlapping intervals",
            revision2(
                platform_connections=[
                    {
                        "platform": "lab",
                        "org_code": "H1",
                        "connected_on": "2019-06-01",
                        "disconnected_on": "2019-09-01",
                    },
                    {
                        "platform": "lab",
                        "org_code": "H1",
                        "connected_on": "2019-01-01",
                        "disconnected_on": "2019-07-01",
                    },
                ]
            ),
            "platform_connections[0]: H1 is connected to lab from 2019-06-01 while still connected since 2019-01-01",
        ),
        (
            "a duplicate booking platform code",
            revision2(booking_platforms=[{"platform_code": "a", "name": "甲"}, {"platform_code": "a", "name": "乙"}]),
            "booking_platforms[1]: duplicate platform_code a (first at booking_platforms[0])",
        ),
        (
            "two booking platforms of one name",
            revision2(booking_platforms=[{"platform_code": "a", "name": "甲"}, {"platform_code": "b", "name": "甲"}]),
            "booking_platforms[1]: duplicate name 甲 (first at booking_platforms[0])",
        ),
        (
            "two balances of one metric and month",
            revision2(
                opening_balances=[
                    {"metric": "appointments", "as_of": "2020-04", "value": 1},
                    {"metric": "appointments", "as_of": "2020-04", "value": 2},
                ]
            ),
            "opening_balances[1]: duplicate (metric, as_of) (appointments, 2020-04) (first at opening_balances[0])",
        ),
        (
            "a no-upload day twice",
            revision2(no_upload_days=[{"date": "2020-04-05"}, {"date": "2020-04-05", "reason": "again"}]),
            "no_upload_days[1]: duplicate date 2020-04-05 (first at no_upload_days[0])",
        ),
        (
            "a NUL in a city",
            with_row("institutions", 0, city="南京\x00市"),
            "institutions[0] city: must not contain the NUL character (U+0000)",
        ),
        (
            "a NUL in a reason",
            with_row("no_upload_days", 0, reason="\x00"),
            "no_upload_days[0] reason: must not contain the NUL character (U+0000)",
        ),
    ],
)
def test_each_inconsistency_is_named_where_it_is(what: str, body: dict[str, Any], expected: str) -> None:
    problems = _problems(body)
    assert any(p.startswith(expected) for p in problems), (what, problems)


def test_adjacent_and_reopened_connections_are_allowed() -> None:
    body = revision2(
        platform_connections=[
            {"platform": "lab", "org_code": "H1", "connected_on": "2018-01-01", "disconnected_on": "2019-01-01"},
            {"platform": "lab", "org_code": "H1", "connected_on": "2019-01-01", "disconnected_on": "2019-05-01"},
            {"platform": "lab", "org_code": "H1", "connected_on": "2020-02-01"},
            {"platform": "ecg", "org_code": "H1", "connected_on": "2018-01-01"},
        ]
    )
    assert _problems(body) == []


def test_a_v1_folder_reads_as_a_set_with_empty_revision2_parts(tmp_path: Path) -> None:
    write_folder(tmp_path / "v1", REFERENCE, V1_COLUMNS)
    ref = read_reference_folder(tmp_path / "v1")
    assert [i.org_code for i in ref.institutions] == ["D1", "D2", "H1"]
    assert all(i.level is None and i.region is None for i in ref.institutions)
    assert (ref.platform_connections, ref.booking_platforms, ref.opening_balances, ref.no_upload_days) == (
        [],
        [],
        [],
        [],
    )


def test_a_revision2_folder_reads_empty_cells_as_unknown(tmp_path: Path) -> None:
    write_folder(tmp_path / "r2", revision2(), REVISION2_COLUMNS)
    ref = read_reference_folder(tmp_path / "r2")
    assert ref == parse_reference(revision2())
    hotline = next(i for i in ref.institutions if i.org_code == "L1")
    assert (hotline.level, hotline.region, hotline.city, hotline.district) == (None, None, "南京市", None)
    assert ref.platform_connections[0].disconnected_on is None
    assert ref.no_upload_days[1].reason == ""


def test_folder_problems_name_file_line_and_column(tmp_path: Path) -> None:
    body = revision2()
    body["platform_connections"][1]["disconnected_on"] = "2018-12-31"
    body["platform_connections"][2]["connected_on"] = "2020-04-31"
    body["opening_balances"][1]["metric"] = "calls"
    write_folder(tmp_path / "bad", body, REVISION2_COLUMNS)
    with pytest.raises(ReferenceDataError) as refused:
        read_reference_folder(tmp_path / "bad")
    problems = refused.value.problems
    # Line 1 is the header, so the row of index 2 is on line 4.
    assert any(p.startswith("platform_connections.csv line 4 connected_on: ") for p in problems), problems
    assert any(p.startswith("opening_balances.csv line 3 metric: ") for p in problems), problems
    body = revision2()
    body["platform_connections"][1]["disconnected_on"] = "2018-12-31"
    write_folder(tmp_path / "inconsistent", body, REVISION2_COLUMNS)
    with pytest.raises(ReferenceDataError) as refused:
        read_reference_folder(tmp_path / "inconsistent")
    assert refused.value.problems == [
        "platform_connections.csv line 3 disconnected_on: 2018-12-31 is not after connected_on 2019-01-01"
    ]


def test_a_folder_without_a_v1_file_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path / "partial", REFERENCE, {k: v for k, v in V1_COLUMNS.items() if k != "kiosks"})
    with pytest.raises(ReferenceDataError, match=r"kiosks\.csv: missing"):
        read_reference_folder(tmp_path / "partial")


def test_connected_at_the_end_of_a_month_follows_the_contract() -> None:
    intervals = connection_intervals(parse_reference(revision2()))
    ecg, lab = intervals[RemotePlatform.ECG], intervals[RemotePlatform.LAB]
    # O1: connected in 2019 for five months, and again from 10 April 2020.
    assert connected_at_month_end(ecg, date(2019, 5, 1)) == {"H1", "O1"}
    assert connected_at_month_end(ecg, date(2019, 6, 1)) == {"H1"}
    assert connected_at_month_end(ecg, date(2020, 3, 1)) == {"H1"}
    assert connected_at_month_end(ecg, date(2020, 4, 15)) == {"H1", "O1"}
    # H1 left the lab platform on 20 April: connected that month, but not at its end.
    assert connected_at_month_end(lab, date(2020, 3, 1)) == {"H1"}
    assert connected_at_month_end(lab, date(2020, 4, 1)) == frozenset()
    span = Interval(date(2019, 1, 1), date(2020, 4, 20))
    assert (span.covers(date(2019, 1, 1)), span.covers(date(2020, 4, 19)), span.covers(date(2020, 4, 20))) == (
        True,
        True,
        False,
    )
    assert [last_day_of_month(date(2020, m, 9)).day for m in (2, 4, 12)] == [29, 30, 31]


def test_the_latest_balance_at_or_before_the_month_applies() -> None:
    balances = (OpeningBalance(date(2020, 1, 1), 90), OpeningBalance(date(2020, 4, 1), 105))
    assert balance_for(balances, date(2019, 12, 1)) is None
    assert balance_for(balances, date(2020, 3, 15)) == balances[0]
    assert balance_for(balances, date(2020, 4, 30)) == balances[1]
    assert balance_for(balances, date(2021, 1, 1)) == balances[1]
    ref = parse_reference(revision2())
    assert {b.metric for b in ref.opening_balances} == set(BalanceMetric)


def test_a_v1_set_digests_as_before_revision2_and_any_revision2_part_changes_it() -> None:
    v1 = copy.deepcopy(REFERENCE)
    # The digest of contract v1, written out: loading an unchanged v1 set again after the
    # upgrade must find it already in force.
    canonical = {
        "institutions": sorted((i["org_code"], i["name"], i["kind"]) for i in v1["institutions"]),
        "tables": sorted((t["table_code"], t["name"], t["category"], t["required_for"]) for t in v1["tables"]),
        "declarations": sorted((d["org_code"], d["table_code"]) for d in v1["declarations"]),
        "kiosks": sorted((k["kiosk_id"], k["org_code"]) for k in v1["kiosks"]),
    }
    v1_digest = hashlib.sha256(orjson.dumps(canonical)).hexdigest()
    assert checksum(parse_reference(v1)) == v1_digest
    explicit = {**v1, "platform_connections": [], "booking_platforms": [], "opening_balances": [], "no_upload_days": []}
    assert checksum(parse_reference(explicit)) == v1_digest
    full = checksum(parse_reference(revision2()))
    for section, index, change in [
        ("institutions", 2, {"district": "乙区"}),
        ("platform_connections", 3, {"disconnected_on": "2020-04-21"}),
        ("booking_platforms", 0, {"name": "12320微信"}),
        ("opening_balances", 0, {"value": 18882598}),
        ("no_upload_days", 1, {"reason": "劳动节"}),
    ]:
        assert checksum(parse_reference(with_row(section, index, **change))) != full, section
    reordered = revision2()
    reordered["platform_connections"].reverse()
    assert checksum(parse_reference(reordered)) == full
