"""The April 2020 bookings (`POST /v1/appointments`) behind the bulletin's two appointment tables.

2020年4月预约挂号服务统计表 gives bookings per hospital and channel; 2020年4月分途径预约情况统计
gives bookings per booking platform. Every cell of both comes out of the events: each
hospital-channel cell is one `Series` (bookings per day, spread over the channel's hours),
and the platform bookings are shared out over the hospitals of their channel (`platforms.py`
says which channel each platform's bookings come through) in proportion to what is left of
each hospital's cell, so that every platform total and every cell is exact. A platform is
named only on `online_12320` and `third_party` bookings (the contract allows no other).

The stream also has: bookings one second either side of the month in `+08:00`, `Z` and
`-04:00`, re-sent duplicates, and two relays whose clocks write other offsets.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from services.demo.bulletin import Bulletin
from services.demo.clock import apportion, date_text, day_factor, int_weight
from services.demo.daily import EDGES, CountStreamPlan, Edge, Event, Series, with_edges
from services.demo.errors import PlanError
from services.demo.institutions import org_code_of
from services.demo.platforms import BOOKING_PLATFORMS

KIND = "appointment"
CHANNELS = ("online_12320", "phone", "in_clinic", "third_party")
_TAG = {"online_12320": "O", "phone": "P", "in_clinic": "C", "third_party": "T"}
DUPLICATE_SHARE = 0.003

# When bookings are made, by channel: online and third-party apps around the clock with an
# evening peak, the 12320 phone line and the clinics in office hours.
_HOURS: Mapping[str, tuple[float, ...]] = {
    "online_12320": (0.3, 0.15, 0.1, 0.1, 0.1, 0.2, 0.6, 2, 4, 5, 5, 4, 3, 3, 3, 3, 3, 3, 3, 4, 4, 3, 2, 1),
    "phone": (0, 0, 0, 0, 0, 0, 0, 0.5, 6, 7, 7, 5, 2, 4, 5, 5, 3, 1, 0, 0, 0, 0, 0, 0),
    "in_clinic": (0, 0, 0, 0, 0, 0, 0, 1, 8, 9, 8, 5, 1, 3, 6, 6, 4, 1, 0, 0, 0, 0, 0, 0),
    "third_party": (0.4, 0.2, 0.1, 0.1, 0.1, 0.3, 0.8, 2, 4, 5, 4, 3, 3, 3, 3, 3, 3, 3, 4, 5, 5, 4, 2, 1),
}
# Relays whose clocks write another offset (minutes east of UTC).
_CLOCKS: Mapping[tuple[str, str], int] = {
    ("南京市儿童医院", "third_party"): 0,  # a booking aggregator's relay on UTC
    ("南京市中医院", "online_12320"): 540,
}
# The month's edges are written as bookings of this cell.
EDGE_CELL = ("南京鼓楼医院", "online_12320")


def platform_shares(bulletin: Bulletin) -> dict[tuple[str, str], dict[str, int]]:
    """Bookings per (hospital as printed, channel) per platform code: every platform total and
    cell exact. What a cell has left names no platform."""
    totals = {row.platform: row.appointments for row in bulletin.appointment_platforms}
    shares: dict[tuple[str, str], dict[str, int]] = {}
    for channel in ("online_12320", "third_party"):
        left = {row.unit: getattr(row, channel) for row in bulletin.appointments}
        for code, name, platform_channel in BOOKING_PLATFORMS:
            if platform_channel != channel:
                continue
            units = list(left)
            if totals[name] > sum(left.values()):
                raise PlanError(f"{name}: {totals[name]} bookings, only {sum(left.values())} {channel} bookings left")
            for unit, part in zip(units, apportion(totals[name], [left[u] for u in units]), strict=True):
                if part:
                    shares.setdefault((unit, channel), {})[code] = part
                    left[unit] -= part
    return shares


def _daily(total: int, channel: str, rng: random.Random) -> tuple[int, ...]:
    clinical = channel in {"phone", "in_clinic"}
    weights = [int_weight(day_factor(date(2020, 4, d), clinical) * rng.lognormvariate(0, 0.1)) for d in range(1, 31)]
    return tuple(apportion(total, weights))


def _build(series: Series, stamps: Sequence[str], ordinal: int, first: int) -> list[Event]:
    fields = series.fields
    org, channel, labels, codes = series.org_code, fields["channel"], fields["labels"], fields["codes"]
    prefix = f"{org}:A{fields['tag']}{date_text(ordinal).replace('-', '')}"
    events: list[Event] = []
    for n, booked_at in enumerate(stamps, start=1):
        event: Event = {"event_id": f"{prefix}{n:05d}", "org_code": org, "channel": channel, "booked_at": booked_at}
        code = codes[labels[first + n - 1]]
        if code:
            event["platform"] = code
        events.append(event)
    return events


def plan_appointments(bulletin: Bulletin, seed: int) -> CountStreamPlan:
    """Every booking of April 2020 (and the month's edges), decided."""
    shares = platform_shares(bulletin)
    codes = ("", *(code for code, _, _ in BOOKING_PLATFORMS))
    series: list[Series] = []
    edges: list[Edge] = []
    for row in bulletin.appointments:
        org = org_code_of(row.unit)
        for channel in CHANNELS:
            total = getattr(row, channel)
            if not total:
                continue
            rng = random.Random(f"{seed}:appointments:{org}:{channel}")  # noqa: S311 - reproducible demo data
            named = shares.get((row.unit, channel), {})
            labels = [codes.index(code) for code, n in named.items() for _ in range(n)]
            labels += [0] * (total - len(labels))
            rng.shuffle(labels)
            fields: dict[str, Any] = {"channel": channel, "tag": _TAG[channel], "labels": bytes(labels), "codes": codes}
            one = Series(
                kind=KIND,
                key=f"{seed}:appointments:{org}:{channel}",
                org_code=org,
                daily=_daily(total, channel, rng),
                hours=_HOURS[channel],
                build=_build,
                fields=fields,
                clock=_CLOCKS.get((row.unit, channel), 480),
                duplicate_share=DUPLICATE_SHARE,
            )
            if (row.unit, channel) == EDGE_CELL:
                one, edges = with_edges(one, _edge_maker(one))
            series.append(one)
    return CountStreamPlan(KIND, tuple(series), tuple(edges))


def _edge_maker(series: Series) -> Callable[[str, int], Event]:
    labels, codes = series.fields["labels"], series.fields["codes"]
    # The edges inside April take the cell's last platform labels (the days took the others);
    # those outside name the first platform: they count nowhere in April.
    inside = [n for n, edge in enumerate(EDGES) if edge[2]]

    def make(booked_at: str, n: int) -> Event:
        label = labels[len(labels) - len(inside) + inside.index(n)] if n in inside else labels[0]
        event: Event = {
            "event_id": f"{series.org_code}:AE{series.fields['tag']}{n:02d}",
            "org_code": series.org_code,
            "channel": series.fields["channel"],
            "booked_at": booked_at,
        }
        if codes[label]:
            event["platform"] = codes[label]
        return event

    return make
