"""The bulletin's 远程医疗系统数据统计 (pure: the month's remote-platform data in, the section's parts out).

Each platform gets the printed bulletin's paragraph, its sentences in the printed words with the
figures of `GET /v1/reports/remote-platforms` put in (each number marked with the figure it is,
so the page can be checked figure by figure), then its top three uploaders; two charts show the
month's volumes and the connected institutions. The problem list gets the uploads made on days
their institution was not connected to the platform (`unconnected_remote_upload`). An
institution's bulletin shows its own figures as a table instead: the paragraphs speak of the
whole city.

The counts by kind and place are sums of the report's `by_region_level` rows: 二级以上 =
secondary + tertiary, 社区卫生服务中心 = primary, 其他机构 = the city's institutions of level
other (docs/contract-decisions.md). The print lists the connected cities of the ECG platform by
name; they are listed most connected institutions first, ties by the earliest connection.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup

from services.bulletin import charts
from services.contract.models import InstitutionLevel, Region, RemotePlatform
from services.reports import fmt
from services.storage.reference import ReferenceSnapshot
from services.streams.remote_uploads.model import MAIN_COUNT, PLATFORM_COUNTS, RemotePlatformFigures
from services.streams.remote_uploads.report import RemoteMonth, remote_report
from services.streams.remote_uploads.wording import COUNT_WORDS, PLATFORM_NAMES, counts_text

_SHORT: Mapping[RemotePlatform, str] = {
    RemotePlatform.CONSULTATION: "远程会诊",
    RemotePlatform.ECG: "心电",
    RemotePlatform.LAB: "临检",
    RemotePlatform.IMAGING: "影像",
}
# The printed paragraphs. {city}, {area}, {month} and {city_names} are words; every other
# placeholder is a figure: a field of the report's platform object or a sum of its rows (_derived).
PARAGRAPHS: Mapping[RemotePlatform, str] = {
    RemotePlatform.CONSULTATION: (
        "{city}远程医学会诊平台累计接入{connected}家医疗机构。其中{city}内二级以上医疗机构{city_secondary_plus}家，"
        "社区卫生服务中心{city_primary}家；{area}都市圈城市{metro}家，边远地区帮扶医疗机构{aided}家，"
        "其他机构{other}家，累计通过平台开展各类会诊{consultations_cumulative}次（未通过平台申请的会诊未统计在内）。"
    ),
    RemotePlatform.ECG: (
        "{city}远程心电监测诊断平台累计接入{connected}家医疗机构，联通{city_names}{cities}个城市。其中，"
        "{city}内接入三级医院{city_tertiary}家，覆盖{districts_primary}个区的社区卫生服务中心，"
        "以及{area}都市圈城市的{metro}家医疗机构。{month}月份采集心电病例{cases}份，会诊量{consultations}例。"
    ),
    RemotePlatform.LAB: (
        "{city}远程临检诊断平台累计接入{connected}家医疗机构，其中二级以上医疗机构{secondary_plus}家，"
        "覆盖市内{districts}个区。{month}月份共采集检验报告{reports}份，通过平台流转标本{specimens}份。"
    ),
    RemotePlatform.IMAGING: (
        "{city}远程影像诊断平台累计接入{connected}家医疗机构，其中二级以上医疗机构{secondary_plus}家，"
        "覆盖市内{districts}个区。{month}月份共采集影像报告{reports}份，图像量{images}份。"
    ),
}
_WORDS = frozenset({"city", "area", "month", "city_names"})
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PLUS = frozenset({InstitutionLevel.SECONDARY, InstitutionLevel.TERTIARY})
_RANKS = {2: "二", 3: "三"}


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a paragraph: words, or a number that is the report's figure `figure`."""

    text: str
    figure: str | None = None


@dataclass(frozen=True, slots=True)
class Paragraph:
    """One platform's paragraph."""

    platform: RemotePlatform
    pieces: tuple[Piece, ...]

    @property
    def text(self) -> str:
        """The paragraph as plain text."""
        return "".join(piece.text for piece in self.pieces)


@dataclass(frozen=True, slots=True)
class TopRow:
    """A row of the top-uploaders table."""

    platform: str
    rank: int
    org_code: str
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class OwnRow:
    """An institution's own figures on one platform (its bulletin)."""

    platform: str
    connected: bool
    counts: str


@dataclass(frozen=True)
class RemoteSection:
    """What the section's template shows."""

    scoped: bool
    """An institution's bulletin: `own` rows instead of the city's paragraphs."""
    paragraphs: tuple[Paragraph, ...]
    top: tuple[TopRow, ...]
    own: tuple[OwnRow, ...]
    charts: Mapping[str, Markup]


def _number(value: int | None) -> str:
    # Digits without separators, as the bulletin prints them in its sentences.
    return "—" if value is None else str(value)


