"""The bulletin on the real stack: a small known stream in, the page's tables equal the report API,
the problem lists name their figures, Chromium prints a PDF and a screenshot that are not blank."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.bulletin import pdf
from services.bulletin.output import pdf_page_count, png_stats
from services.bulletin.settings import BulletinSettings
from tests.fixtures.events import kiosk, load_reference, upload
from tests.fixtures.stack import admin_headers, count_events, wait_for
from tests.unit.bulletin.page import Node, Row, parse, problems, table_rows

pytestmark = pytest.mark.integration

MONTH = {"month": "2020-04"}
CHROMIUM_TIMEOUT_S = 120.0

# Page columns -> report fields, in the bulletin's order (the name cell first).
RATES = ("conformance_rate", "completeness_rate", "conformity_rate", "linkage_rate", "continuity_rate")
DISTRICT_COLUMNS = (
    "name",
    "declared_tables",
    "uploaded_tables",
    "records_uploaded",
    "upload_days",
    "outpatient_visits",
    "discharges",
    "ehr_basic_cumulative",
    "ehr_hypertension_cumulative",
    "ehr_diabetes_cumulative",
    *RATES,
)
HOSPITAL_COLUMNS = (
    "name",
    "declared_tables",
    "uploaded_tables",
    "documents_uploaded",
    "records_uploaded",
    "upload_days",
    "outpatient_visits",
    "discharges",
    *RATES,
)
KIOSK_COLUMNS = ("name", "kiosks", "registrations", "registration_amount", "payments", "payment_amount")


def _stream() -> list[dict[str, Any]]:
    """D1: two of three declared tables, channels disagree, six days then one more; D2: one day, no
    declaration, the same cumulative health records as D1; H1: every day, both channels equal."""
    events = []
    for day in range(1, 6):
        events.append(
            upload(
                org_code="D1",
                table_code="OPV",
                business_date=f"2020-04-0{day}",
                uploaded_at=f"2020-04-0{day}T10:00:00+08:00",
                record_count=100,
                document_count=1,
            )
        )
        events.append(
            upload(
                org_code="D1",
                table_code="OPV",
                mode="scheduled",
                business_date=f"2020-04-0{day}",
                uploaded_at=f"2020-04-0{day + 1}T02:00:00+08:00",
                record_count=80,
            )
        )
    events += [
        # 23:30 UTC on April 9 is April 10 in the platform time zone (Asia/Shanghai).
        upload(
            org_code="D1",
            table_code="EHR",
            business_date="2020-04-09",
            uploaded_at="2020-04-09T23:30:00+00:00",
            record_count=7,
        ),
        upload(
            org_code="D1",
            table_code="EHR",
            mode="scheduled",
            business_date="2020-04-09",
            uploaded_at="2020-04-10T08:00:00+08:00",
            record_count=7,
        ),
        upload(
            org_code="D2",
            table_code="EHR",
            business_date="2020-04-12",
            uploaded_at="2020-04-12T09:00:00+08:00",
            record_count=14,
        ),
        upload(
            org_code="D2",
            table_code="OPV",
            business_date="2020-04-15",
            uploaded_at="2020-04-15T09:00:00+08:00",
            record_count=0,
        ),  # liveness only
    ]
    for day in range(1, 31):
        for mode in ("realtime", "scheduled"):
            events.append(
                upload(
                    org_code="H1",
                    table_code="OPV",
                    mode=mode,
                    business_date=f"2020-04-{day:02d}",
                    uploaded_at=f"2020-04-{day:02d}T12:00:00+08:00",
                    record_count=50,
                    document_count=2,
                )
            )
    return events


KIOSK_EVENTS = [
    kiosk(org_code="H1", kiosk_id="K-H1-1", kind="registration", amount="10.00"),
    kiosk(org_code="H1", kiosk_id="K-H1-2", kind="registration", amount="0.05"),
    kiosk(org_code="H1", kiosk_id="K-H1-1", kind="payment", amount="12.50"),
    kiosk(org_code="D1", kiosk_id="K-D1-1", kind="payment", amount="0.10"),
]


async def _load(collector: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await load_reference(collector, admin_headers())
    events = _stream()
    for path, batch in (("/v1/uploads", events), ("/v1/kiosk-transactions", KIOSK_EVENTS)):
        response = await collector.post(path, json={"events": batch}, headers=admin_headers())
        assert response.status_code == 202, response.text

    async def stored() -> bool:
        return await count_events(db) == len(events) + len(KIOSK_EVENTS)

    await wait_for(stored, "the stream stored")


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def _cell_matches(field: str, text: str, value: Any, row: Mapping[str, Any]) -> bool:
    """Read the page's cell back independently of how the page formats it, and compare."""
    if field == "name":
        return text == value
    if field == "declared_tables":
        declared, _, required = text.partition("/")
        return (None if declared == "未反馈" else int(declared)) == value and int(required) == row["required_tables"]
    if field in RATES:
        if value is None:
            return text == "—"
        return text.endswith("%") and abs(_number(text[:-1]) / 100 - Decimal(str(value))) <= Decimal("0.00005")
    if field in ("registration_amount", "payment_amount"):
        return _number(text) == Decimal(value)  # exact: the API sends amounts as decimal strings
    return _number(text) == value


