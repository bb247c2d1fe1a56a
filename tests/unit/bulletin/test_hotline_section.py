"""The bulletin's 12320 section: the printed words and cells of April 2020, and the centres' problems.

The expected words and figures are the printed bulletin's (the package's copy of its CSV files,
and the bulletin text itself when the shared reference folder sits beside the repository).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.bulletin.render import render_html
from services.contract.models import Region
from services.streams.hotline.report import Centre, HotlineHistory, HotlineInputs, hotline_report
from tests.unit.bulletin.factories import bulletin_data
from tests.unit.bulletin.page import Node, parse, problems, table_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")
APRIL = date(2020, 4, 1)
AFTER_APRIL = datetime(2020, 5, 19, 9, 30, tzinfo=SHANGHAI)
REPO = Path(__file__).resolve().parents[3]
BULLETIN_DIR = REPO / "services" / "demo" / "data" / "bulletin-2020-04"
REFERENCE_DIR = REPO / "services" / "demo" / "data" / "reference-2020-04"
SHARED_TEXT = REPO.parent / "shared" / "reference" / "nanjing-2020-04" / "000_58552c572adb4570.txt"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


PARAGRAPH = _csv(BULLETIN_DIR / "hotline_2020-04.csv")
PROVINCE = _csv(BULLETIN_DIR / "hotline_province_2020-04.csv")
CENTRES = [
    Centre(r["org_code"], r["name"], r["city"] or None, Region(r["region"] or "city"))
    for r in _csv(REFERENCE_DIR / "institutions.csv")
    if r["kind"] == "hotline"
]
CODE = {c.name.removesuffix("12320"): c.org_code for c in CENTRES}


def _april_counts() -> dict[str, dict[str, int]]:
    """The printed figures as category counts: 南京's every figure; the other centres' calls, whose
    categories are not printed, all as consultations."""
    counts = {CODE[r["city"]]: {"consultation": int(r["calls"])} for r in PROVINCE if r["city"] != "合计"}
    counts[CODE["南京"]] = {
        r["figure"].removeprefix("work_orders_"): int(r["value"]) for r in PARAGRAPH if r["figure"] != "calls"
    }
    return counts


def _inputs(
    counts: Mapping[str, Mapping[str, int]] | None = None,
    daily: Mapping[str, Mapping[date, int]] | None = None,
    previous: Mapping[str, Mapping[date, Mapping[str, int]]] | None = None,
    centres: list[Centre] = CENTRES,
) -> HotlineInputs:
    every_day = {date(2020, 4, d): 5 for d in range(1, 31)}
    daily = daily if daily is not None else {c.org_code: every_day for c in centres}
    report = hotline_report(centres, _april_counts() if counts is None else counts)
    return HotlineInputs(APRIL, centres, report, HotlineHistory(daily, previous or {}))


def _page(inputs: HotlineInputs | None, now: datetime = AFTER_APRIL, **fields: object) -> tuple[str, Node]:
    html = render_html(bulletin_data(hotline=inputs, **fields), now=now, zone=SHANGHAI, conformance_threshold=0.95)
    return html, parse(html)


def _prose(page: Node, org_code: str | None = None) -> str:
    for node in page.iter("p"):
        if "prose" in node.attrs.get("class", "") and node.attrs.get("data-org-code") == org_code:
            return node.text()
    raise KeyError(org_code)


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_city_centres_paragraph_says_every_printed_figure_in_the_printed_words_and_order() -> None:
    _, page = _page(_inputs())
    sentence = _prose(page, CODE["南京"])
    assert sentence.startswith("2020年4月，南京12320卫生热线共受理咨询电话136783个，其中")
    at = 0
    for row in PARAGRAPH:
        found = sentence.find(row["printed_as"], at)
        assert found >= 0, (row["printed_as"], sentence)
        at = found + len(row["printed_as"])
    # Only the city's own centre has a paragraph (region city); the others are in the province table.
    assert [n.attrs.get("data-org-code") for n in page.iter("p") if "prose" in n.attrs.get("class", "")] == [
        CODE["南京"],
        None,
    ]


def test_the_province_sentence_names_every_city_with_its_printed_calls_in_order() -> None:
    _, page = _page(_inputs())
    sentence = page.by_id("hotline-province-sentence").text()
    cities = "、".join(f"{r['city']}{r['calls']}人次" for r in PROVINCE if r["city"] != "合计")
    assert sentence == f"4月，全省12320共接听电话{PROVINCE[-1]['calls']}人次，各市电话量统计为：{cities}。"


@pytest.mark.skipif(not SHARED_TEXT.is_file(), reason=f"no shared bulletin text at {SHARED_TEXT}")
def test_both_sentences_are_word_for_word_the_published_bulletins() -> None:
    _, page = _page(_inputs())
    published = SHARED_TEXT.read_text(encoding="utf-8")
    assert _prose(page, CODE["南京"]) in published
    assert page.by_id("hotline-province-sentence").text() in published


def test_the_tables_carry_the_printed_cells() -> None:
    _, page = _page(_inputs())
    figures = {
        r.attrs["data-figure"]: _number(r.cells[1]) for r in table_rows(page, f"hotline-categories-{CODE['南京']}")
    }
    assert figures == {r["figure"]: int(r["value"]) for r in PARAGRAPH}
    rows = table_rows(page, "hotline-province")
    printed = [(r["city"], int(r["calls"])) for r in PROVINCE]
    assert [(r.cells[0], _number(r.cells[2])) for r in rows[:-1]] == printed[:-1]
    assert [r.attrs.get("data-org-code") for r in rows[:-1]] == [CODE[city] for city, _ in printed[:-1]]
    assert _number(rows[-1].cells[0]) == printed[-1][1] == 179_331  # the total row: 合计 is its header cell
    nanjing = rows[0].cells
    assert [_number(c) for c in nanjing[2:]] == [int(r["value"]) for r in PARAGRAPH]


def test_the_section_comes_first_as_printed_and_only_where_there_are_centres() -> None:
    html, page = _page(_inputs())
    assert html.index('id="hotline"') < html.index('id="district-uploads"')
    assert len(page.by_id("hotline").iter("svg")) == 2  # the city centre's categories, the province's centres
    for inputs in (None, _inputs(counts={}, centres=[])):
        html, _ = _page(inputs)
        assert 'id="hotline"' not in html and "12320" not in html


def test_a_centres_own_page_has_its_row_and_no_province_sentence() -> None:
    own = [c for c in CENTRES if c.org_code == CODE["苏州"]]
    html, page = _page(_inputs(centres=own), org_code=CODE["苏州"], districts=[], hospitals=[], kiosks=[], details={})
    assert [r.attrs.get("data-org-code") for r in table_rows(page, "hotline-province")[:-1]] == [CODE["苏州"]]
    assert 'id="hotline-province-sentence"' not in html and "南京12320" not in html
    assert "范围 苏州12320（L3205）" in page.iter("header")[0].text()


# --- problems --------------------------------------------------------------------------------

L1, L2 = Centre("L1", "南京12320", "南京市"), Centre("L2", "苏州12320", "苏州市", Region.OTHER)
MARCH, FEBRUARY, JANUARY = date(2020, 3, 1), date(2020, 2, 1), date(2020, 1, 1)


def _april(*silent: int, per_day: int = 5) -> dict[date, int]:
    return {date(2020, 4, d): per_day for d in range(1, 31) if d not in silent}


def _listed(
    counts: Mapping[str, Mapping[str, int]],
    daily: Mapping[str, Mapping[date, int]],
    previous: Mapping[str, Mapping[date, Mapping[str, int]]] | None = None,
    now: datetime = AFTER_APRIL,
) -> dict[str, list[tuple[str, str, list[str]]]]:
    _, page = _page(_inputs(counts, daily, previous, centres=[L1, L2]), now=now)
    return {org: found for org, found in problems(page).items() if org in ("L1", "L2")}


def test_a_centre_silent_all_month_is_listed_with_what_it_sent_the_month_before() -> None:
    listed = _listed(
        {"L1": {"consultation": 150}},
        {"L1": _april()},
        {"L2": {MARCH: {"consultation": 900, "appointment": 100, "city_12345": 7, "province_12345": 3}}},
    )
    assert listed == {
        "L2": [
            (
                "hotline_no_contacts",
                "已过 30 天，无一天有来电或工单；上月受理电话 1,000 个、工单 10 件",
                ["4月1日–30日（30天）"],
            )
        ]
    }


def test_three_silent_days_in_a_row_are_listed_two_are_not() -> None:
    listed = _listed(
        {"L1": {"consultation": 135}, "L2": {"consultation": 140}},
        {"L1": _april(10, 11, 12, 20), "L2": _april(5, 6, 29, 30)},
    )
    assert listed == {
        "L1": [("hotline_silent_days", "已过 30 天中 3 天无来电或工单（连续 3 天及以上）", ["4月10日–12日（3天）"])]
    }


def test_silence_is_not_judged_before_three_days_of_the_month_are_over() -> None:
    second = datetime(2020, 4, 3, 8, 0, tzinfo=SHANGHAI)  # April 1 and 2 are over
    assert _listed({}, {}, now=second) == {}
    third = second + timedelta(days=1)
    assert [check for check, _, _ in _listed({}, {}, now=third)["L1"]] == ["hotline_no_contacts"]


def test_a_category_that_stops_is_listed_once_the_month_is_over() -> None:
    counts = {"L1": {"consultation": 500, "voice_qa": 3}, "L2": {"consultation": 20}}
    previous = {"L1": {MARCH: {"consultation": 480, "appointment": 400, "complaint": 2, "province_12345": 9}}}
    daily = {"L1": _april(), "L2": _april()}
    assert _listed(counts, daily, previous)["L1"] == [
        (
            "hotline_category_stopped",
            "3 个类别上月有、本月为 0",
            ["医疗服务投诉（上月 2 个）", "电话预约（上月 400 个）", "省12345工单（上月 9 件）"],
        )
    ]
    during = datetime(2020, 4, 20, 12, 0, tzinfo=SHANGHAI)
    assert _listed(counts, daily, previous, now=during) == {}


@pytest.mark.parametrize(
    ("calls", "listed"),
    [(1330, False), (1340, True), (670, False), (660, True)],
)
def test_calls_more_than_a_third_off_the_three_months_before_are_listed(calls: int, listed: bool) -> None:
    previous = {"L1": {m: {"consultation": 1000} for m in (MARCH, FEBRUARY, JANUARY)}}
    found = _listed(
        {"L1": {"consultation": calls}, "L2": {"consultation": 1}}, {"L1": _april(), "L2": _april()}, previous
    )
    change = f"{(calls - 1000) / 1000:+.0%}"
    want = [
        (
            "hotline_calls_outlier",
            f"受理电话 {calls:,} 个，前三个月平均 1,000 个（{change}）",
            ["3月 1,000 个", "2月 1,000 个", "1月 1,000 个"],
        )
    ]
    assert found == ({"L1": want} if listed else {})


def test_no_outlier_without_three_months_to_compare_with() -> None:
    previous = {"L1": {MARCH: {"consultation": 1000}, FEBRUARY: {"consultation": 1000}}}
    assert (
        _listed({"L1": {"consultation": 5000}, "L2": {"consultation": 1}}, {"L1": _april(), "L2": _april()}, previous)
        == {}
    )
