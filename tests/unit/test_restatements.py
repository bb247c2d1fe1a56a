"""The pure parts of closed months: a report body's cells, the changed ones, and `as_of`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.reports.cutoff import CLOSED, Cutoff, CutoffKind, parse_as_of
from services.reports.restatements import cells, changed_cells

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_cells_are_named_by_institution_and_path_and_skip_labels() -> None:
    body = {
        "month": "2020-04",
        "rows": [
            {"org_code": "H1", "name": "丙医院", "online_12320": 3, "subtotal": 3},
            {"org_code": "H2", "name": None, "online_12320": 0, "subtotal": 0},
        ],
        "total": {"online_12320": 3, "subtotal": 3},
        "appointments_cumulative": None,
        "platforms": [{"platform_code": "jkn", "name": "健康南京", "appointments": 3}],
    }
    assert cells(body) == {
        ("H1", "rows.online_12320"): 3,
        ("H1", "rows.subtotal"): 3,
        ("H2", "rows.name"): None,
        ("H2", "rows.online_12320"): 0,
        ("H2", "rows.subtotal"): 0,
        (None, "total.online_12320"): 3,
        (None, "total.subtotal"): 3,
        (None, "appointments_cumulative"): None,
        (None, "platforms.jkn.appointments"): 3,
    }


def test_cells_of_a_list_report_with_a_total_row_and_decimal_strings() -> None:
    rows = [
        {"group": "hospital", "org_code": "H1", "name": "丙医院", "payments": 2, "payment_amount": "19.75", "r": 0.5},
        {"group": "total", "org_code": None, "name": "合计 Total", "payments": 2, "payment_amount": "19.75", "r": True},
    ]
    assert cells(rows) == {
        ("H1", "payments"): 2,
        ("H1", "payment_amount"): "19.75",
        ("H1", "r"): 0.5,
        (None, "total.payments"): 2,
        (None, "total.payment_amount"): "19.75",
    }


def test_nested_rows_take_the_innermost_institution() -> None:
    body = {"platforms": [{"platform": "ecg", "cases": 4, "top_uploaders": [{"org_code": "D1", "value": 4}]}]}
    assert cells(body) == {(None, "platforms.ecg.cases"): 4, ("D1", "platforms.ecg.top_uploaders.value"): 4}


def test_changed_cells_with_the_late_events_of_their_institution_or_all_of_them() -> None:
    frozen = [{"org_code": "D1", "records": 10}, {"org_code": "D2", "records": 3}, {"group": "total", "records": 13}]
    now = [
        {"org_code": "D1", "records": 17},
        {"org_code": "D2", "records": 3},
        {"org_code": "D3", "records": 1},
        {"group": "total", "records": 21},
    ]
    found = changed_cells("uploads-district", frozen, now, {"D1": 2, "D3": 1, "D2": 0})
    assert [(c.org_code, c.field, c.value_at_close, c.value_now, c.events_after_cutoff) for c in found] == [
        (None, "total.records", 13, 21, 3),
        ("D1", "records", 10, 17, 2),
        ("D3", "records", None, 1, 1),
    ]
    assert changed_cells("uploads-district", frozen, frozen, {"D1": 5}) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("closed", CLOSED),
        ("2020-05-01T00:00:00+08:00", datetime(2020, 4, 30, 16, tzinfo=UTC)),
        ("2020-05-01T00:00:00.5Z", datetime(2020, 5, 1, 0, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_as_of_takes_closed_or_a_time_with_offset(text: str, expected: object) -> None:
    assert parse_as_of(text) == expected


@pytest.mark.parametrize(
    "text", ["", "Closed", "live", "2020-05-01", "2020-05-01T00:00:00", "1700000000", "0000-01-01T00:00:00Z"]
)
def test_as_of_refuses_anything_else_saying_what_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="as_of must be 'closed' or an RFC 3339 time"):
        parse_as_of(text)


def test_cutoff_labels_name_the_time_in_the_platform_zone() -> None:
    at = datetime(2020, 5, 1, 2, 30, tzinfo=timezone(timedelta(hours=0)))
    assert "2020-05-01 10:30:00" in Cutoff(CutoffKind.CLOSED, at).label(SHANGHAI)
    assert "closed at" in Cutoff(CutoffKind.CLOSED, at).label(SHANGHAI)
    assert "as of 2020-05-01 10:30:00" in Cutoff(CutoffKind.AS_OF, at).label(SHANGHAI)
    assert "live" in Cutoff(CutoffKind.LIVE, at).label(SHANGHAI)
