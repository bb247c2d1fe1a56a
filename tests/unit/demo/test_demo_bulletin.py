"""The bulletin tables parse strictly, in the consistent reading, and their flaws are found."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from services.demo.bulletin import (
    BULLETIN_DIR,
    HOSPITAL_FILE,
    KIOSK_FILE,
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
