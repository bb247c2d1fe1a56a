"""The April 2020 uploads to the four remote-medicine platforms (`POST /v1/remote-uploads`).

2020年4月南京市远程医疗系统数据统计 prints each platform's month volumes (ECG cases and
consultations, lab reports and specimens, imaging reports and images) and its three
institutions with the most uploads. One upload event is one case, report or specimen (and
carries the report's images), so the month is about 0.9 million events:

- the top three of each platform upload exactly their printed figures; every other
  institution connected at the end of April uploads a share of the rest, each less than the
  third (so the top three are the printed ones);
- uploads the contract counts and lists as a problem: 南京市第一医院 uploads imaging reports
  without an imaging connection, an outpatient department uploads a lab specimen two days
  after its connection ended (20 April), and a centre sends ECG cases before its connection
  starts (in May);
- the consultation platform's April consultations (the bulletin prints only the cumulative
  110; `platforms.APRIL_CONSULTATIONS` of them are April's, the opening balance the rest);
- uploads one second either side of the month in `+08:00`, `Z` and `-04:00`, re-sent
  duplicates, and a regional imaging system whose clock writes UTC.
"""

from __future__ import annotations

import array
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.demo.bulletin import Bulletin
from services.demo.clock import apportion, date_text, day_factor, int_weight
from services.demo.daily import CountStreamPlan, Edge, Event, Series, with_edges
from services.demo.errors import PlanError
from services.demo.institutions import Institution, org_code_of
from services.demo.platforms import APRIL_CONSULTATIONS, UNCONNECTED_IMAGING_UPLOADER, ConnectionPlan

KIND = "remote_upload"
DUPLICATE_SHARE = 0.002
# The figure the top three are ranked by (contract revision 2).
MAIN_COUNT: Mapping[str, str] = {
    "consultation": "consultations",
    "ecg": "cases",
    "lab": "reports",
    "imaging": "reports",
}

_HOURS = (0, 0, 0, 0, 0, 0, 0.2, 1, 5, 7, 7, 6, 3, 4, 6, 6, 5, 3, 1.5, 1, 0.8, 0.5, 0.2, 0.1)
# Relative volume of an institution by level: a tertiary hospital reads far more than a clinic.
_LEVEL_WEIGHT: Mapping[str | None, float] = {
    "tertiary": 40.0,
    "secondary": 10.0,
    "primary": 1.0,
    "other": 0.4,
    None: 1.0,
}
# Images per imaging report, by the uploader's level (CT and MR series in hospitals, DR in centres).
_IMAGES_PER_REPORT: Mapping[str | None, float] = {"tertiary": 130.0, "secondary": 90.0, "primary": 35.0, "other": 50.0}
_CLOCKS: Mapping[tuple[str, str], int] = {("imaging", "D320105"): 0}  # 建邺区's regional system keeps UTC
EDGE_SERIES = ("lab", "reports", "H0007")


@dataclass(frozen=True, slots=True)
class _Uploads:
    """What one institution uploads to one platform in April: per-day counts of one count key."""

    platform: str
    key: str
    org_code: str
    daily: tuple[int, ...]


def _spread(total: int, rng: random.Random) -> tuple[int, ...]:
    weights = [int_weight(day_factor(date(2020, 4, d), True) * rng.lognormvariate(0, 0.15)) for d in range(1, 31)]
    return tuple(apportion(total, weights))


def _on_days(per_day: Mapping[int, int]) -> tuple[int, ...]:
    return tuple(per_day.get(d, 0) for d in range(1, 31))


