"""The demo month's appointments, hotline contacts and remote uploads reproduce every printed cell.

`streams` is the three streams put through the tests' own fold of contract revision 2
(tests/fixtures/streams_fold.py), computed once per session; every expected value here is
a cell of the bulletin's CSV files, read with `csv` (or the total to date printed under the
appointments table).
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter

import pytest

from services.demo.bulletin import APPOINTMENTS_TO_DATE, BULLETIN_DIR
from services.demo.institutions import org_code_of
from services.demo.stream import KINDS, V1_KINDS, DemoMonth, plan_demo_month
from tests.fixtures.streams_fold import NEW_KINDS, StreamsFold, reference_rows

MAIN = {"consultation": "consultations", "ecg": "cases", "lab": "reports", "imaging": "reports"}


def printed(name: str) -> list[dict[str, str]]:
    """Rows of a bulletin CSV (the package's copy)."""
    with (BULLETIN_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_appointments_reproduce_every_cell_of_the_table(streams: StreamsFold) -> None:
    rows = printed("appointments_2020-04.csv")
    for row in rows[:-1]:
        got = streams.appointments[org_code_of(row["unit"])]
        assert {c: got[c] for c in ("online_12320", "phone", "in_clinic", "third_party")} == {
            c: int(row[c]) for c in ("online_12320", "phone", "in_clinic", "third_party")
        }, row["unit"]
        assert got.total() == int(row["subtotal"]), row["unit"]
    total = rows[-1]
    assert total["unit"] == "合计"
    for channel in ("online_12320", "phone", "in_clinic", "third_party"):
        assert sum(c[channel] for c in streams.appointments.values()) == int(total[channel])
    assert sum(c.total() for c in streams.appointments.values()) == int(total["subtotal"])
    assert set(streams.appointments) == {org_code_of(r["unit"]) for r in rows[:-1]}


def test_bookings_to_date_are_the_opening_balance_and_april(streams: StreamsFold) -> None:
    balance = {(b["metric"], b["as_of"]): int(b["value"]) for b in reference_rows("opening_balances.csv")}
    april = sum(c.total() for c in streams.appointments.values())
    # 截止4月底，总预约挂号量为19238954次. The bookings of 31 March sent in the stream are inside
    # the balance (before its month) and must not be added again.
    assert balance["appointments", "2020-04"] + april == APPOINTMENTS_TO_DATE == 19_238_954
    assert streams.appointments_before_april > 0


def test_booking_platforms_reproduce_their_table(streams: StreamsFold) -> None:
    codes = {p["name"]: p["platform_code"] for p in reference_rows("booking_platforms.csv")}
    rows = printed("appointment_platforms_2020-04.csv")
    for row in rows[:-1]:
        assert streams.platform_bookings[codes[row["platform"]]] == int(row["appointments"]), row["platform"]
    assert sum(streams.platform_bookings.values()) == int(rows[-1]["appointments"]) == 98_432
    assert set(streams.platform_bookings) == set(codes.values())
    # NOTES.md: less than online-12320 plus third party, so some of those bookings name none.
    total = printed("appointments_2020-04.csv")[-1]
    assert sum(streams.platform_bookings.values()) < int(total["online_12320"]) + int(total["third_party"])
    assert streams.platform_on_other_channel == 0


def test_the_hotline_paragraph_and_the_province_table(streams: StreamsFold) -> None:
    centres = {i["name"]: i["org_code"] for i in reference_rows("institutions.csv") if i["kind"] == "hotline"}
    nanjing = streams.hotline[centres["南京12320"]]
    for row in printed("hotline_2020-04.csv"):
        assert nanjing[row["figure"]] == int(row["value"]), row["printed_as"]
    province = printed("hotline_province_2020-04.csv")
    for row in province[:-1]:
        assert streams.hotline[centres[f"{row['city']}12320"]]["calls"] == int(row["calls"]), row["city"]
    assert sum(c["calls"] for c in streams.hotline.values()) == int(province[-1]["calls"]) == 179_331
    assert set(streams.hotline) == set(centres.values())
    # The hotline's phone appointments are the appointments table's phone column.
    assert nanjing["appointment"] == sum(c["phone"] for c in streams.appointments.values())
    assert streams.hotline_not_a_centre == 0


@pytest.mark.parametrize("platform", ["consultation", "ecg", "lab", "imaging"])
def test_remote_volumes_and_top_uploaders(platform: str, streams: StreamsFold) -> None:
    figures = {
        r["figure"]: int(r["value"]) for r in printed("remote_platforms_2020-04.csv") if r["platform"] == platform
    }
    for key in ("consultations", "cases", "reports", "specimens", "images"):
        if key in figures:
            assert streams.remote[platform][key] == figures[key], key
    if platform == "consultation":
        balance = next(
            int(b["value"]) for b in reference_rows("opening_balances.csv") if b["metric"] == "remote_consultations"
        )
        assert balance + streams.remote["consultation"]["consultations"] == figures["consultations_cumulative"]
        # Consultations of the ECG platform are not the consultation platform's.
        assert streams.remote["ecg"]["consultations"] > 0
        return
    by_org = streams.remote_by_org[platform]
    top = sorted(by_org.items(), key=lambda item: (-item[1], item[0]))[:3]
    want = [
        (org_code_of(r["unit"]), int(r["value"]))
        for r in printed("remote_top_uploaders_2020-04.csv")
        if r["platform"] == platform
    ]
    assert top == want


def test_uploads_from_institutions_not_connected_that_day_are_in_the_stream(streams: StreamsFold) -> None:
    connections = reference_rows("platform_connections.csv")
    ended = next(c for c in connections if c["disconnected_on"].startswith("2020-04"))
    starts_in_may = next(c for c in connections if c["platform"] == "ecg" and c["connected_on"].startswith("2020-05"))
    never = {(c["platform"], c["org_code"]) for c in connections}
    assert streams.unconnected[(ended["platform"], ended["org_code"])] > 0
    assert streams.unconnected[("ecg", starts_in_may["org_code"])] > 0
    assert any(key not in never for key in streams.unconnected), "an uploader with no connection at all"
    assert streams.unknown_count_keys == 0


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_the_month_edges_duplicates_and_offsets_are_there(kind: str, streams: StreamsFold) -> None:
    for edge in ("first second", "last second", "second before", "second after"):
        assert streams.edges[(kind, edge)] >= 2, edge
    assert streams.outside_april[kind] >= 4
    assert {"+08:00", "Z", "-04:00"} <= set(streams.offsets[kind])
    assert streams.duplicates[kind] > 0
    assert streams.differing_duplicates == 0


def test_events_have_the_contract_shapes(demo_month: DemoMonth) -> None:
    stamp = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})")
    code = re.compile(r"[A-Za-z0-9._:-]{1,64}")
    fields = {
        "appointment": ({"event_id", "org_code", "channel", "booked_at"}, {"platform"}),
        "hotline_contact": ({"event_id", "org_code", "kind", "category", "occurred_at"}, set()),
        "remote_upload": ({"event_id", "org_code", "platform", "uploaded_at", "counts"}, set()),
    }
    seen: Counter[str] = Counter()
    for kind, event in itertools.islice(demo_month.events(NEW_KINDS), 0, 400_000, 13):
        seen[kind] += 1
        required, optional = fields[kind]
        assert required <= set(event) <= required | optional, event
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", str(event["event_id"])), event
        assert code.fullmatch(str(event["org_code"])), event
        time_field = next(f for f in required if f.endswith("_at"))
        assert stamp.fullmatch(str(event[time_field])), event
        if kind == "remote_upload":
            counts = event["counts"]
            assert counts and all(isinstance(v, int) and 0 <= v <= 10_000_000 for v in counts.values()), event
    assert set(seen) == set(NEW_KINDS)


