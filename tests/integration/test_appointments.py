"""Bookings through the real collector, Kafka and aggregator: the appointments report against a plain fold.

Expected figures come from tests/fixtures/appointments.py (a few loops over the events posted),
never from the platform's fold or report.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures.appointments import APRIL_EDGES, CHANNELS, SHANGHAI, appointment, fold_appointments
from tests.fixtures.cli import run_telemetry
from tests.fixtures.reference import revision2
from tests.fixtures.stack import admin_headers, count_events, stored_event_ids, wait_for
from tests.unit.bulletin.page import parse, problems, table_rows

pytestmark = pytest.mark.integration

PLATFORMS = [
    {"platform_code": "jkn-app", "name": "健康南京客户端"},
    {"platform_code": "wechat", "name": "南京卫生12320微信平台"},
    {"platform_code": "jiuyi160", "name": "就医160"},
    {"platform_code": "weimai", "name": "微脉科技"},
]
ONLINE, THIRD_PARTY = ["jkn-app", "wechat"], ["jiuyi160"]  # weimai: no bookings, a zero row
BALANCE = 18_882_599  # appointments before 2020-04 (revision2()'s opening balance)
# Every kind of institution may have bookings; a booking is counted where the appointment is.
ORGS = ["H1", "D1", "D2", "O1"]


async def _load_reference(collector: httpx.AsyncClient) -> None:
    body = revision2(booking_platforms=PLATFORMS)
    response = await collector.put("/v1/admin/reference", json=body, headers=admin_headers())
    assert response.status_code in (200, 201), response.text


def _bookings(seed: int) -> list[dict[str, Any]]:
    """March to May, any offset, near midnight, with and without platforms, the month's edges."""
    rng = random.Random(seed)
    start = datetime(2020, 3, 25, tzinfo=SHANGHAI)
    offsets = [SHANGHAI, UTC, timezone(timedelta(hours=-4)), timezone(timedelta(hours=9))]
    events = []
    for n in range(1400):
        moment = start + timedelta(seconds=rng.randrange(0, 45 * 86400))
        if n % 9 == 0:
            moment = moment.replace(hour=23, minute=59, second=59) + timedelta(seconds=rng.choice([0, 1]))
        channel = rng.choice(CHANNELS)
        fields: dict[str, Any] = {
            "event_id": f"b-{n}",
            "org_code": rng.choice(ORGS),
            "channel": channel,
            "booked_at": moment.astimezone(rng.choice(offsets)).isoformat(),
        }
        choices = {"online_12320": ONLINE, "third_party": THIRD_PARTY}.get(channel)
        if choices and rng.random() < 0.6:
            fields["platform"] = rng.choice(choices)
        elif choices and rng.random() < 0.2:
            fields["platform"] = None
        events.append(appointment(**fields))
    for n, (booked_at, _) in enumerate(APRIL_EDGES):
        events.append(appointment(event_id=f"edge-{n}", org_code="H1", channel="in_clinic", booked_at=booked_at))
    return events


async def _post(collector: httpx.AsyncClient, events: list[dict[str, Any]], headers: dict[str, str]) -> None:
    for start in range(0, len(events), 500):
        batch = {"events": events[start : start + 500]}
        response = await collector.post("/v1/appointments", json=batch, headers=headers)
        assert response.status_code == 202, response.text