def _share_out(total: int, members: Sequence[Institution], seed: str, below: int | None) -> dict[str, int]:
    """`total` over `members`, by level and chance; each part below `below` when given.

    A part that would reach `below` (and rank among the printed top three) is held just under
    it, and what it gives up is shared among the others, until every part fits.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, no secret
    weights = {m.org_code: int_weight(_LEVEL_WEIGHT[m.level] * rng.lognormvariate(0, 0.8)) for m in members}
    held: dict[str, int] = {}
    while True:
        free = [code for code in weights if code not in held]
        if not free:
            raise PlanError(f"{seed}: {total} cannot be shared out below {below} each")
        parts = dict(zip(free, apportion(total - sum(held.values()), [weights[c] for c in free]), strict=True))
        over = [code for code, part in parts.items() if below is not None and part >= below]
        if not over:
            return {**held, **parts}
        assert below is not None
        for code in over:
            held[code] = below - 1 - rng.randrange(max(1, below // 10))


def _volumes(
    bulletin: Bulletin, connections: ConnectionPlan, institutions: Mapping[str, Institution], seed: int
) -> list[_Uploads]:
    """Per platform, count key and institution: the April uploads that give every printed volume."""
    uploads: list[_Uploads] = []
    for platform in ("consultation", "ecg", "lab", "imaging"):
        figures = bulletin.remote_figures(platform)
        main = MAIN_COUNT[platform]
        members = [institutions[code] for code in connections.connected(platform)]
        top = [(org_code_of(t.unit), t.value) for t in bulletin.top_uploaders if t.platform == platform]
        fixed: list[_Uploads] = [
            _Uploads(platform, main, org, _spread(value, random.Random(f"{seed}:{platform}:{org}")))  # noqa: S311
            for org, value in top
        ]
        fixed += _trap_uploads(platform, main, connections)
        total = APRIL_CONSULTATIONS if platform == "consultation" else figures[main]
        rest = total - sum(sum(u.daily) for u in fixed)
        fixed_orgs = {u.org_code for u in fixed}
        others = [m for m in members if m.org_code not in fixed_orgs]
        if platform == "consultation":
            # A handful of consultations, requested by remote and community institutions.
            askers = [m for m in others if m.region == "aided" or m.level == "primary"]
            rng = random.Random(f"{seed}:consultation")  # noqa: S311 - reproducible demo data, no secret
            for n, member in enumerate(rng.sample(askers, rest)):
                uploads.append(_Uploads(platform, main, member.org_code, _on_days({3 + 5 * n: 1})))
            continue
        below = min(v for _, v in top) if top else None
        for org, part in _share_out(rest, others, f"{seed}:{platform}:{main}", below).items():
            if part:
                uploads.append(_Uploads(platform, main, org, _spread(part, random.Random(f"{seed}:{platform}:{org}"))))  # noqa: S311
        uploads += fixed
    uploads += _specimens(bulletin, connections, institutions, seed)
    return uploads


def _trap_uploads(platform: str, key: str, connections: ConnectionPlan) -> list[_Uploads]:
    """Uploads from institutions not connected that day: counted, and a problem to list."""
    if platform == "imaging":
        return [_Uploads(platform, key, UNCONNECTED_IMAGING_UPLOADER, _on_days({6: 9, 7: 11, 8: 8, 9: 5, 10: 4}))]
    if platform == "ecg":
        return [_Uploads(platform, key, connections.traps["ecg starts after April"].org_code, _on_days({28: 3}))]
    return []


def _specimens(
    bulletin: Bulletin, connections: ConnectionPlan, institutions: Mapping[str, Institution], seed: int
) -> list[_Uploads]:
    """Lab specimens, sent by centres and outpatient departments (one leaves the platform on 20 April)."""
    leaving = connections.traps["lab ends inside April"]
    last = (leaving.disconnected_on or date(2020, 5, 1)).day - 1
    # Two a day while connected, and one more two days after the connection ended.
    trap = _Uploads(
        "lab", "specimens", leaving.org_code, _on_days({**dict.fromkeys(range(1, last + 1), 2), last + 3: 1})
    )
    senders = [
        institutions[code]
        for code in connections.connected("lab")
        if institutions[code].level in {"primary", "other"} and institutions[code].kind == "other"
    ]
    rest = bulletin.remote_figures("lab")["specimens"] - sum(trap.daily)
    parts = _share_out(rest, senders, f"{seed}:lab:specimens", None)
    return [
        trap,
        *(
            _Uploads("lab", "specimens", org, _spread(part, random.Random(f"{seed}:lab:specimens:{org}")))  # noqa: S311
            for org, part in parts.items()
            if part
        ),
    ]


def _flags(total: int, count: int, rng: random.Random) -> bytes:
    flags = [1] * total + [0] * (count - total)
    rng.shuffle(flags)
    return bytes(flags)


def _extras(
    uploads: Sequence[_Uploads], bulletin: Bulletin, institutions: Mapping[str, Institution], seed: int
) -> dict[tuple[str, str, str], tuple[str, Any]]:
    """Per (platform, key, org): the per-event second count (ECG consultations, imaging images)."""
    extras: dict[tuple[str, str, str], tuple[str, Any]] = {}
    rng = random.Random(f"{seed}:remote:extras")  # noqa: S311 - reproducible demo data, no secret
    # ECG consultations: on cases of community centres (they ask the hospitals to read them).
    ecg = [u for u in uploads if u.platform == "ecg" and institutions[u.org_code].level == "primary"]
    consultations = apportion(bulletin.remote_figures("ecg")["consultations"], [sum(u.daily) for u in ecg])
    for u, n in zip(ecg, consultations, strict=True):
        extras[(u.platform, u.key, u.org_code)] = ("consultations", _flags(n, sum(u.daily), rng))
    # Imaging: every report carries its images; CT and MR series in hospitals, few in centres.
    imaging = [u for u in uploads if u.platform == "imaging"]
    weights = [
        int_weight(sum(u.daily) * _IMAGES_PER_REPORT.get(institutions[u.org_code].level, 50.0) * rng.uniform(0.8, 1.2))
        for u in imaging
    ]
    for u, images in zip(imaging, apportion(bulletin.remote_figures("imaging")["images"], weights), strict=True):
        per_report = apportion(images, [int_weight(rng.lognormvariate(0, 0.9)) for _ in range(sum(u.daily))])
        extras[(u.platform, u.key, u.org_code)] = ("images", array.array("I", per_report))
    return extras


_TAGS: Mapping[tuple[str, str], str] = {
    ("consultation", "consultations"): "RC",
    ("ecg", "cases"): "RE",
    ("lab", "reports"): "RL",
    ("lab", "specimens"): "RS",
    ("imaging", "reports"): "RI",
}


def _build(series: Series, stamps: Sequence[str], ordinal: int, first: int) -> list[Event]:
    fields = series.fields
    org, platform, key = series.org_code, fields["platform"], fields["key"]
    prefix = f"{org}:{fields['tag']}{date_text(ordinal).replace('-', '')}"
    extra = fields.get("extra")
    if extra is None:
        return [
            {
                "event_id": f"{prefix}{n:05d}",
                "org_code": org,
                "platform": platform,
                "uploaded_at": when,
                "counts": {key: 1},
            }
            for n, when in enumerate(stamps, start=1)
        ]
    name, values = extra
    events: list[Event] = []
    for n, when in enumerate(stamps, start=1):
        counts = {key: 1}
        value = values[first + n - 1]
        if name == "images":
            counts["images"] = value
        elif value:
            counts[name] = 1
        events.append(
            {
                "event_id": f"{prefix}{n:05d}",
                "org_code": org,
                "platform": platform,
                "uploaded_at": when,
                "counts": counts,
            }
        )
    return events


def plan_remote(
    bulletin: Bulletin, connections: ConnectionPlan, institutions: Mapping[str, Institution], seed: int
) -> CountStreamPlan:
    """Every remote-platform upload of April 2020 (and the month's edges), decided."""
    uploads = _volumes(bulletin, connections, institutions, seed)
    extras = _extras(uploads, bulletin, institutions, seed)
    series: list[Series] = []
    edges: list[Edge] = []
    for u in sorted(uploads, key=lambda u: (u.platform, u.key, u.org_code)):
        fields: dict[str, Any] = {"platform": u.platform, "key": u.key, "tag": _TAGS[(u.platform, u.key)]}
        if (u.platform, u.key, u.org_code) in extras:
            fields["extra"] = extras[(u.platform, u.key, u.org_code)]
        one = Series(
            kind=KIND,
            key=f"{seed}:remote:{u.platform}:{u.key}:{u.org_code}",
            org_code=u.org_code,
            daily=u.daily,
            hours=_HOURS,
            build=_build,
            fields=fields,
            clock=_CLOCKS.get((u.platform, u.org_code), 480),
            duplicate_share=DUPLICATE_SHARE,
        )
        if (u.platform, u.key, u.org_code) == EDGE_SERIES:
            one, edges = with_edges(one, _edge_maker(one))
        series.append(one)
    return CountStreamPlan(KIND, tuple(series), tuple(edges))


def _edge_maker(series: Series) -> Callable[[str, int], Event]:
    def make(uploaded_at: str, n: int) -> Event:
        return {
            "event_id": f"{series.org_code}:E{series.fields['tag']}{n:02d}",
            "org_code": series.org_code,
            "platform": series.fields["platform"],
            "uploaded_at": uploaded_at,
            "counts": {series.fields["key"]: 1},
        }

    return make