def test_the_month_has_every_stream_and_about_2_6_million_events(demo_month: DemoMonth) -> None:
    total = demo_month.total_events()
    assert 2_500_000 <= total <= 2_800_000
    assert demo_month.total_events(V1_KINDS) == demo_month.month.total_events
    assert sum(demo_month.total_events([kind]) for kind in KINDS) == total
    with pytest.raises(ValueError, match="kinds"):
        demo_month.total_events(["fax"])


def test_the_streams_interleave_in_arrival_order(demo_month: DemoMonth) -> None:
    # Within the first days every stream appears, and a stream's order is its own stream's order.
    head = list(itertools.islice(demo_month.events(), 300_000))
    assert {kind for kind, _ in head} == set(KINDS)
    alone = [e for _, e in itertools.islice(demo_month.events(["hotline_contact"]), 2_000)]
    merged = [e for kind, e in head if kind == "hotline_contact"][:2_000]
    assert merged == alone


def test_generation_is_deterministic_and_seeded(demo_month: DemoMonth) -> None:
    first = list(itertools.islice(demo_month.events(NEW_KINDS), 5_000))
    again = list(itertools.islice(plan_demo_month().events(NEW_KINDS), 5_000))
    other = list(itertools.islice(plan_demo_month(seed=7).events(NEW_KINDS), 5_000))
    assert first == again
    assert first != other


def test_april_days_only_count_in_april(streams: StreamsFold) -> None:
    # The fold takes days in Asia/Shanghai: a UTC or as-written reading would count the edges
    # differently; here the count of events outside April is exactly the edges outside it.
    for kind in NEW_KINDS:
        outside = streams.edges[(kind, "second before")] + streams.edges[(kind, "second after")]
        assert streams.outside_april[kind] == outside, kind