def _assert_rows_equal(rows: Sequence[Row], api: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    assert [r.attrs.get("data-org-code") for r in rows] == [a["org_code"] for a in api]  # same rows, same order
    for row, want in zip(rows, api, strict=True):
        assert len(row.cells) == len(columns), row
        for field, text in zip(columns, row.cells, strict=True):
            assert _cell_matches(field, text, want[field], want), (want["org_code"], field, text, want[field])


async def _assert_page_equals_api(page: Node, aggregator: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """Every cell of the three tables against the report API; returns the cells compared."""
    compared = 0
    for kind, ident, columns in (
        ("district", "district-uploads", DISTRICT_COLUMNS),
        ("hospital", "hospital-uploads", HOSPITAL_COLUMNS),
    ):
        api = (await aggregator.get("/v1/reports/uploads", params={**MONTH, "kind": kind}, headers=headers)).json()
        rows = table_rows(page, ident) if api else []
        _assert_rows_equal(rows, api, columns)
        compared += len(api) * len(columns)
    kiosks = (await aggregator.get("/v1/reports/kiosks", params=MONTH, headers=headers)).json()
    rows = table_rows(page, "kiosk-usage")
    assert [r.attrs.get("data-group") for r in rows] == [k["group"] for k in kiosks]
    _assert_rows_equal(rows[:-1], kiosks[:-1], KIOSK_COLUMNS)
    total = dict(kiosks[-1])
    for field, text in zip(KIOSK_COLUMNS[1:], rows[-1].cells, strict=True):
        assert _cell_matches(field, text, total[field], total), ("total", field, text)
    return compared + (len(kiosks) - 1) * len(KIOSK_COLUMNS) + len(KIOSK_COLUMNS) - 1


async def test_bulletin_tables_equal_the_report_api_and_problems_show_their_figures(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection, tmp_path: Path
) -> None:
    await _load(collector, db)
    response = await aggregator.get("/v1/reports/bulletin", params=MONTH, headers=admin_headers())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)

    compared = await _assert_page_equals_api(page, aggregator, admin_headers())
    assert compared == 2 * 15 + 1 * 13 + 3 * 6 + 5

    listed = problems(page)
    # D1 and D2 share their health records (14 / 0 / 0), but one non-zero figure of 14 is no
    # evidence of a copied row (identical_figures wants two non-zero, one of them >= 1,000).
    assert listed["D1"] == [
        ("declared_not_uploaded", "申明 3 张，已上传 2 张，未上传 1 张", ["DM 糖尿病随访"]),
        ("days_without_uploads", "已过 30 天中 23 天无数据上传", ["4月7日–9日（3天）", "4月11日–30日（20天）"]),
        ("flatline", "4月10日后连续 20 天无数据上传", ["4月11日–30日（20天）"]),
        ("low_conformance", "符合率 80.28%，低于阈值 95.00%", []),  # (5 x 80 + 7) / (5 x 100 + 7)
    ]
    assert listed["D2"] == [
        ("not_declared", "申明上传表：未反馈/5", []),
        ("days_without_uploads", "已过 30 天中 29 天无数据上传", ["4月1日–11日（11天）", "4月13日–30日（18天）"]),
        ("low_conformance", "符合率 0.00%，低于阈值 95.00%", []),
    ]
    assert "H1" not in listed
    assert "丙医院" in page.by_id("no-problems").text()

    screenshot = await pdf.screenshot_png(
        response.text, chromium="chromium", timeout_s=CHROMIUM_TIMEOUT_S, width=1280, height=1600
    )
    (tmp_path / "bulletin.png").write_bytes(screenshot)
    stats = png_stats(screenshot)
    assert (stats.width, stats.height) == (1280, 1600)
    # A blank page has one colour and an error page a few dozen; text in CJK and charts, hundreds.
    assert stats.colours >= 256, f"{stats} see {tmp_path / 'bulletin.png'}"
    assert len(screenshot) > 50_000


async def test_bulletin_pdf_is_printed_with_the_cjk_font(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection, tmp_path: Path
) -> None:
    await _load(collector, db)
    response = await aggregator.get(
        "/v1/reports/bulletin", params={**MONTH, "format": "pdf"}, headers=admin_headers(), timeout=CHROMIUM_TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert 'filename="bulletin-2020-04.pdf"' in response.headers["content-disposition"]
    document = response.content
    (tmp_path / "bulletin.pdf").write_bytes(document)
    assert document.startswith(b"%PDF-")
    assert pdf_page_count(document) >= 1
    # The Chinese text was drawn with Noto Sans CJK (embedded as a subset), not as missing-glyph boxes.
    assert b"NotoSansCJK" in document


async def test_an_institution_sees_only_its_own_rows_and_problems(
    collector: httpx.AsyncClient, aggregator: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await _load(collector, db)
    issued = (await collector.post("/v1/admin/tokens", json={"org_code": "D1"}, headers=admin_headers())).json()
    d1 = {"Authorization": f"Bearer {issued['token']}"}

    async def token_known() -> bool:
        return (await aggregator.get("/v1/reports/bulletin", params=MONTH, headers=d1)).status_code == 200

    await wait_for(token_known, "aggregator learned the new token")
    html = (await aggregator.get("/v1/reports/bulletin", params=MONTH, headers=d1)).text
    page = parse(html)
    await _assert_page_equals_api(page, aggregator, d1)
    assert [r.attrs["data-org-code"] for r in table_rows(page, "district-uploads")] == ["D1"]
    assert "乙区" not in html and "丙医院" not in html and "D2" not in html and "H1" not in html
    checks = [check for check, _, _ in problems(page)["D1"]]
    assert checks == ["declared_not_uploaded", "days_without_uploads", "flatline", "low_conformance"]


@pytest.mark.parametrize(
    ("params", "status"),
    [({"month": "2020-13"}, 422), ({"month": "2020-04", "format": "docx"}, 422), ({}, 422)],
)
async def test_bad_bulletin_parameters_are_422(
    aggregator: httpx.AsyncClient, params: dict[str, str], status: int
) -> None:
    response = await aggregator.get("/v1/reports/bulletin", params=params, headers=admin_headers())
    assert response.status_code == status, response.text
    assert response.json()["error"] == "invalid_request"


async def test_a_pdf_that_cannot_be_printed_is_503_with_retry_after(aggregator: httpx.AsyncClient) -> None:
    aggregator.app.state.bulletin_settings = BulletinSettings(chromium="no-such-chromium")  # type: ignore[attr-defined]
    response = await aggregator.get("/v1/reports/bulletin", params={**MONTH, "format": "pdf"}, headers=admin_headers())
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "60"
    assert "fonts.sh" in response.json()["detail"]
    page = await aggregator.get("/v1/reports/bulletin", params=MONTH, headers=admin_headers())
    assert page.status_code == 200  # the HTML needs no Chromium


async def test_bulletin_needs_a_token(aggregator: httpx.AsyncClient) -> None:
    assert (await aggregator.get("/v1/reports/bulletin", params=MONTH)).status_code == 401


async def test_the_command_writes_the_page_and_the_pdf(
    collector: httpx.AsyncClient,
    aggregator: httpx.AsyncClient,
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    await _load(collector, db)
    env = {**os.environ, "TELEMETRY_DATABASE_URL": database_url, "TELEMETRY_TIMEZONE": "Asia/Shanghai"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from services.cli.main import main; main()",
        "report",
        "bulletin",
        "--month",
        "2020-04",
        "--out",
        str(tmp_path / "out"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), CHROMIUM_TIMEOUT_S)
    assert proc.returncode == 0, output.decode()
    html = (tmp_path / "out" / "bulletin-2020-04.html").read_text(encoding="utf-8")
    document = (tmp_path / "out" / "bulletin-2020-04.pdf").read_bytes()
    await _assert_page_equals_api(parse(html), aggregator, admin_headers())
    assert document.startswith(b"%PDF-") and pdf_page_count(document) >= 1
    assert f"({pdf_page_count(document)} pages)" in " ".join(output.decode().split())
