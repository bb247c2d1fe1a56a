"""The April 2020 calls and work orders of the province's 12320 centres (`POST /v1/hotline-contacts`).

南京12320卫生热线2020年4月数据统计 gives the Nanjing centre's calls by category and the 12345
work orders it received; 4月全省12320 gives the calls of every city's centre. Each printed
figure is one or more `Series` (contacts per day, spread over the hours). The other cities'
centres have no categories in print: the demo splits their calls over the categories a
centre without a booking line answers (no `appointment` calls, so that no city's phone
bookings are expected to match), and they receive no work orders.

The stream also has: calls one second either side of the month in `+08:00`, `Z` and
`-04:00`, re-sent duplicates, and one centre whose switch writes UTC.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from datetime import date

from services.demo.bulletin import HOTLINE_CALL_CATEGORIES, Bulletin
from services.demo.clock import apportion, date_text, day_factor, int_weight
from services.demo.daily import CountStreamPlan, Edge, Event, Series, with_edges
from services.demo.institutions import hotline_centre_of

KIND = "hotline_contact"
DUPLICATE_SHARE = 0.002
WORK_ORDERS = ("city_12345", "province_12345")

# Calls around the clock with office-hour peaks; crisis calls lean to the evening and night;
# work orders are taken in office hours.
_CALL_HOURS = (0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 2, 6, 8, 8, 7, 4, 5, 7, 7, 6, 4, 3, 3, 2.5, 2, 1.2, 0.6)
_CRISIS_HOURS = (2, 1.5, 1, 0.8, 0.5, 0.5, 0.5, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 4, 4, 4, 3.5, 3)
_OFFICE_HOURS = (0, 0, 0, 0, 0, 0, 0, 0, 6, 8, 8, 6, 1, 4, 7, 7, 6, 2, 0, 0, 0, 0, 0, 0)
# How the other centres' calls split (not printed): relative weights of the categories.
_OTHER_CENTRE_MIX: Mapping[str, int] = {
    "consultation": 860,
    "complaint": 25,
    "crisis_intervention": 10,
    "satisfaction_survey": 40,
    "voice_qa": 65,
}
# Centres whose switch writes another offset than +08:00.
_CLOCKS: Mapping[str, int] = {"无锡": 0}
EDGE_SERIES = ("南京", "consultation")


def _daily(total: int, office: bool, rng: random.Random) -> tuple[int, ...]:
    weights = [
        int_weight((day_factor(date(2020, 4, d), False) if office else 1.0) * rng.lognormvariate(0, 0.12))
        for d in range(1, 31)
    ]
    return tuple(apportion(total, weights))


def _build(series: Series, stamps: Sequence[str], ordinal: int, first: int) -> list[Event]:
    org, kind, category = series.org_code, series.fields["kind"], series.fields["category"]
    prefix = f"{org}:{series.fields['tag']}{date_text(ordinal).replace('-', '')}"
    return [
        {"event_id": f"{prefix}{n:05d}", "org_code": org, "kind": kind, "category": category, "occurred_at": when}
        for n, when in enumerate(stamps, start=1)
    ]


def _series(seed: int, city: str, kind: str, category: str, total: int) -> Series:
    org = hotline_centre_of(city)
    key = f"{seed}:hotline:{org}:{category}"
    rng = random.Random(key)  # noqa: S311 - reproducible demo data, no secret
    office = kind == "work_order"
    hours = _OFFICE_HOURS if office else _CRISIS_HOURS if category == "crisis_intervention" else _CALL_HOURS
    tag = f"{'W' if office else 'C'}{category[:3].upper()}"
    return Series(
        kind=KIND,
        key=key,
        org_code=org,
        daily=_daily(total, office, rng),
        hours=hours,
        build=_build,
        fields={"kind": kind, "category": category, "tag": tag},
        clock=_CLOCKS.get(city, 480),
        duplicate_share=DUPLICATE_SHARE,
    )


def plan_hotline(bulletin: Bulletin, seed: int) -> CountStreamPlan:
    """Every call and work order of April 2020 (and the month's edges), decided."""
    series: list[Series] = []
    edges: list[Edge] = []
    for category in HOTLINE_CALL_CATEGORIES:
        series.append(_series(seed, "南京", "call", category, bulletin.hotline_figure(category)))
    for order in WORK_ORDERS:
        series.append(_series(seed, "南京", "work_order", order, bulletin.hotline_figure(f"work_orders_{order}")))
    for row in bulletin.province_calls:
        if row.city == "南京":
            continue
        mix = list(_OTHER_CENTRE_MIX)
        for category, calls in zip(mix, apportion(row.calls, [_OTHER_CENTRE_MIX[c] for c in mix]), strict=True):
            if calls:
                series.append(_series(seed, row.city, "call", category, calls))
    for n, one in enumerate(series):
        if (one.org_code, one.fields["category"]) == (hotline_centre_of(EDGE_SERIES[0]), EDGE_SERIES[1]):
            series[n], edges = with_edges(one, _edge_maker(one))
    return CountStreamPlan(KIND, tuple(series), tuple(edges))


def _edge_maker(series: Series) -> Callable[[str, int], Event]:
    def make(occurred_at: str, n: int) -> Event:
        return {
            "event_id": f"{series.org_code}:E{series.fields['tag']}{n:02d}",
            "org_code": series.org_code,
            "kind": series.fields["kind"],
            "category": series.fields["category"],
            "occurred_at": occurred_at,
        }

    return make