async def _report(aggregator: httpx.AsyncClient, month: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await aggregator.get("/v1/reports/appointments", params={"month": month}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_bookings_through_the_stack_give_the_plain_fold_counted_once(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_reference(collector)
    events = _bookings(11)
    rng = random.Random(5)
    # Resent identical, in the same request and in a later one (a client's retry after a timeout).
    resent = rng.sample(events, 120)
    posted = events[:700] + resent[:60] + events[700:]
    await _post(collector, posted, admin_headers())
    await _post(collector, resent, admin_headers())

    async def all_applied() -> bool:
        return await count_events(db) == len(events)

    await wait_for(all_applied, f"{len(events)} bookings applied")
    await asyncio.sleep(0.3)
    assert await count_events(db) == len(events)

    april = fold_appointments(posted + resent, date(2020, 4, 1))
    report = await _report(aggregator, "2020-04", admin_headers())
    assert {r["org_code"]: r for r in report["rows"]} == {
        org: {"org_code": org, "name": name, **april.row(org)}
        for org, name in (("H1", "丙医院"), ("D1", "甲区"), ("D2", "乙区"), ("O1", "马鞍山某医院"))
    }
    assert [r["subtotal"] for r in report["rows"]] == sorted((r["subtotal"] for r in report["rows"]), reverse=True)
    assert report["total"] == april.total()
    names = {p["platform_code"]: p["name"] for p in PLATFORMS}
    assert report["platforms"] == sorted(
        ({"platform_code": c, "name": names[c], "appointments": april.by_platform[c]} for c in names),
        key=lambda p: (-p["appointments"], p["platform_code"]),
    )
    assert report["platforms"][-1] == {"platform_code": "weimai", "name": "微脉科技", "appointments": 0}
    assert report["platforms_total"] == sum(april.by_platform.values())
    # The balance is everything before April; March's bookings are inside it, not added again.
    assert report["appointments_cumulative"] == BALANCE + april.by_month["2020-04"]
    assert april.by_month["2020-03"] > 0 and april.by_month["2020-05"] > 0
    may = await _report(aggregator, "2020-05", admin_headers())
    assert may["appointments_cumulative"] == BALANCE + april.by_month["2020-04"] + april.by_month["2020-05"]
    assert may["total"] == fold_appointments(events, date(2020, 5, 1)).total()
    # Before the first balance the figure is unknown, not the bookings seen so far.
    march = await _report(aggregator, "2020-03", admin_headers())
    assert march["appointments_cumulative"] is None and march["total"]["subtotal"] == april.by_month["2020-03"]


async def test_an_institution_token_sees_its_own_row_and_totals_and_no_city_figure(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_reference(collector)
    events = _bookings(12)[:300]
    await _post(collector, events, admin_headers())

    async def all_applied() -> bool:
        return await count_events(db) == len(events)

    await wait_for(all_applied, "bookings applied")
    issued = (await collector.post("/v1/admin/tokens", json={"org_code": "H1"}, headers=admin_headers())).json()
    h1 = {"Authorization": f"Bearer {issued['token']}"}

    async def token_known() -> bool:
        response = await aggregator.get("/v1/reports/appointments", params={"month": "2020-04"}, headers=h1)
        return response.status_code == 200

    await wait_for(token_known, "aggregator learned the new token")
    own = await _report(aggregator, "2020-04", h1)
    mine = fold_appointments([e for e in events if e["org_code"] == "H1"], date(2020, 4, 1))
    assert [r["org_code"] for r in own["rows"]] == ["H1"]
    assert own["total"] == mine.total() == {k: v for k, v in own["rows"][0].items() if k in mine.total()}
    assert {p["platform_code"]: p["appointments"] for p in own["platforms"]} == {
        p["platform_code"]: mine.by_platform[p["platform_code"]] for p in PLATFORMS
    }
    assert own["platforms_total"] == sum(mine.by_platform.values())
    assert own["appointments_cumulative"] is None
    every = await _report(aggregator, "2020-04", admin_headers())
    assert own["total"]["subtotal"] < every["total"]["subtotal"]


async def test_bad_report_parameters_are_422(aggregator: httpx.AsyncClient) -> None:
    for params in ({"month": "2020-04", "format": "csv"}, {"month": "2020-4"}, {}):
        response = await aggregator.get("/v1/reports/appointments", params=params, headers=admin_headers())
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "invalid_request"


async def test_refused_bookings_are_422_by_index_and_field_and_nothing_is_kept(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_reference(collector)

    async def refused(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
        response = await collector.post("/v1/appointments", json={"events": events}, headers=admin_headers())
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid_events"
        return [(e["index"], e["field"]) for e in body["errors"]]

    ok = appointment(channel="online_12320", platform="jkn-app")
    # The contract first: a platform on a channel that has none.
    assert await refused([ok, appointment(channel="phone", platform="jkn-app"), appointment(channel="in_clinic")]) == [
        (1, "platform")
    ]
    # Then the reference data: a platform it does not list, an institution it does not know.
    assert await refused(
        [ok, appointment(channel="third_party", platform="meituan"), appointment(org_code="H404"), ok]
    ) == [(1, "platform"), (2, "org_code")]
    marker = appointment(event_id="marker-1")
    assert (await collector.post("/v1/appointments", json=marker, headers=admin_headers())).status_code == 202

    async def marker_stored() -> bool:
        return await count_events(db) >= 1

    await wait_for(marker_stored, "marker stored")
    await asyncio.sleep(0.3)  # give any wrongly published event time to land too
    assert await stored_event_ids(db) == ["marker-1"]


async def test_the_bulletin_shows_both_tables_as_the_report_api_and_flags_what_needs_a_look(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load_reference(collector)
    events = _bookings(13)
    # The Nanjing 12320 centre relays phone bookings under its own code: not where they happen.
    relayed = [appointment(event_id=f"relay-{n}", org_code="L1", channel="phone") for n in range(3)]
    await _post(collector, events + relayed, admin_headers())

    async def all_applied() -> bool:
        return await count_events(db) == len(events) + len(relayed)

    await wait_for(all_applied, "bookings applied")
    api = await _report(aggregator, "2020-04", admin_headers())
    response = await aggregator.get("/v1/reports/bulletin", params={"month": "2020-04"}, headers=admin_headers())
    assert response.status_code == 200, response.text
    page = parse(response.text)

    rows = table_rows(page, "appointments-by-institution")
    assert [r.attrs.get("data-org-code") for r in rows] == [*(r["org_code"] for r in api["rows"]), None]
    fields = ("online_12320", "phone", "in_clinic", "third_party", "subtotal")
    for n, (shown, want) in enumerate(zip(rows, [*api["rows"], api["total"]], strict=True)):
        numbers = shown.cells[2:] if "org_code" in want else shown.cells
        if "org_code" in want:
            assert shown.cells[:2] == [str(n + 1), want["name"]]
        assert [int(c.replace(",", "")) for c in numbers] == [want[f] for f in fields]
    sentence = page.by_id("appointments-to-date").text()
    assert f"{api['appointments_cumulative']:,}" in sentence and "截止4月底" in sentence
    platforms = table_rows(page, "appointment-platforms-table")
    assert [p.cells[1:] for p in platforms[:-1]] == [[p["name"], f"{p['appointments']:,}"] for p in api["platforms"]]
    assert platforms[-1].cells == [f"{api['platforms_total']:,}"]
    # The platform table adds up to less than online + third party: normal, not listed. Bookings
    # under the districts' health commissions (D1, D2 of the stream) and the relayed ones are.
    listed = problems(page)
    assert ("bookings_at_no_clinic", "12320热线中心名下预约 3 次", []) in listed["L1"]
    # L1 is also a 12320 centre without contacts: its hotline problems share its entry.
    # The centre answered no call while its city's institutions report phone bookings (the three
    # relayed ones among them): the two streams disagree (services/quality/cross_stream.py).
    nanjing = {i["org_code"] for i in revision2()["institutions"] if i.get("city") == "南京市"}
    phone = sum(r["phone"] for r in api["rows"] if r["org_code"] in nanjing)
    assert phone > 0
    assert [c for c, _, _ in listed["L1"]] == [
        "hotline_no_contacts",
        "bookings_at_no_clinic",
        "cross_stream_mismatch",
    ]
    assert [f for c, f, _ in listed["L1"] if c == "cross_stream_mismatch"] == [
        f"电话预约 0 个，南京市各医疗机构电话预约 {phone:,} 次（相差 {-phone:,}）"
    ]
    flagged = {org: [c for c, _, _ in found if c.startswith("bookings")] for org, found in listed.items()}
    assert {org: checks for org, checks in flagged.items() if checks} == {
        "L1": ["bookings_at_no_clinic"],
        "D1": ["bookings_at_no_clinic"],
        "D2": ["bookings_at_no_clinic"],
    }


async def _command(database_url: str, *args: str) -> tuple[int, str]:
    return await run_telemetry(
        *args, env={"TELEMETRY_DATABASE_URL": database_url, "TELEMETRY_TIMEZONE": "Asia/Shanghai"}
    )


async def test_the_command_prints_the_report_of_the_api(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection, database_url: str
) -> None:
    await _load_reference(collector)
    events = _bookings(14)[:200]
    await _post(collector, events, admin_headers())

    async def all_applied() -> bool:
        return await count_events(db) == len(events)

    await wait_for(all_applied, "bookings applied")
    api = await _report(aggregator, "2020-04", admin_headers())
    code, output = await _command(database_url, "report", "appointments", "--month", "2020-04", "--format", "json")
    assert code == 0, output
    assert json.loads(output) == api
    code, output = await _command(database_url, "report", "appointments", "--month", "2020-04")
    assert code == 0, output
    assert f"bookings to date: {api['appointments_cumulative']:,}" in output
    assert "健康南京客户端" in output and f"{api['total']['subtotal']:,}" in output
    code, output = await _command(database_url, "report", "appointments", "--month", "2020-04", "--format", "csv")
    assert code == 2 and "no csv" in output
