"""The bulletin's appointments section: both tables as printed, the to-date sentence, the channel
chart, and the problems it adds (and what it leaves alone because it is normal)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.bulletin import charts
from services.bulletin.render import render_html
from services.contract.models import InstitutionKind
from services.quality.appointments import AppointmentSection, appointment_problems
from services.quality.problems import InstitutionProblems, Problem, month_span, with_problems
from services.streams.appointments.model import (
    AppointmentReport,
    AppointmentRow,
    AppointmentTotal,
    BookingPlatformRow,
)
from tests.unit.bulletin.factories import bulletin_data
from tests.unit.bulletin.page import header_labels, parse, problems, table_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTER_APRIL = datetime(2020, 5, 19, 9, 30, tzinfo=SHANGHAI)
APRIL = date(2020, 4, 1)
SVG = "{http://www.w3.org/2000/svg}"
K = InstitutionKind


def row(org: str, name: str | None, *channels: int) -> AppointmentRow:
    online, phone, clinic, third = channels
    return AppointmentRow(
        org_code=org,
        name=name,
        online_12320=online,
        phone=phone,
        in_clinic=clinic,
        third_party=third,
        subtotal=online + phone + clinic + third,
    )


def report(rows: list[AppointmentRow], *, cumulative: int | None = 19_238_954, month: str = "2020-04") -> Any:
    # Totals and platforms written out from the rows here, as the printed tables add up.
    total = AppointmentTotal(
        online_12320=sum(r.online_12320 for r in rows),
        phone=sum(r.phone for r in rows),
        in_clinic=sum(r.in_clinic for r in rows),
        third_party=sum(r.third_party for r in rows),
        subtotal=sum(r.subtotal for r in rows),
    )
    platforms = [
        BookingPlatformRow(platform_code="jkn-app", name="健康南京客户端", appointments=55_439),
        BookingPlatformRow(platform_code="old-app", name=None, appointments=13),
        BookingPlatformRow(platform_code="weimai", name="微脉科技", appointments=0),
    ]
    return AppointmentReport(
        month=month,
        rows=rows,
        total=total,
        appointments_cumulative=cumulative,
        platforms=platforms,
        platforms_total=55_452,
    )


PRINTED = [
    row("H0004", "南京市儿童医院", 7220, 44374, 94274, 31087),
    row("H0002", "南京鼓楼医院", 46653, 14210, 24369, 28638),
]


def section(
    rows: list[AppointmentRow] = PRINTED,
    before: list[AppointmentRow] | None = None,
    kinds: dict[str, InstitutionKind] | None = None,
    **fields: Any,
) -> AppointmentSection:
    return AppointmentSection(
        report(rows, **fields),
        report(before if before is not None else rows, month="2020-03"),
        kinds if kinds is not None else dict.fromkeys((r.org_code for r in rows), K.HOSPITAL),
    )


def render(appointments: AppointmentSection | None, now: datetime = AFTER_APRIL, **fields: Any) -> str:
    data = bulletin_data(appointments=appointments, **fields)
    return render_html(data, now=now, zone=SHANGHAI, conformance_threshold=0.95)


def test_the_section_comes_before_the_upload_tables_with_the_printed_columns_and_cells() -> None:
    html = render(section())
    assert html.index('id="problem-counts"') < html.index('id="appointments"') < html.index('id="district-uploads"')
    assert html.index('id="appointments-by-institution"') < html.index('id="appointment-platforms-table"')
    page = parse(html)
    assert header_labels(page, "appointments-by-institution") == [
        "序号",
        "单位",
        "12320在线预约",
        "电话预约",
        "诊间预约",
        "第三方",
        "小计",
    ]
    rows = table_rows(page, "appointments-by-institution")
    assert [r.attrs.get("data-org-code") for r in rows] == ["H0004", "H0002", None]
    assert rows[0].cells == ["1", "南京市儿童医院", "7,220", "44,374", "94,274", "31,087", "176,955"]
    assert rows[1].cells == ["2", "南京鼓楼医院", "46,653", "14,210", "24,369", "28,638", "113,870"]
    assert rows[2].cells == ["53,873", "58,584", "118,643", "59,725", "290,825"]
    assert "（截止4月底，总预约挂号量为19,238,954次）" in page.by_id("appointments-to-date").text()
    assert header_labels(page, "appointment-platforms-table") == ["序号", "名称", "预约数量"]
    platforms = table_rows(page, "appointment-platforms-table")
    assert [p.cells for p in platforms] == [
        ["1", "健康南京客户端", "55,439"],
        ["2", "old-app（参考数据中已无此平台）", "13"],
        ["3", "微脉科技", "0"],
        ["55,452"],
    ]


def test_the_channel_chart_splits_each_institution_by_its_channels() -> None:
    page = parse(render(section()))
    svg = next(f for f in page.by_id("appointments").iter("figure")).iter("svg")[0]
    assert svg.attrs["role"] == "img"
    chart = str(
        charts.share_chart(
            [charts.Mix("甲", [1, 3, 0, 4], "8"), charts.Mix("乙", [0, 0, 0, 0], "0")], ["a", "b", "c", "d"], "t"
        )
    )
    bars = [r.attrib for r in ET.fromstring(chart).iter(f"{SVG}rect") if r.get("class") != "legend"]
    widths = [float(b["width"]) for b in bars]
    # No bar for a part of 0, none at all for 乙; widths are written to 0.1 px.
    assert len(bars) == 3 and widths[1] == pytest.approx(3 * widths[0], abs=0.2)
    assert widths[2] == pytest.approx(4 * widths[0], abs=0.2)
    x = [float(b["x"]) for b in bars]
    assert [x[1] - x[0], x[2] - x[0]] == pytest.approx([widths[0], widths[0] + widths[1]], abs=0.2)
    assert [b["fill"] for b in bars] == [charts.MIX_COLOURS[0], charts.MIX_COLOURS[1], charts.MIX_COLOURS[3]]
    legend = [t.text for t in ET.fromstring(chart).iter(f"{SVG}text")][-4:]
    assert legend == ["a", "b", "c", "d"]


def test_without_a_balance_the_total_to_date_is_unknown_and_an_institution_sees_no_city_figure() -> None:
    unknown = parse(render(section(cumulative=None))).by_id("appointments-to-date").text()
    assert "总预约挂号量未知" in unknown
    own = render(section([PRINTED[0]], cumulative=None), org_code="H0004")
    assert 'id="appointments-to-date"' not in own and "南京鼓楼医院" not in own


def test_no_section_without_the_report_and_a_month_without_bookings_says_so() -> None:
    assert 'id="appointments"' not in render(None)
    empty = parse(render(section([], before=[])))
    assert "本月无预约挂号" in empty.by_id("appointments").text()
    assert not empty.by_id("appointments").iter("figure")


def _problems(s: AppointmentSection, now: datetime = AFTER_APRIL) -> dict[str, list[tuple[str, str]]]:
    found = appointment_problems(s, month_span(APRIL, now, SHANGHAI))
    return {inst.org_code: [(p.check, p.figure) for p in inst.problems] for inst in found}


def test_what_is_normal_is_not_flagged() -> None:
    # The printed tables: platforms add up to less than online + third party, two hospitals, a
    # community centre (kind other) with bookings, everyone booked in March too.
    rows = [*PRINTED, row("C01", "某社区卫生服务中心", 3, 0, 0, 0)]
    assert _problems(section(rows, kinds={"H0004": K.HOSPITAL, "H0002": K.HOSPITAL, "C01": K.OTHER})) == {}


def test_bookings_of_an_institution_the_reference_data_lacks_are_flagged_and_the_row_marked() -> None:
    rows = [*PRINTED, row("H0099", None, 0, 12, 0, 0)]
    assert _problems(section(rows))["H0099"] == [("bookings_without_institution", "本月预约 12 次，参考数据中无此单位")]
    page = parse(render(section(rows)))
    cell = page.by_id("appointments-by-institution").iter("tbody")[0].iter("tr")[2].iter("td")[1]
    assert "flag" in cell.attrs["class"] and cell.text() == "H0099（参考数据中无此单位）"
    listed = problems(page)
    assert [check for check, _, _ in listed["H0099"]] == ["bookings_without_institution"]
    assert "参考数据中无此单位" in page.by_id("p-H0099").text()


def test_bookings_at_a_health_commission_or_a_hotline_centre_are_flagged() -> None:
    rows = [*PRINTED, row("D1", "甲区", 0, 5, 0, 0), row("L3201", "南京12320", 0, 81_506, 0, 0)]
    kinds = {"H0004": K.HOSPITAL, "H0002": K.HOSPITAL, "D1": K.DISTRICT, "L3201": K.HOTLINE}
    found = _problems(section(rows, kinds=kinds))
    assert found == {
        "L3201": [("bookings_at_no_clinic", "12320热线中心名下预约 81,506 次")],
        "D1": [("bookings_at_no_clinic", "区卫生健康委名下预约 5 次")],
    }
    # Merged into D1's card of the upload table (and a card of its own for the centre).
    listed = problems(parse(render(section(rows, kinds=kinds))))
    assert ("bookings_at_no_clinic", "区卫生健康委名下预约 5 次", []) in listed["D1"]
    assert listed["L3201"] == [("bookings_at_no_clinic", "12320热线中心名下预约 81,506 次", [])]


def test_an_institution_that_booked_last_month_and_not_this_month_is_flagged_once_the_silence_tells() -> None:
    before = [*PRINTED, row("H0036", "南京理工大学校医院", 4, 0, 0, 0), row("H0031", "某医院", 0, 600, 0, 0)]
    s = section(PRINTED, before=before)
    assert _problems(s) == {
        "H0036": [("bookings_stopped", "上月预约 4 次，本月无预约")],
        "H0031": [("bookings_stopped", "上月预约 600 次，本月无预约")],
    }
    # In a running month only when last month's pace expected at least 5 by now: 600 a month is
    # 20 a day, 4 a month is not even one in the four days over.
    april_5th = datetime(2020, 4, 5, 8, 0, tzinfo=SHANGHAI)
    assert _problems(s, april_5th) == {"H0031": [("bookings_stopped", "上月预约 600 次，本月已过 4 天无预约")]}
    assert _problems(s, datetime(2020, 4, 1, 8, 0, tzinfo=SHANGHAI)) == {}


def test_merging_keeps_the_catalogue_order_and_appends_new_institutions() -> None:
    found = [
        InstitutionProblems("D1", "甲区", K.DISTRICT, (Problem("not_declared", "x"),)),
        InstitutionProblems("H1", "丙医院", K.HOSPITAL, ()),
    ]
    more = [
        InstitutionProblems("X9", "X9（参考数据中无此单位）", None, (Problem("bookings_without_institution", "y"),)),
        InstitutionProblems("D1", "甲区", K.DISTRICT, (Problem("bookings_at_no_clinic", "z"),)),
    ]
    merged = with_problems(found, more)
    assert [(i.org_code, [p.check for p in i.problems]) for i in merged] == [
        ("D1", ["not_declared", "bookings_at_no_clinic"]),
        ("H1", []),
        ("X9", ["bookings_without_institution"]),
    ]
