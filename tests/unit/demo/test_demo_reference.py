"""The committed reference CSV files: the contract's columns, the bulletin's counts, reproducible."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from services.demo.bulletin import DistrictUploadRow, HospitalUploadRow, load_bulletin
from services.demo.reference import (
    ALIASES,
    REFERENCE_DIR,
    build_reference,
    main,
    org_code_of,
    render_reference,
    stale_files,
)

CsvReader = Callable[[str], list[dict[str, str]]]

HEADERS = {
    "institutions.csv": "org_code,name,kind",
    "tables.csv": "table_code,name,category,required_for",
    "declarations.csv": "org_code,table_code",
    "kiosks.csv": "kiosk_id,org_code",
}
CATEGORIES = {"outpatient_visit", "discharge", "ehr_basic", "ehr_hypertension", "ehr_diabetes", "other"}


def _upload_rows() -> list[DistrictUploadRow | HospitalUploadRow]:
    bulletin = load_bulletin()
    return [*bulletin.districts, *bulletin.hospitals]


def _bulletin_units() -> set[str]:
    bulletin = load_bulletin()
    return {
        *(r.unit for r in bulletin.districts),
        *(r.unit for r in bulletin.hospitals),
        *(r.unit for r in bulletin.kiosks),
        *(r.unit for r in bulletin.appointments),
    }


@pytest.mark.parametrize(("name", "header"), HEADERS.items())
def test_files_have_exactly_the_contract_columns(name: str, header: str) -> None:
    first_line = (REFERENCE_DIR / name).read_text(encoding="utf-8").split("\n", 1)[0]
    assert first_line == header


def test_required_tables_are_129_for_districts_and_83_for_hospitals(read_csv: CsvReader) -> None:
    tables = read_csv("tables.csv")
    required_for = Counter(t["required_for"] for t in tables)
    assert required_for["district"] + required_for["both"] == 129
    assert required_for["hospital"] + required_for["both"] == 83
    assert required_for["none"] > 0
    assert {t["category"] for t in tables} == CATEGORIES
    assert all(re.fullmatch(r"T\d{4}", t["table_code"]) for t in tables)
    assert len({t["table_code"] for t in tables}) == len({t["name"] for t in tables}) == len(tables)


def test_declarations_match_the_bulletin_and_are_required_tables(read_csv: CsvReader) -> None:
    tables = {t["table_code"]: t["required_for"] for t in read_csv("tables.csv")}
    kinds = {i["org_code"]: i["kind"] for i in read_csv("institutions.csv")}
    rows = read_csv("declarations.csv")
    declared = Counter(d["org_code"] for d in rows)
    assert len({(d["org_code"], d["table_code"]) for d in rows}) == len(rows)
    for row in _upload_rows():
        assert declared[org_code_of(row.unit)] == (row.declared_tables or 0), row.unit
    assert set(declared) == {org_code_of(r.unit) for r in _upload_rows() if r.declared_tables is not None}
    for d in rows:
        assert tables[d["table_code"]] in {kinds[d["org_code"]], "both"}, d


def test_kiosks_match_the_kiosk_table(read_csv: CsvReader) -> None:
    kiosks = read_csv("kiosks.csv")
    per_org = Counter(k["org_code"] for k in kiosks)
    for row in load_bulletin().kiosks:
        assert per_org[org_code_of(row.unit)] == row.kiosks, row.unit
    assert len(kiosks) == 1502
    assert all(re.fullmatch(rf"K-{re.escape(k['org_code'])}-\d{{3}}", k["kiosk_id"]) for k in kiosks)


def test_every_bulletin_unit_is_one_institution_and_every_institution_is_in_the_bulletin(read_csv: CsvReader) -> None:
    institutions = read_csv("institutions.csv")
    codes = [i["org_code"] for i in institutions]
    assert len(codes) == len(set(codes)) == len({i["name"] for i in institutions})
    units = _bulletin_units()
    assert {org_code_of(unit) for unit in units} == set(codes)
    # Each alias is a spelling the bulletin really uses, of a name that is canonical.
    assert set(ALIASES) <= units
    assert not set(ALIASES) & {i["name"] for i in institutions}
    assert set(ALIASES.values()) <= {i["name"] for i in institutions}


@pytest.mark.parametrize(
    ("spelling", "code"),
    [
        ("江苏省级机关医院", "H0020"),
        ("江苏省省级机关医院", "H0020"),
        ("南京江北人民医院", "H0015"),
        ("南京市江北人民医院", "H0015"),
        ("同仁医院", "H0032"),
        ("南京同仁医院", "H0032"),
        ("南医大眼科医院", "H0023"),
        ("南京医科大学附属眼科医院", "H0023"),
        ("南京理工大学医院", "H0036"),
        ("南京理工大学校医院", "H0036"),
        ("江宁区", "D320115"),
        ("江北新区", "D3201JB"),
    ],
)
def test_codes_are_stable(spelling: str, code: str) -> None:
    assert org_code_of(spelling) == code


def test_campuses_and_branches_are_not_merged() -> None:
    assert org_code_of("南京市江宁医院（湖山路）") != org_code_of("南京市江宁医院")
    assert org_code_of("东部战区总医院汤山分院") != org_code_of("东部战区总医院")
    assert org_code_of("南京鼓楼医院江北国际医院") not in {org_code_of("南京鼓楼医院"), org_code_of("南京江北人民医院")}


def test_code_scheme(read_csv: CsvReader) -> None:
    for inst in read_csv("institutions.csv"):
        pattern = r"D3201\d\d|D3201JB" if inst["kind"] == "district" else r"H\d{4}"
        assert re.fullmatch(pattern, inst["org_code"]), inst


def test_uploaded_tables_are_declared_and_counted_as_in_the_bulletin() -> None:
    ref = build_reference()
    for row in _upload_rows():
        code = org_code_of(row.unit)
        kind = ref.institution(code).kind
        uploaded = set(ref.uploaded[code])
        assert len(uploaded) == row.uploaded_tables, row.unit
        assert uploaded <= {t.table_code for t in ref.required(kind)}, row.unit
        if row.declared_tables is not None:
            assert uploaded <= set(ref.declared(code)), row.unit


def test_builder_reproduces_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    rendered = render_reference(build_reference())
    assert set(rendered) == set(HEADERS)
    for name, text in rendered.items():
        assert (REFERENCE_DIR / name).read_bytes() == text.encode("utf-8"), name
    assert stale_files(REFERENCE_DIR) == []
    assert main(["--check"]) == 0
    assert main(["--out", str(tmp_path)]) == 0
    for name in HEADERS:
        assert (tmp_path / name).read_bytes() == (REFERENCE_DIR / name).read_bytes()
    (tmp_path / "kiosks.csv").write_text("kiosk_id,org_code\n", encoding="utf-8")
    assert main(["--check", "--out", str(tmp_path)]) == 1


def test_reference_is_valid_for_the_contract_model(read_csv: CsvReader) -> None:
    models = pytest.importorskip("services.contract.models")
    body = {name.removesuffix(".csv"): read_csv(name) for name in HEADERS}
    reference = models.ReferenceSet.model_validate(body)
    assert len(reference.institutions) == 59
