"""The demo's remote-medicine platform connections and booking platforms, made up to the printed counts.

The bulletin's remote-platform section gives connected institutions as counts by kind and
place ("南京市内二级以上医疗机构22家", "覆盖10个区的社区卫生服务中心", "联通...4个城市"), not lists.
`plan_connections()` makes up who is connected, and since when, so that every printed count
comes out of the contract's definitions (an institution is connected at the end of April if
`connected_on` <= 30 April and `disconnected_on` is empty or later), and checks it.

Besides the connections that count, the plan has the traps a platform must not fall for:
a connection that starts after April, one that ends inside it, one that ended before it,
and one that was closed and re-opened (two rows, one institution). None of them changes a
printed count when counted right, and each changes one when counted wrong.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.demo.bulletin import REMOTE_CONNECTED_FIGURES, Bulletin, load_bulletin
from services.demo.errors import PlanError
from services.demo.institutions import Institution, all_institutions

Platform = str  # consultation, ecg, lab, imaging
PLATFORMS: tuple[Platform, ...] = ("consultation", "ecg", "lab", "imaging")
MONTH_END = date(2020, 4, 30)

# When each platform went live: every connection that counts starts between then and March 2020.
LAUNCHED: Mapping[Platform, date] = {
    "consultation": date(2016, 11, 1),
    "ecg": date(2015, 10, 1),
    "lab": date(2016, 6, 1),
    "imaging": date(2017, 1, 1),
}

# Consultations on the consultation platform in April 2020. The bulletin prints only the
# cumulative figure (110); the April share is the demo's, and the opening balance is the rest.
APRIL_CONSULTATIONS = 6

# Booking platforms of 分途径预约情况统计, in printed order, with the channel their bookings
# come through. The printed figures decide the channels: 健康南京客户端, the 12320 WeChat
# platform and the 12320 website add up to 79,337, exactly the online-12320 column, so every
# online booking names its platform; the other five (19,095) are third-party bookings, and the
# rest of that column (47,896: hospitals' own channels, which the table leaves out) names none.
BOOKING_PLATFORMS: tuple[tuple[str, str, str], ...] = (
    ("jkn-app", "健康南京客户端", "online_12320"),
    ("nj12320-wechat", "南京卫生12320微信平台", "online_12320"),
    ("nj12320-quick", "12320快速预约", "third_party"),
    ("js-yygh", "江苏省预约挂号网", "third_party"),
    ("nj12320-web", "南京卫生12320网", "online_12320"),
    ("mynj-app", "我的南京客户端", "third_party"),
    ("jiuyi160", "就医160", "third_party"),
    ("weimai", "微脉科技", "third_party"),
)


@dataclass(frozen=True, slots=True)
class Connection:
    """Row of platform_connections.csv."""

    platform: Platform
    org_code: str
    connected_on: date
    disconnected_on: date | None = None

    def at_month_end(self) -> bool:
        """Connected at the end of April 2020 (the contract's rule)."""
        return self.connected_on <= MONTH_END and (self.disconnected_on is None or self.disconnected_on > MONTH_END)


@dataclass(frozen=True, slots=True)
class _Spec:
    """Who a platform connects: named institutions, then centres and clinics drawn by district."""

    named: tuple[str, ...]
    primary: int
    primary_districts: tuple[str, ...]
    clinics: int
    clinic_districts: tuple[str, ...]


_ALL_DISTRICTS = (
    "玄武区",
    "秦淮区",
    "建邺区",
    "鼓楼区",
    "浦口区",
    "栖霞区",
    "雨花台区",
    "江宁区",
    "六合区",
    "溧水区",
    "高淳区",
    "江北新区",
)
_ECG_DISTRICTS = tuple(d for d in _ALL_DISTRICTS if d not in {"秦淮区", "建邺区"})
_LAB_DISTRICTS = ("玄武区", "秦淮区", "建邺区", "鼓楼区", "栖霞区", "雨花台区", "江宁区")
_IMAGING_DISTRICTS = tuple(d for d in _ALL_DISTRICTS if d not in {"溧水区", "高淳区"})

SPECS: Mapping[Platform, _Spec] = {
    # 22 city hospitals of level secondary or above, 13 centres, 1 metro, 7 aided, 4 other.
    "consultation": _Spec(
        named=(
            *(f"H{n:04d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 21, 27, 28, 32, 39, 40, 43)),
            "X340501",
            *(f"A{n:02d}" for n in range(1, 8)),
            "O01",
            "O02",
            "O03",
            "O04",
        ),
        primary=13,
        primary_districts=_ALL_DISTRICTS,
        clinics=0,
        clinic_districts=(),
    ),
    # 12 city tertiary hospitals (the top three uploaders first), 6 secondary, 7 institutions
    # of three metro cities, centres of exactly 10 districts, and outpatient departments.
    "ecg": _Spec(
        named=(
            *(f"H{n:04d}" for n in (2, 3, 9, 4, 7, 8, 10, 16, 21, 27, 28, 32)),
            *(f"H{n:04d}" for n in (15, 37, 39, 40, 43, 45)),
            *(code for code in ("X340501", "X340502", "X340503", "X321101", "X321102", "X321001", "X321002")),
        ),
        primary=104,
        primary_districts=_ECG_DISTRICTS,
        clinics=20,
        clinic_districts=_ALL_DISTRICTS,
    ),
    # 19 hospitals of level secondary or above, everything within 7 districts.
    "lab": _Spec(
        named=tuple(f"H{n:04d}" for n in (7, 12, 9, 1, 2, 3, 4, 5, 6, 10, 11, 14, 16, 18, 27, 31, 32, 33, 46)),
        primary=70,
        primary_districts=_LAB_DISTRICTS,
        clinics=31,
        clinic_districts=_LAB_DISTRICTS,
    ),
    # 9 hospitals of level secondary or above, 建邺区's regional imaging centre, 10 districts.
    "imaging": _Spec(
        named=("D320105", *(f"H{n:04d}" for n in (4, 48, 3, 8, 27, 38, 39, 41, 45))),
        primary=104,
        primary_districts=_IMAGING_DISTRICTS,
        clinics=65,
        clinic_districts=_IMAGING_DISTRICTS,
    ),
}

# An imaging uploader the plan never connects: its uploads count, and are a problem to list.
UNCONNECTED_IMAGING_UPLOADER = "H0007"


@dataclass(frozen=True, slots=True)
class ConnectionPlan:
    """The connections of the demo and what each row is there for."""

    connections: tuple[Connection, ...]
    """Rows of platform_connections.csv, sorted by (platform, org_code, connected_on)."""
    traps: Mapping[str, Connection]
    """The rows that must not count at the end of April (or count once), by what they test."""

    def connected(self, platform: Platform) -> tuple[str, ...]:
        """org_codes connected to `platform` at the end of April 2020, sorted."""
        return tuple(sorted({c.org_code for c in self.connections if c.platform == platform and c.at_month_end()}))


def _date_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _draw(
    rng: random.Random, pool: Sequence[Institution], districts: Sequence[str], count: int, what: str
) -> list[Institution]:
    """`count` institutions of `pool` in `districts`, at least one in each district."""
    candidates = [i for i in pool if i.district in districts]
    if count < len(districts) or count > len(candidates):
        raise PlanError(f"cannot draw {count} {what} covering {len(districts)} districts from {len(candidates)}")
    first = [rng.choice([i for i in candidates if i.district == d]) for d in districts]
    rest = rng.sample([i for i in candidates if i not in first], count - len(first))
    return sorted([*first, *rest], key=lambda i: i.org_code)


def plan_connections(
    bulletin: Bulletin | None = None, institutions: Iterable[Institution] | None = None
) -> ConnectionPlan:
    """Who is connected to which remote platform, since when; checked against the printed counts."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    known = {i.org_code: i for i in (institutions if institutions is not None else all_institutions())}
    centres = [i for i in known.values() if i.org_code.startswith("C")]
    clinics = [i for i in known.values() if i.org_code.startswith("M")]
    rows: list[Connection] = []
    for platform in PLATFORMS:
        spec = SPECS[platform]
        rng = random.Random(f"connections:{platform}")  # noqa: S311 - reproducible demo data, no secret
        launched = LAUNCHED[platform]
        for n, code in enumerate(spec.named):
            if code not in known:
                raise PlanError(f"{platform}: {code} is not an institution of the demo")
            # Hospitals joined in the platform's first year, the top uploaders at launch.
            start = launched if n < 3 else _date_between(rng, launched, launched + timedelta(days=365))
            rows.append(Connection(platform, code, start))
        drawn = _draw(rng, centres, spec.primary_districts, spec.primary, f"{platform} centres")
        if spec.clinics:
            drawn += _draw(rng, clinics, spec.clinic_districts, spec.clinics, f"{platform} clinics")
        rows.extend(Connection(platform, i.org_code, _date_between(rng, launched, date(2020, 3, 31))) for i in drawn)
    traps = _traps(rows, known)
    # A trap's institution has only the trap's rows on that platform.
    trapped = {(t.platform, t.org_code) for t in traps.values()}
    rows = [r for r in rows if (r.platform, r.org_code) not in trapped]
    rows.extend(traps.values())
    plan = ConnectionPlan(tuple(sorted(rows, key=lambda c: (c.platform, c.org_code, c.connected_on))), traps)
    problems = [
        f"{p}: {what}" for p in PLATFORMS for what in check_printed_counts(plan, known, p, bulletin.remote_figures(p))
    ]
    if problems:
        raise PlanError("; ".join(problems))
    return plan


def _traps(rows: Sequence[Connection], known: Mapping[str, Institution]) -> dict[str, Connection]:
    ecg_centre = next(r for r in rows if r.platform == "ecg" and r.org_code.startswith("C"))
    return {
        # A centre of 秦淮区, the eleventh district if counted: it joins ECG in May.
        "ecg starts after April": Connection("ecg", _first_centre(known, "秦淮区"), date(2020, 5, 11)),
        # Closed in 2018 and re-opened in 2019: one institution, two rows.
        "ecg closed and re-opened (first row)": Connection(
            "ecg", ecg_centre.org_code, date(2017, 3, 1), date(2018, 9, 1)
        ),
        "ecg closed and re-opened (second row)": Connection("ecg", ecg_centre.org_code, date(2019, 4, 15)),
        # An outpatient department of 浦口区 (an eighth district if counted) leaves the lab
        # platform on 20 April; it uploads before and once after.
        "lab ends inside April": Connection("lab", _first_clinic(known, "浦口区"), date(2018, 5, 2), date(2020, 4, 20)),
        # 高淳区 (an eleventh district if counted) left imaging before April ...
        "imaging ended before April": Connection(
            "imaging", _first_clinic(known, "高淳区"), date(2018, 3, 1), date(2019, 12, 1)
        ),
        # ... and another of its outpatient departments joins in May.
        "imaging starts after April": Connection("imaging", _nth_clinic(known, "高淳区", 2), date(2020, 5, 6)),
        # An eighth aided institution joins the consultation platform in June.
        "consultation starts after April": Connection("consultation", "A08", date(2020, 6, 1)),
    }


def _first_centre(known: Mapping[str, Institution], district: str) -> str:
    return min(code for code, i in known.items() if code.startswith("C") and i.district == district)


def _first_clinic(known: Mapping[str, Institution], district: str) -> str:
    return _nth_clinic(known, district, 1)


def _nth_clinic(known: Mapping[str, Institution], district: str, n: int) -> str:
    return sorted(code for code, i in known.items() if code.startswith("M") and i.district == district)[n - 1]


def check_printed_counts(
    plan: ConnectionPlan, known: Mapping[str, Institution], platform: Platform, printed: Mapping[str, int]
) -> list[str]:
    """Differences between the plan's end-of-April connections and the printed counts of `platform`."""
    connected = [known[code] for code in plan.connected(platform)]

    def count(region: str | None = None, levels: Iterable[str] | None = None) -> int:
        wanted = set(levels) if levels is not None else None
        return sum(
            1
            for i in connected
            if (region is None or (i.region or "city") == region) and (wanted is None or i.level in wanted)
        )

    in_city = [i for i in connected if (i.region or "city") == "city"]
    figures = {
        "connected": len(connected),
        "cities": len({i.city for i in connected if i.city}),
        "districts": len({i.district for i in in_city if i.district}),
        "districts_primary": len({i.district for i in in_city if i.district and i.level == "primary"}),
        "city_secondary_plus": count("city", ("secondary", "tertiary")),
        "city_tertiary": count("city", ("tertiary",)),
        "city_primary": count("city", ("primary",)),
        "secondary_plus": count(None, ("secondary", "tertiary")),
        "metro": count("metro"),
        "aided": count("aided"),
        "other": count("city", ("other",)),
    }
    return [
        f"{name} {figures[name]}, printed {value}"
        for name, value in printed.items()
        if name in REMOTE_CONNECTED_FIGURES and figures[name] != value
    ]
