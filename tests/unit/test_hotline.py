"""The hotline stream's own rules and figures: categories per kind, 12320 centres only, the month's
edges in any offset, the report's rows, order and total (pure; the database side is
tests/integration/test_hotline.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.contract.models import InstitutionKind
from services.storage.reference import InstitutionInfo, ReferenceSnapshot
from services.streams import STREAMS, ConsumedEvent
from services.streams.hotline.report import (
    Centre,
    appointment_calls_by_city,
    counts_from_deltas,
    csv_rows,
    hotline_report,
)
from services.streams.rollups import Deltas
from tests.fixtures.hotline import CALL_CATEGORIES, WORK_ORDER_CATEGORIES, contact
from tests.fixtures.streams import schema_validator

STREAM = STREAMS["hotline_contact"]
SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = date(2020, 4, 1)


def _problems(doc: dict[str, Any]) -> list[tuple[int | None, str]]:
    return [(p.index, p.field) for p in STREAM.validate([doc])[1]]


# --- the contract -------------------------------------------------------------------------


@pytest.mark.parametrize("category", CALL_CATEGORIES)
def test_a_call_takes_each_call_category_and_no_work_order_one(category: str) -> None:
    assert _problems(contact(kind="call", category=category)) == []
    assert _problems(contact(kind="work_order", category=category)) == [(0, "category")]


@pytest.mark.parametrize("category", WORK_ORDER_CATEGORIES)
def test_a_work_order_takes_each_12345_category_and_no_call_one(category: str) -> None:
    assert _problems(contact(kind="work_order", category=category)) == []
    assert _problems(contact(kind="call", category=category)) == [(0, "category")]


def test_a_category_of_the_other_kind_is_named_with_what_the_kind_takes() -> None:
    [problem] = STREAM.validate([contact(), contact(kind="work_order", category="appointment")])[1]
    assert (problem.index, problem.field) == (1, "category")
    assert "'appointment' is not a category of kind 'work_order'" in problem.reason
    assert "city_12345, province_12345" in problem.reason


def test_an_invalid_kind_is_its_own_problem_not_the_categorys() -> None:
    assert _problems(contact(kind="fax", category="city_12345")) == [(0, "kind")]
    assert _problems(contact(kind="call", category="chat")) == [(0, "category")]
    assert _problems(contact(occurred_at="2020-04-10 10:00:00")) == [(0, "occurred_at")]


CROSS_CASES = [
    *({"kind": "call", "category": c} for c in (*CALL_CATEGORIES, *WORK_ORDER_CATEGORIES)),
    *({"kind": "work_order", "category": c} for c in (*CALL_CATEGORIES, *WORK_ORDER_CATEGORIES)),
    {"kind": "fax", "category": "complaint"},
    {"kind": "call", "category": "fax"},
]


@pytest.mark.parametrize("pair", CROSS_CASES, ids=lambda p: f"{p['kind']}-{p['category']}")
def test_the_schema_and_the_model_agree_on_every_kind_and_category(pair: dict[str, str]) -> None:
    doc = contact(**pair)
    assert schema_validator("hotline-contact.schema.json").is_valid(doc) == (not _problems(doc))


def test_only_a_12320_centre_may_send_contacts() -> None:
    ref = ReferenceSnapshot(
        1,
        frozenset({"L1", "H1", "O1"}),
        frozenset(),
        {},
        institution_info={
            "L1": InstitutionInfo(InstitutionKind.HOTLINE),
            "H1": InstitutionInfo(InstitutionKind.HOSPITAL),
            "O1": InstitutionInfo(InstitutionKind.OTHER),
        },
    )
    assert STREAM.reference_problems(STREAM.model.model_validate(contact(org_code="L1")), ref) == ()
    for org, kind in (("H1", "hospital"), ("O1", "other")):
        [(field, reason)] = STREAM.reference_problems(STREAM.model.model_validate(contact(org_code=org)), ref)
        assert field == "org_code" and org in reason and f"kind is {kind}" in reason


# --- the figures --------------------------------------------------------------------------

# (occurred_at, month it counts in): the month's edges written in +08:00 and in other offsets.
EDGES = [
    ("2020-03-31T23:59:59+08:00", "2020-03"),
    ("2020-03-31T15:59:59Z", "2020-03"),
    ("2020-04-01T00:00:00+08:00", "2020-04"),
    ("2020-03-31T16:00:00Z", "2020-04"),
    ("2020-03-31T12:00:00-04:00", "2020-04"),
    ("2020-04-30T23:59:59+08:00", "2020-04"),
    ("2020-04-30T15:59:59Z", "2020-04"),
    ("2020-04-30T11:59:59-04:00", "2020-04"),
    ("2020-05-01T00:00:00+08:00", "2020-05"),
    ("2020-04-30T16:00:00Z", "2020-05"),
    ("2020-04-30T12:00:00-04:00", "2020-05"),
]


def _report(events: list[dict[str, Any]], centres: list[Centre], month: date = APRIL) -> Any:
    deltas = Deltas()
    consumed = [
        ConsumedEvent(STREAM.model.model_validate(e), datetime(2020, 5, 1, tzinfo=UTC), 0, n)
        for n, e in enumerate(events)
    ]
    STREAM.fold(consumed, SHANGHAI, deltas)
    return hotline_report(centres, counts_from_deltas(deltas, month))


CENTRES = [Centre("L1", "南京12320", "南京市"), Centre("L2", "苏州12320", "苏州市"), Centre("L3", "无锡12320", None)]


def test_each_edge_counts_in_the_month_of_its_shanghai_day() -> None:
    events = [contact(event_id=f"e{n}", occurred_at=when) for n, (when, _) in enumerate(EDGES)]
    for month, first in (("2020-03", date(2020, 3, 1)), ("2020-04", APRIL), ("2020-05", date(2020, 5, 1))):
        want = sum(1 for _, m in EDGES if m == month)
        row = next(r for r in _report(events, CENTRES, first).rows if r.org_code == "L1")
        assert (month, row.calls, row.consultation) == (month, want, want)


def test_rows_are_every_centre_by_calls_with_the_total_of_the_rows() -> None:
    events = [
        *(contact(org_code="L2", category="complaint") for _ in range(3)),
        *(contact(org_code="L1", category=c) for c in ("appointment", "appointment", "voice_qa")),
        contact(org_code="L1", kind="work_order", category="city_12345"),
        *(contact(org_code="L1", kind="work_order", category="province_12345") for _ in range(2)),
        contact(org_code="L2", occurred_at="2020-05-01T00:00:00+08:00"),  # May
        contact(org_code="X9"),  # not a centre of the reference (any more): not shown
    ]
    report = _report(events, CENTRES)
    # L1 and L2 both have 3 calls: ties by org_code. L3 has no contact at all: a zero row.
    assert [(r.org_code, r.name, r.city, r.calls) for r in report.rows] == [
        ("L1", "南京12320", "南京市", 3),
        ("L2", "苏州12320", "苏州市", 3),
        ("L3", "无锡12320", None, 0),
    ]
    l1, l2, l3 = report.rows
    assert (l1.appointment, l1.voice_qa, l1.consultation, l1.work_orders_city_12345) == (2, 1, 0, 1)
    assert (l1.work_orders_province_12345, l2.complaint, l2.work_orders_city_12345) == (2, 3, 0)
    assert l3.model_dump(exclude={"org_code", "name", "city"}) == dict.fromkeys(
        l3.model_dump(exclude={"org_code", "name", "city"}), 0
    )
    total = report.total
    assert (total.org_code, total.name, total.city) == (None, "合计", None)
    assert (total.calls, total.appointment, total.complaint, total.work_orders_province_12345) == (6, 2, 3, 2)
    assert csv_rows(report) == [*report.rows, report.total]
    assert appointment_calls_by_city(report) == {"南京市": 2, "苏州市": 0, None: 0}


def test_calls_are_the_six_categories_whatever_the_mix() -> None:
    # A plain count written here: calls = call events; every category its own events; work orders apart.
    events = [
        contact(
            event_id=f"m{n}",
            kind=kind,
            category=category,
            occurred_at=f"2020-04-{1 + n % 30:02d}T0{n % 10}:00:00+08:00",
        )
        for n, (kind, category) in enumerate(
            [("call", c) for c in CALL_CATEGORIES] * 7 + [("work_order", c) for c in WORK_ORDER_CATEGORIES] * 5
        )
    ]
    row = _report(events, CENTRES[:1]).rows[0]
    by = Counter((e["kind"], e["category"]) for e in events)
    assert row.calls == sum(n for (kind, _), n in by.items() if kind == "call") == 42
    for category in CALL_CATEGORIES:
        assert getattr(row, category) == by[("call", category)]
    assert (row.work_orders_city_12345, row.work_orders_province_12345) == (5, 5)
