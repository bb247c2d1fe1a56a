"""The page: the bulletin's tables in its order, exact figures, escaped names, nothing loaded from outside."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.bulletin.render import render_html
from services.contract.models import InstitutionKind
from services.quality.problems import InstitutionDetail
from tests.unit.bulletin.factories import bulletin_data, every_day, full_detail, kiosk_row, upload_row
from tests.unit.bulletin.page import header_labels, parse, problems, table_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2020, 5, 19, 9, 30, tzinfo=SHANGHAI)


def render(**fields: object) -> str:
    return render_html(bulletin_data(**fields), now=NOW, zone=SHANGHAI, conformance_threshold=0.95)


def test_tables_come_in_the_bulletins_order_with_its_columns() -> None:
    html = render()
    assert html.index('id="district-uploads"') < html.index('id="hospital-uploads"') < html.index('id="kiosk-usage"')
    page = parse(html)
    assert header_labels(page, "district-uploads") == [
        "接入单位",
        "申明上传表/规定上传表",
        "已上传表（CDA文档）",
        "数据上传量",
        "数据上传天数",
        "门急诊信息上传人次",
        "出院信息上传人次",
        "健康档案累计上传总量",
        "符合率",
        "完整性",
        "规范性",
        "关联性",
        "连续性",
        "基本信息",
        "高血压",
        "糖尿病",
    ]
    assert header_labels(page, "kiosk-usage") == [
        "单位",
        "投放台数",
        "挂号（次）",
        "挂号金额（元）",
        "缴费（次）",
        "缴费金额（元）",
    ]


def test_cells_carry_the_report_figures() -> None:
    page = parse(render())
    districts = table_rows(page, "district-uploads")
    assert [r.attrs["data-org-code"] for r in districts] == ["D1", "D2"]
    assert districts[0].cells == [
        "D1区",
        "3/5",
        "3",
        "5,000",
        "30",
        "400",
        "20",
        "0",
        "0",
        "0",
        "99.00%",
        "98.00%",
        "97.50%",
        "90.00%",
        "100.00%",
    ]
    hospitals = table_rows(page, "hospital-uploads")
    assert hospitals[0].cells == [
        "丙医院",
        "未反馈/5",
        "3",
        "10",
        "700",
        "30",
        "400",
        "20",
        "99.00%",
        "98.00%",
        "97.50%",
        "90.00%",
        "100.00%",
    ]
    kiosks = table_rows(page, "kiosk-usage")
    assert [r.attrs.get("data-group") for r in kiosks] == ["hospital", "district", "district", "total"]
    assert kiosks[0].cells == ["丙医院", "2", "3", "30.00", "1", "185,976,917.64"]
    assert kiosks[-1].cells == ["6", "9", "90.00", "3", "185,976,942.64"]


def test_problem_lists_carry_the_figure_behind_each_problem() -> None:
    details = {
        "D1": InstitutionDetail(
            declared=frozenset({"OPV", "DM"}), uploaded=frozenset({"OPV"}), daily_records=every_day()
        ),
        "D2": full_detail(),
        "H1": InstitutionDetail(daily_records=every_day()),
    }
    kiosks = [kiosk_row("D1", registrations=0, registration_amount=Decimal("80573.00"))]
    page = parse(render(details=details, kiosks=kiosks))
    listed = problems(page)
    assert listed["D1"] == [
        ("declared_not_uploaded", "申明 2 张，已上传 1 张，未上传 1 张", ["DM 糖尿病随访"]),
        ("amount_without_count", "挂号 0 次，挂号金额 80,573.00 元", []),
    ]
    assert listed["H1"] == [("not_declared", "申明上传表：未反馈/5", [])]
    assert "D2" not in listed
    assert "乙区" in page.by_id("no-problems").text()
    # The flagged amount is marked in the table too.
    row = next(
        r for r in parse(render(kiosks=kiosks)).by_id("kiosk-usage").iter("tr") if r.attrs.get("data-org-code") == "D1"
    )
    assert any("flag" in td.attrs.get("class", "") and td.text() == "80,573.00" for td in row.iter("td"))


def test_names_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    html = render(districts=[upload_row("D1", name=evil)])
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert table_rows(parse(html), "district-uploads")[0].cells[0] == evil


def test_the_page_is_self_contained() -> None:
    html = render()
    page = parse(html)
    assert not page.iter("script") and not page.iter("link") and not page.iter("img") and not page.iter("iframe")
    for node in page.iter():
        assert "src" not in node.attrs, node.tag
        assert node.attrs.get("href", "#").startswith("#"), node.attrs
    assert "url(" not in html and "@import" not in html
    csp = next(m for m in page.iter("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp.attrs["content"]
    assert len(page.iter("svg")) >= 6  # records and coverage twice, calendar, conformance twice, kiosks
    assert re.search(r'font-family:\s*"Noto Sans CJK SC"', html)


def test_an_institutions_page_shows_its_own_rows_and_names_no_other() -> None:
    own = upload_row("D1", name="甲区", ehr_basic_cumulative=7, ehr_hypertension_cumulative=1)
    html = render(
        org_code="D1",
        districts=[own],
        hospitals=[],
        kiosks=[kiosk_row("D1", name="甲区")],
        details={"D1": full_detail()},
    )
    page = parse(html)
    assert [r.attrs["data-org-code"] for r in table_rows(page, "district-uploads")] == ["D1"]
    assert "范围 甲区（D1）" in page.iter("header")[0].text()
    assert "乙区" not in html and "丙医院" not in html
    assert 'id="hospital-uploads"' not in html


def test_rendering_depends_on_the_zone_for_the_days_that_are_over() -> None:
    data = bulletin_data(details={"D1": InstitutionDetail(declared=frozenset({"OPV"}), uploaded=frozenset({"OPV"}))})
    early = datetime(2020, 4, 2, 17, 0, tzinfo=ZoneInfo("UTC"))  # April 3, 01:00 in Shanghai
    shanghai = problems(parse(render_html(data, now=early, zone=SHANGHAI, conformance_threshold=0.95)))
    utc = problems(parse(render_html(data, now=early, zone=ZoneInfo("UTC"), conformance_threshold=0.95)))
    assert ("no_uploads", "已过 2 天，无一天有数据上传", ["4月1日–2日（2天）"]) in shanghai["D1"]
    assert ("no_uploads", "已过 1 天，无一天有数据上传", ["4月1日"]) in utc["D1"]


def test_kind_is_shown_in_each_problem_card() -> None:
    html = render(hospitals=[upload_row("H1", name="丙医院", kind=InstitutionKind.HOSPITAL, conformance_rate=0.5)])
    card = parse(html).by_id("p-H1")
    assert "医院" in card.text() and "符合率 50.00%，低于阈值 95.00%" in card.text()
