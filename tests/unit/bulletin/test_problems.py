"""The problem list: each check fires on the figure it names, and stays quiet on consistent figures."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.quality.problems import (
    InstitutionDetail,
    InstitutionProblems,
    ProblemKind,
    month_span,
    problem_counts,
)
from services.quality.uploads import find_problems
from services.streams.kiosk.model import KioskReportRow
from services.streams.uploads.model import UploadReportRow
from tests.unit.bulletin.factories import APRIL, every_day, full_detail, kiosk_row, upload_row

SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTER_APRIL = datetime(2020, 5, 19, 9, 0, tzinfo=SHANGHAI)
NAMES = {"OPV": "门诊就诊记录", "DIS": "出院小结", "EHR": "个人基本信息", "DM": "糖尿病随访"}


def problems_of(
    row: UploadReportRow,
    detail: InstitutionDetail | None = None,
    kiosk: KioskReportRow | None = None,
    *,
    now: datetime = AFTER_APRIL,
    zone: ZoneInfo = SHANGHAI,
    threshold: float = 0.95,
) -> dict[str, tuple[str, tuple[str, ...]]]:
    found = find_problems(
        [row],
        [kiosk or kiosk_row(row.org_code)],
        {row.org_code: detail or full_detail()},
        NAMES,
        month_span(APRIL, now, zone),
        threshold,
    )
    return {p.check: (p.figure, p.items) for p in found[0].problems}


def test_a_consistent_institution_has_no_problem() -> None:
    assert problems_of(upload_row()) == {}


def test_declared_tables_without_records_are_named_with_the_counts() -> None:
    detail = InstitutionDetail(
        declared=frozenset({"OPV", "DM", "EHR"}),
        uploaded=frozenset({"OPV", "DIS"}),
        daily_records=every_day(),
        table_records={"OPV": 4_990, "DIS": 10},
    )
    got = problems_of(upload_row(), detail)
    assert got == {
        "declared_not_uploaded": ("申明 3 张，已上传 1 张，未上传 2 张", ("DM 糖尿病随访", "EHR 个人基本信息")),
        # DIS has records but was not declared: the other side of the same comparison.
        "undeclared_uploads": ("上传了 1 张未申明的表，共 10 条记录", ("DIS 出院小结：10 条",)),
    }


def test_an_institution_that_declared_nothing_is_listed_as_no_feedback() -> None:
    got = problems_of(
        upload_row(declared_tables=None, required_tables=83), InstitutionDetail(daily_records=every_day())
    )
    assert got == {"not_declared": ("申明上传表：未反馈/83", ())}


def test_days_without_uploads_are_folded_into_ranges() -> None:
    daily = {day: n for day, n in every_day().items() if day.day not in (8, 9, 10, 11, 20)}
    daily[date(2020, 4, 25)] = 0  # a day with only liveness events is a day without uploads
    got = problems_of(
        upload_row(), InstitutionDetail(declared=frozenset({"OPV"}), uploaded=frozenset({"OPV"}), daily_records=daily)
    )
    assert got == {
        "days_without_uploads": ("已过 30 天中 6 天无数据上传", ("4月8日–11日（4天）", "4月20日", "4月25日"))
    }


def test_only_days_already_over_in_the_platform_time_zone_count() -> None:
    daily = {date(2020, 4, d): 5 for d in range(1, 6)}
    detail = InstitutionDetail(declared=frozenset({"OPV"}), uploaded=frozenset({"OPV"}), daily_records=daily)
    # 2020-04-10 17:30 UTC is already 04-11 01:30 in Shanghai: April 10 is over there, not in UTC.
    now = datetime(2020, 4, 10, 17, 30, tzinfo=UTC)
    shanghai = problems_of(upload_row(), detail, now=now, zone=SHANGHAI)["days_without_uploads"]
    utc = problems_of(upload_row(), detail, now=now, zone=ZoneInfo("UTC"))["days_without_uploads"]
    assert shanghai == ("已过 10 天中 5 天无数据上传", ("4月6日–10日（5天）",))
    assert utc == ("已过 9 天中 4 天无数据上传", ("4月6日–9日（4天）",))


def test_a_month_without_any_record_is_one_problem_not_thirty() -> None:
    got = problems_of(
        upload_row(records_uploaded=0, upload_days=0, outpatient_visits=0, discharges=0, uploaded_tables=0),
        InstitutionDetail(declared=frozenset({"OPV"})),
    )
    assert got["no_uploads"] == ("已过 30 天，无一天有数据上传", ("4月1日–30日（30天）",))
    assert "days_without_uploads" not in got


def test_a_month_that_has_not_begun_blames_no_day() -> None:
    got = problems_of(
        upload_row(),
        InstitutionDetail(declared=frozenset({"OPV"}), uploaded=frozenset({"OPV"})),
        now=datetime(2020, 4, 1, 0, 30, tzinfo=SHANGHAI),
    )
    assert got == {}


def test_month_span_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        month_span(APRIL, datetime(2020, 5, 1), SHANGHAI)  # naive on purpose


def test_month_span_knows_the_length_of_the_month() -> None:
    assert month_span(date(2020, 2, 1), AFTER_APRIL, SHANGHAI).days_in_month == 29
    assert len(month_span(APRIL, AFTER_APRIL, SHANGHAI).ended) == 30


@pytest.mark.parametrize(("rate", "listed"), [(0.9499, True), (0.95, False), (0.99, False), (None, False)])
def test_conformance_below_the_threshold_is_listed_with_the_rate(rate: float | None, listed: bool) -> None:
    got = problems_of(upload_row(conformance_rate=rate), threshold=0.95)
    if listed:
        assert got == {"low_conformance": ("符合率 94.99%，低于阈值 95.00%", ())}
    else:
        assert got == {}


def test_registration_amount_with_no_registrations_is_the_printed_figure() -> None:
    # 南京市口腔医院 in the April 2020 bulletin: 0 registrations, 80573.00 CNY.
    kiosk = kiosk_row(registrations=0, registration_amount=Decimal("80573.00"))
    assert problems_of(upload_row(), kiosk=kiosk) == {"amount_without_count": ("挂号 0 次，挂号金额 80,573.00 元", ())}


def test_payment_amount_with_no_payments_and_transactions_without_kiosks() -> None:
    kiosk = kiosk_row(kiosks=0, payments=0, payment_amount=Decimal("0.01"))
    assert problems_of(upload_row(), kiosk=kiosk) == {
        "amount_without_count": ("缴费 0 次，缴费金额 0.01 元", ()),
        "transactions_without_kiosks": ("投放台数 0，挂号 3 次，缴费 0 次", ()),
    }


def test_zero_registrations_with_zero_amount_is_consistent() -> None:
    assert problems_of(upload_row(), kiosk=kiosk_row(registrations=0, registration_amount=Decimal("0.00"))) == {}


def test_transactions_without_amount_are_the_other_side_of_amount_without_count() -> None:
    kiosk = kiosk_row(registrations=12, registration_amount=Decimal("0.00"))
    found = find_problems(
        [upload_row()], [kiosk], {"D1": full_detail()}, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95
    )
    [problem] = found[0].problems
    assert (problem.check, problem.figure, problem.severity) == (
        "amount_without_count",
        "挂号 12 次，挂号金额 0.00 元",
        "problem",
    )
    assert problem.figures == {"kind": "registration", "transactions": 12, "amount": "0.00"}


def test_the_occupational_disease_hospital_as_printed_contradicts_itself() -> None:
    # Read as printed: 0 tables, 0 records, 34 upload days in a 30-day month.
    row = upload_row(uploaded_tables=0, records_uploaded=0, upload_days=34, outpatient_visits=0, discharges=0)
    got = problems_of(row)
    assert got["upload_days_exceed_month"] == ("数据上传天数 34 > 本月 30 天", ())
    assert got["days_without_records"] == ("数据上传天数 34，数据上传量 0", ())


def test_more_tables_uploaded_than_required_and_tables_without_records() -> None:
    row = upload_row(
        uploaded_tables=6, required_tables=5, records_uploaded=0, outpatient_visits=0, discharges=0, upload_days=0
    )
    got = problems_of(row)
    assert got["uploaded_exceed_required"] == ("已上传表 6 > 规定上传表 5", ())
    assert got["tables_without_records"] == ("已上传表 6，数据上传量 0", ())
    assert "days_without_records" not in got


def test_records_without_upload_days_and_visits_beyond_records() -> None:
    row = upload_row(records_uploaded=100, upload_days=0, outpatient_visits=90, discharges=20)
    got = problems_of(row)
    assert got["records_without_days"] == ("数据上传量 100，数据上传天数 0", ())
    assert got["visits_exceed_records"] == ("门急诊 90 + 出院 20 = 110 > 数据上传量 100", ())


def test_identical_cumulative_health_records_name_each_other() -> None:
    triple = {"ehr_basic_cumulative": 436030, "ehr_hypertension_cumulative": 5664, "ehr_diabetes_cumulative": 0}
    rows = [
        upload_row("D320118", name="高淳区", **triple),
        upload_row("D320104", name="秦淮区", **triple),
        upload_row(
            "D3", name="丙区", ehr_basic_cumulative=436030, ehr_hypertension_cumulative=5664, ehr_diabetes_cumulative=1
        ),
        upload_row("H1", name="甲医院"),  # all zeros, like every hospital: not a copy error
        upload_row("H2", name="乙医院"),
    ]
    # Volumes of their own, so that only the health records can agree.
    rows = [
        r.model_copy(
            update={
                "records_uploaded": 5_000 + n,
                "outpatient_visits": 400 + n,
                "discharges": 20 + n,
                "documents_uploaded": n,
            }
        )
        for n, r in enumerate(rows)
    ]
    found = find_problems(
        rows, [], {r.org_code: full_detail() for r in rows}, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95
    )
    by_org = {f.org_code: [(p.check, p.figure, p.items) for p in f.problems] for f in found}
    figure = "健康档案累计：基本信息 436,030 / 高血压 5,664 / 糖尿病 0"
    same = "ehr_basic_cumulative, ehr_hypertension_cumulative, ehr_diabetes_cumulative"
    assert by_org == {
        "D320118": [("identical_figures", figure, (f"与 秦淮区（D320104）相同：{same}",))],
        "D320104": [("identical_figures", figure, (f"与 高淳区（D320118）相同：{same}",))],
        "D3": [],  # two fields agree with the twins, not three
        "H1": [],
        "H2": [],
    }


def test_identical_figures_follow_the_contracts_rule() -> None:
    # Three or more fields agree, at least two non-zero, one of them >= 1,000.
    base = {"records_uploaded": 1_000, "outpatient_visits": 7, "discharges": 0, "documents_uploaded": 3}

    def pair(**b: int) -> set[str]:
        rows = [
            upload_row("D1", **base, ehr_basic_cumulative=11),
            upload_row("D2", **{**base, **b}, ehr_basic_cumulative=22),
        ]
        found = find_problems(rows, [], {}, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95)
        return {f.org_code for f in found for p in f.problems if p.check == "identical_figures"}

    assert pair() == {"D1", "D2"}  # 4 agree (3 non-zero, 1,000 among them) + 2 zero EHR
    assert pair(records_uploaded=999, documents_uploaded=999) == set()  # none of the agreeing >= 1,000
    assert pair(outpatient_visits=8, documents_uploaded=4) == set()  # only 1,000 non-zero among the agreeing
    # Hospitals and districts are two reports: never compared with each other.
    rows = [upload_row("D1", **base), upload_row("H1", kind="hospital", **base)]
    found = find_problems(rows, [], {}, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95)
    assert not [p for f in found for p in f.problems if p.check == "identical_figures"]


def test_an_institution_alone_is_never_compared_with_others() -> None:
    row = upload_row(ehr_basic_cumulative=436030, ehr_hypertension_cumulative=5664)
    assert problems_of(row) == {}


def test_problems_come_in_the_catalogue_order_and_institutions_in_the_report_order() -> None:
    rows = [upload_row("D2", conformance_rate=0.5, upload_days=31), upload_row("D1", records_uploaded=4_000)]
    details = {
        "D2": InstitutionDetail(declared=frozenset({"DM"}), daily_records={date(2020, 4, 2): 1}),
        "D1": full_detail(),
    }
    found = find_problems(
        rows, [kiosk_row("D2", registrations=0)], details, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95
    )
    assert [f.org_code for f in found] == ["D2", "D1"]
    assert [p.check for p in found[0].problems] == [
        "declared_not_uploaded",
        "days_without_uploads",
        "low_conformance",
        "amount_without_count",
        "upload_days_exceed_month",
    ]
    assert found[1].problems == ()


def test_an_institution_without_detail_has_declared_nothing_and_uploaded_on_no_day() -> None:
    found = find_problems([upload_row("D9")], [], {}, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95)
    assert [p.check for p in found[0].problems] == ["not_declared", "no_uploads"]


def test_problem_counts_per_kind() -> None:
    rows = [
        upload_row("D1", conformance_rate=0.5),
        upload_row("D2", conformance_rate=0.1, upload_days=31, records_uploaded=4_000),
    ]
    found = find_problems(
        rows, [], {r.org_code: full_detail() for r in rows}, NAMES, month_span(APRIL, AFTER_APRIL, SHANGHAI), 0.95
    )
    counts = problem_counts(found)
    assert counts[ProblemKind.LOW_CONFORMANCE] == (2, 2)
    assert counts[ProblemKind.CONTRADICTION] == (1, 1)
    assert counts[ProblemKind.DECLARED_NOT_UPLOADED] == (0, 0)
    assert problem_counts([InstitutionProblems("X", "x", rows[0].kind, ())])[ProblemKind.CONTRADICTION] == (0, 0)
