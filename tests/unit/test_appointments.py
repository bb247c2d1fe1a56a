"""The appointments stream's own rules and figures (pure): the contract's platform rule, the
reference check, and the month's report from folded bookings against a plain fold."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from services.storage.refdata import OpeningBalance
from services.storage.reference import ReferenceSnapshot
from services.streams import STREAMS, ConsumedEvent
from services.streams.appointments.fold import APPOINTMENT_MONTHLY
from services.streams.appointments.model import Appointment
from services.streams.appointments.report import Bookings, appointment_report, cumulative_bookings
from services.streams.rollups import Deltas
from tests.fixtures.appointments import APRIL_EDGES, CHANNELS, SHANGHAI, appointment, fold_appointments
from tests.fixtures.streams import schema_validator

STREAM = STREAMS["appointment"]
APRIL = date(2020, 4, 1)

CASES: list[tuple[dict[str, Any], bool]] = [
    (appointment(), True),
    (appointment(channel="online_12320", platform="jkn-app"), True),
    (appointment(channel="third_party", platform="jiuyi160"), True),
    (appointment(channel="online_12320"), True),  # a platform is optional
    (appointment(channel="third_party", platform=None), True),  # null = left out
    (appointment(channel="phone", platform=None), True),
    (appointment(channel="phone", platform="jkn-app"), False),
    (appointment(channel="in_clinic", platform="jkn-app"), False),
    (appointment(channel="online_12320", platform=""), False),
    (appointment(channel="online_12320", platform="has space"), False),
    (appointment(channel="online_12320", platform=7), False),
    (appointment(channel="hospital_app"), False),
    (appointment(channel="Phone"), False),
    (appointment(booked_at="2020-04-10T09:00:00"), False),
    (appointment(booked_at="2020-04-10"), False),
    (appointment(booked_at="2020-04-10T09:00:00-23:59"), True),
    (appointment(source="app"), False),
    ({k: v for k, v in appointment().items() if k != "channel"}, False),
    ({k: v for k, v in appointment().items() if k != "booked_at"}, False),
]


@pytest.mark.parametrize(("event", "valid"), CASES)
def test_schema_and_model_agree(event: dict[str, Any], valid: bool) -> None:
    schema_ok = schema_validator("appointment-event.schema.json").is_valid(event)
    _, problems = STREAM.validate([event])
    assert (schema_ok, not problems) == (valid, valid)


def test_a_platform_on_a_channel_without_one_names_its_index_and_field() -> None:
    events = [
        appointment(channel="online_12320", platform="jkn-app"),
        appointment(channel="phone", platform="jkn-app"),
        appointment(channel="in_clinic", platform="jkn-app", booked_at="yesterday"),
        appointment(channel="bogus", platform="jkn-app"),
    ]
    _, problems = STREAM.validate(events)
    found = {(p.index, p.field) for p in problems}
    assert found == {(1, "platform"), (2, "platform"), (2, "booked_at"), (3, "channel")}
    reason = next(p.reason for p in problems if (p.index, p.field) == (1, "platform"))
    assert "phone" in reason and "online_12320" in reason and "third_party" in reason


def test_a_platform_must_be_one_of_the_reference_data() -> None:
    ref = ReferenceSnapshot(1, frozenset({"H1"}), frozenset(), {}, booking_platforms=frozenset({"jkn-app"}))

    def problems(**fields: Any) -> list[tuple[str, str]]:
        return list(STREAM.reference_problems(Appointment.model_validate(appointment(**fields)), ref))

    assert problems(channel="online_12320", platform="jkn-app") == []
    assert problems(channel="online_12320") == []
    assert problems(channel="phone") == []
    [(field, reason)] = problems(channel="third_party", platform="weimai")
    assert field == "platform" and "weimai" in reason


def _april_report_of(events: list[dict[str, Any]], names: dict[str, str], platforms: list[tuple[str, str]]) -> Any:
    # Validated, then folded (in two batches) and reported by the platform's code.
    deltas = Deltas()
    valid = [Appointment.model_validate(e) for e in events]
    received = datetime(2020, 5, 2, tzinfo=UTC)
    for part in (valid[:100], valid[100:]):
        STREAM.fold([ConsumedEvent(e, received, 0, n) for n, e in enumerate(part)], SHANGHAI, deltas)
    bookings = [
        Bookings(org, channel, platform, n)
        for (org, month, channel, platform), (n,) in deltas.tables[APPOINTMENT_MONTHLY.name].items()
        if month == APRIL
    ]
    return appointment_report(APRIL, bookings, names, platforms, None)


def _random_bookings(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    platforms = {"online_12320": ["jkn-app", "nj12320-web"], "third_party": ["jiuyi160", "weimai"]}
    start = datetime(2020, 3, 29, tzinfo=SHANGHAI)
    events = []
    for n in range(600):
        moment = start + timedelta(seconds=rng.randrange(0, 36 * 86400))
        offset = rng.choice([SHANGHAI, UTC, timezone(timedelta(hours=-4))])
        channel = rng.choice(CHANNELS)
        fields: dict[str, Any] = {
            "event_id": f"r-{n}",
            "org_code": rng.choice(["H1", "H2", "H3", "H4"]),
            "channel": channel,
            "booked_at": moment.astimezone(offset).isoformat(),
        }
        if channel in platforms and rng.random() < 0.7:
            fields["platform"] = rng.choice(platforms[channel])
        events.append(appointment(**fields))
    for n, (booked_at, _) in enumerate(APRIL_EDGES):
        events.append(appointment(event_id=f"edge-{n}", org_code="H2", channel="online_12320", booked_at=booked_at))
    return events


def test_the_months_report_is_the_plain_fold_of_its_bookings() -> None:
    events = _random_bookings(7)
    names = {"H1": "甲医院", "H2": "乙医院", "H3": "丙医院"}  # H4 is no longer in the reference data
    platforms = [("jkn-app", "健康南京客户端"), ("nj12320-web", "南京卫生12320网"), ("jiuyi160", "就医160")]
    report = _april_report_of(events, names, platforms)
    plain = fold_appointments(events, APRIL)

    got = {r.org_code: r.model_dump() for r in report.rows}
    assert got == {org: {"org_code": org, "name": names.get(org), **plain.row(org)} for org in plain.by_org}
    subtotals = [r.subtotal for r in report.rows]
    assert subtotals == sorted(subtotals, reverse=True) and len(report.rows) == 4
    assert report.total.model_dump() == plain.total()
    # Every platform of the reference data, and weimai, which the reference data no longer has.
    assert {p.platform_code: (p.name, p.appointments) for p in report.platforms} == {
        code: (dict(platforms).get(code), plain.by_platform[code]) for code in [*dict(platforms), "weimai"]
    }
    assert report.platforms_total == sum(plain.by_platform.values())
    counts = [p.appointments for p in report.platforms]
    assert counts == sorted(counts, reverse=True)
    assert report.month == "2020-04" and report.appointments_cumulative is None


def test_bookings_one_second_either_side_of_the_month_count_in_their_own_month() -> None:
    # One at a time: what each edge must give, whatever offset it was sent in. A platform that
    # took the UTC date, or the date written in the timestamp, gets some of them wrong.
    for booked_at, month in APRIL_EDGES:
        report = _april_report_of([appointment(booked_at=booked_at)], {"H1": "甲医院"}, [])
        assert report.total.phone == (1 if month == "2020-04" else 0), booked_at


def test_a_platform_without_bookings_is_listed_with_zero_and_ties_go_by_code() -> None:
    events = [
        appointment(channel="online_12320", platform="b-app"),
        appointment(channel="third_party", platform="a-app"),
        appointment(org_code="H2", channel="in_clinic"),
    ]
    report = _april_report_of(events, {"H1": "甲", "H2": "乙"}, [("c-app", "丙"), ("b-app", "乙"), ("a-app", "甲")])
    assert [(p.platform_code, p.appointments) for p in report.platforms] == [("a-app", 1), ("b-app", 1), ("c-app", 0)]
    assert [(r.org_code, r.subtotal) for r in report.rows] == [("H1", 2), ("H2", 1)]
    assert report.platforms_total == 2


def test_a_month_without_bookings_has_no_rows_and_zero_totals() -> None:
    report = _april_report_of([appointment(booked_at="2020-05-03T10:00:00+08:00")], {"H1": "甲"}, [("a", "甲")])
    assert report.rows == [] and report.total.subtotal == 0
    assert [(p.platform_code, p.appointments) for p in report.platforms] == [("a", 0)] and report.platforms_total == 0


def test_the_cumulative_figure_starts_from_the_balance_and_adds_its_months_only() -> None:
    totals = {date(2020, 2, 1): 7, date(2020, 3, 1): 100, date(2020, 4, 1): 20, date(2020, 5, 1): 3}
    balance = OpeningBalance(date(2020, 3, 1), 1000)
    # February is inside the balance; May is after the month asked for.
    assert cumulative_bookings(balance, totals, date(2020, 4, 1)) == 1000 + 100 + 20
    assert cumulative_bookings(balance, totals, date(2020, 3, 1)) == 1000 + 100
    assert cumulative_bookings(None, totals, date(2020, 4, 1)) is None