def _derived(figures: RemotePlatformFigures) -> dict[str, int]:
    """The printed counts by kind and place, from the `by_region_level` rows."""

    def count(region: Region | None, levels: frozenset[InstitutionLevel] | None) -> int:
        return sum(
            row.count
            for row in figures.by_region_level
            if (region is None or row.region is region) and (levels is None or row.level in levels)
        )

    return {
        "city_secondary_plus": count(Region.CITY, _PLUS),
        "city_tertiary": count(Region.CITY, frozenset({InstitutionLevel.TERTIARY})),
        "city_primary": count(Region.CITY, frozenset({InstitutionLevel.PRIMARY})),
        "secondary_plus": count(None, _PLUS),
        "metro": count(Region.METRO, None),
        "aided": count(Region.AIDED, None),
        "other": count(Region.CITY, frozenset({InstitutionLevel.OTHER})),
    }


def home_city(ref: ReferenceSnapshot) -> str:
    """The platform's own city: the `city` most institutions of region city have (ties: the first name)."""
    cities = Counter(info.city for info in ref.institution_info.values() if info.region is Region.CITY and info.city)
    if not cities:
        return "本市"
    return min(cities, key=lambda name: (-cities[name], name))


def connected_cities(ref: ReferenceSnapshot, platform: RemotePlatform, month: date) -> list[str]:
    """The cities of the institutions connected at the month's end: most institutions first, then the earliest."""
    members: dict[str, list[date]] = {}
    spans = ref.connections.get(platform, {})
    for org in ref.connected_at_month_end(platform, month):
        info = ref.institution_info.get(org)
        if info is not None and info.city:
            members.setdefault(info.city, []).append(min(span.start for span in spans[org]))
    return sorted(members, key=lambda city: (-len(members[city]), min(members[city]), city))


def _listed(names: Sequence[str]) -> str:
    """甲、乙和丙."""
    if len(names) < 2:
        return "".join(names)
    return "、".join(names[:-1]) + "和" + names[-1]


def _paragraph(figures: RemotePlatformFigures, words: Mapping[str, str]) -> list[Piece]:
    values: dict[str, int | None] = {**figures.model_dump(), **_derived(figures)}
    pieces: list[Piece] = []
    at = 0
    template = PARAGRAPHS[figures.platform]
    for match in _PLACEHOLDER.finditer(template):
        name = match[1]
        pieces.append(Piece(template[at : match.start()]))
        pieces.append(Piece(words[name]) if name in _WORDS else Piece(_number(values[name]), name))
        at = match.end()
    pieces.append(Piece(template[at:]))
    return [piece for piece in pieces if piece.text]


def _top_sentence(figures: RemotePlatformFigures, month: int) -> list[Piece]:
    unit = COUNT_WORDS[(figures.platform, MAIN_COUNT[figures.platform])][1]
    top = figures.top_uploaders
    if not top:
        return [Piece(f"{month}月无数据上传。")]
    if len(top) == 1:
        return [
            Piece(f"{month}月仅{top[0].name}上传数据，共"),
            Piece(str(top[0].value), "top_uploaders"),
            Piece(f"{unit}。"),
        ]
    pieces = [Piece(f"{month}月数据上传量排名前{_RANKS[len(top)]}的分别是")]
    for n, uploader in enumerate(top):
        pieces += [Piece(("，" if n else "") + uploader.name), Piece(str(uploader.value), "top_uploaders"), Piece(unit)]
    return [*pieces, Piece("。")]


def _charts(platforms: Sequence[RemotePlatformFigures]) -> dict[str, Markup]:
    volumes = [
        charts.Bar(f"{_SHORT[p.platform]} {COUNT_WORDS[(p.platform, key)][0]}", value, fmt.integer(value))
        for p in platforms
        for key in PLATFORM_COUNTS[p.platform]
        # Images run to millions, a scale on which every other bar would vanish; they are in the text.
        if key != "images"
        for value in (getattr(p, key),)
    ]
    connected = [charts.Bar(PLATFORM_NAMES[p.platform], p.connected, fmt.integer(p.connected)) for p in platforms]
    return {
        "remote_volumes": charts.bar_chart(volumes, "各远程医疗平台本月上传量"),
        "remote_connected": charts.bar_chart(connected, "各远程医疗平台接入机构"),
    }


def remote_section(data: RemoteMonth) -> RemoteSection:
    """The section for `data`'s reader: the city's paragraphs (admin) or the institution's own table."""
    report = remote_report(data)
    city = home_city(data.ref)
    paragraphs = []
    top = []
    for figures in report.platforms:
        words = {
            "city": city,
            "area": city.removesuffix("市"),
            "month": str(data.month.month),
            "city_names": _listed(connected_cities(data.ref, figures.platform, data.month)),
        }
        pieces = [*_paragraph(figures, words), *_top_sentence(figures, data.month.month)]
        paragraphs.append(Paragraph(figures.platform, tuple(pieces)))
        top += [
            TopRow(PLATFORM_NAMES[figures.platform], rank, u.org_code, u.name, fmt.integer(u.value))
            for rank, u in enumerate(figures.top_uploaders, start=1)
        ]
    own = tuple(
        OwnRow(
            PLATFORM_NAMES[p.platform],
            p.connected > 0,
            counts_text(p.platform, {key: getattr(p, key) for key in PLATFORM_COUNTS[p.platform]}),
        )
        for p in report.platforms
    )
    return RemoteSection(
        scoped=data.org_code is not None,
        paragraphs=tuple(paragraphs),
        top=tuple(top),
        own=own,
        charts=_charts(report.platforms),
    )
