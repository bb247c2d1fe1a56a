"""The bulletin tables parse strictly, in the consistent reading, and their flaws are found."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from services.demo.bulletin import (
    APPOINTMENTS_TO_DATE,
    APPOINTMENTS_TO_DATE_PRINTED,
    BULLETIN_DIR,
    BULLETIN_FILES,
    HOSPITAL_FILE,
    HOTLINE_PROVINCE_FILE,
    KIOSK_FILE,
    REMOTE_PLATFORMS_FILE,
    check_bulletin,
    load_bulletin,
    sum_kiosk_rows,
)
from services.demo.errors import BulletinError


def test_every_table_parses_with_its_printed_rows() -> None:
    bulletin = load_bulletin()
    assert len(bulletin.districts) == 12
    assert len(bulletin.hospitals) == 25
    assert len(bulletin.kiosks) == 49
    assert [r.group for r in bulletin.kiosks].count("district") == 12
    assert len(bulletin.appointments) == 36
    assert bulletin.appointments_printed_total.subtotal == 356_355


def test_hospital_table_is_read_in_the_consistent_reading() -> None:
    rows = {r.unit: r for r in load_bulletin().hospitals}
    occupational = rows["南京市职业病防治院"]
    assert (occupational.document_types, occupational.documents_uploaded) == (0, 0)
    assert (occupational.uploaded_tables, occupational.records_uploaded, occupational.upload_days) == (34, 12_541, 22)
    tcm = rows["江苏省中医院"]
    assert (tcm.documents_uploaded, tcm.uploaded_tables, tcm.records_uploaded) == (10_377_406, 13, 15_512_203)
    for row in rows.values():
        assert row.upload_days <= 30, row.unit
        assert row.uploaded_tables <= row.required_tables, row.unit
        assert row.documents_uploaded <= row.records_uploaded, row.unit


def test_undeclared_is_none_and_only_there() -> None:
    bulletin = load_bulletin()
    undeclared = {r.unit for r in bulletin.hospitals if r.declared_tables is None}
    assert undeclared == {
        "江苏省人民医院", "东南大学附属中大医院", "南京医科大学第二附属医院", "江苏省肿瘤医院",
        "江苏省口腔医院", "江苏省级机关医院", "南医大眼科医院", "东部战区空军医院",
    }  # fmt: skip
    assert all(r.declared_tables is not None for r in bulletin.districts)


def test_amounts_are_exact_decimals() -> None:
    bulletin = load_bulletin()
    assert all(isinstance(r.payment_amount, Decimal) for r in bulletin.kiosks)
    assert bulletin.kiosk_printed_total.payment_amount == Decimal("185976917.60")
    assert sum_kiosk_rows(bulletin.kiosks).payment_amount == Decimal("185976917.64")
    assert sum_kiosk_rows(bulletin.kiosks).registration_amount == Decimal("14896149.37")


def test_check_bulletin_finds_each_known_flaw() -> None:
    found = {(f.table, f.unit, f.what.split(":")[0]) for f in check_bulletin(load_bulletin())}
    assert ("kiosk_usage", "合计", "payment_amount") in found
    assert any(unit == "南京市口腔医院" and table == "kiosk_usage" for table, unit, _ in found)
    assert {unit for table, unit, _ in found if table == "district_uploads"} == {"秦淮区", "高淳区"}
    assert any(unit == "南京市职业病防治院" and what.startswith("as printed") for _, unit, what in found)
    # What does add up is not reported: the other kiosk totals and the appointments table.
    assert ("kiosk_usage", "合计", "registration_amount") not in found
    assert ("kiosk_usage", "合计", "payments") not in found
    assert not any(table == "appointments" for table, _, _ in found)


@pytest.fixture
def bulletin_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "bulletin"
    shutil.copytree(BULLETIN_DIR, folder)
    return folder


def test_a_changed_header_is_refused(bulletin_copy: Path) -> None:
    path = bulletin_copy / HOSPITAL_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("col4", "uploaded"), encoding="utf-8")
    with pytest.raises(BulletinError, match="header"):
        load_bulletin(bulletin_copy)


def test_an_amount_with_three_decimals_is_refused(bulletin_copy: Path) -> None:
    path = bulletin_copy / KIOSK_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("506584.00", "506584.001"), encoding="utf-8")
    with pytest.raises(BulletinError, match="at most 2 decimals"):
        load_bulletin(bulletin_copy)


def test_a_missing_file_is_refused(bulletin_copy: Path) -> None:
    (bulletin_copy / KIOSK_FILE).unlink()
    with pytest.raises(BulletinError, match="cannot read"):
        load_bulletin(bulletin_copy)


def test_the_new_sections_parse_with_their_printed_rows() -> None:
    bulletin = load_bulletin()
    assert [r.platform for r in bulletin.appointment_platforms][:2] == ["健康南京客户端", "南京卫生12320微信平台"]
    assert bulletin.appointment_platforms_printed_total == 98_432
    assert bulletin.hotline_figure("calls") == 136_783
    assert bulletin.hotline_figure("work_orders_province_12345") == 2_128
    assert len(bulletin.province_calls) == 8 and bulletin.province_calls_printed_total == 179_331
    assert bulletin.remote_figures("imaging")["images"] == 4_604_485
    assert bulletin.remote_figures("consultation")["consultations_cumulative"] == 110
    assert [(t.rank, t.unit) for t in bulletin.top_uploaders if t.platform == "imaging"] == [
        (1, "建邺区"),
        (2, "南京市儿童医院"),
        (3, "六合区中医院"),
    ]
    assert bulletin.appointments_to_date == 19_238_954


def test_the_new_sections_tie_together_as_notes_md_says() -> None:
    findings = check_bulletin(load_bulletin())
    tables = {"appointment_platforms", "hotline", "hotline_province", "remote_platforms", "remote_top_uploaders"}
    assert [f for f in findings if f.table in tables] == []


def test_a_figure_whose_words_do_not_carry_it_is_refused(bulletin_copy: Path) -> None:
    path = bulletin_copy / REMOTE_PLATFORMS_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("ecg,cases,80467", "ecg,cases,80476"), encoding="utf-8")
    with pytest.raises(BulletinError, match="not in the printed words"):
        load_bulletin(bulletin_copy)


def test_a_broken_tie_is_found(bulletin_copy: Path) -> None:
    path = bulletin_copy / HOTLINE_PROVINCE_FILE
    path.write_text(path.read_text(encoding="utf-8").replace("苏州,33172", "苏州,33171"), encoding="utf-8")
    found = {(f.table, f.unit) for f in check_bulletin(load_bulletin(bulletin_copy))}
    assert ("hotline_province", "合计") in found


# The shared reference folder sits beside the repository (`../shared/reference/...`, as the
# README says); a clone without it has only the package's copies, and this check is skipped.
SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "nanjing-2020-04"


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared reference folder at {SHARED}")
@pytest.mark.parametrize("name", BULLETIN_FILES)
def test_each_package_copy_is_byte_identical_to_the_shared_reference(name: str) -> None:
    assert (BULLETIN_DIR / name).read_bytes() == (SHARED / name).read_bytes()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"no shared reference folder at {SHARED}")
def test_every_shared_table_has_a_package_copy_and_the_total_to_date_is_printed() -> None:
    assert {p.name for p in SHARED.glob("*.csv")} == set(BULLETIN_FILES)
    texts = [p.read_text(encoding="utf-8") for p in SHARED.glob("*.txt")]
    assert any(APPOINTMENTS_TO_DATE_PRINTED in text for text in texts)
    assert str(APPOINTMENTS_TO_DATE) in APPOINTMENTS_TO_DATE_PRINTED
