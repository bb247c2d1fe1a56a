"""The committed reference CSV files: the contract's columns, the bulletin's counts, reproducible.

The remote-platform counts are checked with a fold of the committed CSV files written here
(the contract's definitions in a few loops), against the cells of the bulletin's CSV.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from services.demo.bulletin import BULLETIN_DIR, DistrictUploadRow, HospitalUploadRow, load_bulletin
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
    "institutions.csv": "org_code,name,kind,level,region,city,district",
    "tables.csv": "table_code,name,category,required_for",
    "declarations.csv": "org_code,table_code",
    "kiosks.csv": "kiosk_id,org_code",
    "platform_connections.csv": "platform,org_code,connected_on,disconnected_on",
    "booking_platforms.csv": "platform_code,name",
    "opening_balances.csv": "metric,as_of,value",
    "no_upload_days.csv": "date,reason",
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
        *(r.unit for r in bulletin.top_uploaders),
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


def test_every_bulletin_unit_is_one_institution_and_every_district_and_hospital_is_in_the_bulletin(
    read_csv: CsvReader,
) -> None:
    institutions = read_csv("institutions.csv")
    codes = [i["org_code"] for i in institutions]
    assert len(codes) == len(set(codes)) == len({i["name"] for i in institutions})
    units = _bulletin_units()
    reporting = {i["org_code"] for i in institutions if i["kind"] in {"district", "hospital"}}
    assert {org_code_of(unit) for unit in units} == reporting
    assert len(reporting) == 12 + 48
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
    patterns = {
        "district": r"D3201\d\d|D3201JB",
        "hospital": r"H\d{4}",
        "hotline": r"L32\d\d",
        # Community centres and outpatient departments carry their district's code.
        "other": r"C(3201\d\d|3201JB)\d\d|M(3201\d\d|3201JB)\d\d|X\d{6}|A\d\d|O\d\d",
    }
    for inst in read_csv("institutions.csv"):
        assert re.fullmatch(patterns[inst["kind"]], inst["org_code"]), inst
        if inst["org_code"][0] in "CM":
            district_code = next(i["org_code"] for i in read_csv("institutions.csv") if i["name"] == inst["district"])
            assert inst["org_code"][1:-2] == district_code[1:], inst


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
    main(["--out", str(tmp_path)])
    (tmp_path / "platform_connections.csv").unlink()
    assert main(["--check", "--out", str(tmp_path)]) == 1


def test_reference_is_valid_for_the_contract_model(read_csv: CsvReader) -> None:
    models = pytest.importorskip("services.contract.models")
    body = {name.removesuffix(".csv"): read_csv(name) for name in HEADERS}
    body["institutions"] = [{k: v for k, v in row.items() if v} for row in body["institutions"]]
    body["platform_connections"] = [{k: v for k, v in row.items() if v} for row in body["platform_connections"]]
    body["opening_balances"] = [{**row, "value": int(row["value"])} for row in body["opening_balances"]]
    reference = models.ReferenceSet.model_validate(body)
    assert len(reference.institutions) == len(read_csv("institutions.csv"))
    storage = pytest.importorskip("services.storage.reference")
    # The loader reads the folder as `telemetry reference load` does, and finds it consistent.
    assert storage.read_reference_folder(REFERENCE_DIR).platform_connections


def _printed(name: str) -> list[dict[str, str]]:
    """Rows of a bulletin CSV (the package's copy), read here without the demo's parser."""
    with (BULLETIN_DIR / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


APRIL_END = date(2020, 4, 30)


def _connected(rows: list[dict[str, str]], platform: str, *, naive: str = "") -> set[str]:
    """org_codes connected at the end of April by the contract's rule (or a naive misreading)."""
    out = set()
    for row in rows:
        if row["platform"] != platform:
            continue
        start = date.fromisoformat(row["connected_on"])
        end = date.fromisoformat(row["disconnected_on"]) if row["disconnected_on"] else None
        if naive == "ignore disconnected_on":
            end = None
        if naive == "ignore connected_on":
            start = date.min
        if start <= APRIL_END and (end is None or end > APRIL_END):
            out.add(row["org_code"])
    return out


def _figures(connected: set[str], institutions: dict[str, dict[str, str]]) -> dict[str, int]:
    """The section's counts in the bulletin's words, from the contract's figures of one platform."""
    members = [institutions[code] for code in connected]
    by_region_level = Counter((m["region"] or "city", m["level"]) for m in members)
    in_city = [m for m in members if (m["region"] or "city") == "city"]
    return {
        "connected": len(members),
        "cities": len({m["city"] for m in members if m["city"]}),
        "districts": len({m["district"] for m in in_city if m["district"]}),
        "districts_primary": len({m["district"] for m in in_city if m["district"] and m["level"] == "primary"}),
        "city_secondary_plus": by_region_level["city", "secondary"] + by_region_level["city", "tertiary"],
        "city_tertiary": by_region_level["city", "tertiary"],
        "city_primary": by_region_level["city", "primary"],
        "secondary_plus": sum(n for (_, level), n in by_region_level.items() if level in {"secondary", "tertiary"}),
        "metro": sum(n for (region, _), n in by_region_level.items() if region == "metro"),
        "aided": sum(n for (region, _), n in by_region_level.items() if region == "aided"),
        "other": by_region_level["city", "other"],
    }


def _printed_counts(platform: str) -> dict[str, int]:
    return {
        r["figure"]: int(r["value"])
        for r in _printed("remote_platforms_2020-04.csv")
        if r["platform"] == platform and r["figure"] not in VOLUMES
    }


VOLUMES = {"consultations", "cases", "reports", "specimens", "images", "consultations_cumulative"}


@pytest.mark.parametrize("platform", ["consultation", "ecg", "lab", "imaging"])
def test_connected_institutions_give_every_printed_count(platform: str, read_csv: CsvReader) -> None:
    institutions = {i["org_code"]: i for i in read_csv("institutions.csv")}
    rows = read_csv("platform_connections.csv")
    figures = _figures(_connected(rows, platform), institutions)
    printed = _printed_counts(platform)
    assert printed, platform
    assert {name: figures[name] for name in printed} == printed
    # The top uploaders (other than the one that uploads without a connection) are connected.
    for top in _printed("remote_top_uploaders_2020-04.csv"):
        if top["platform"] == platform:
            assert org_code_of(top["unit"]) in _connected(rows, platform), top


@pytest.mark.parametrize(
    ("platform", "misreading"),
    [
        ("ecg", "ignore connected_on"),  # a centre that joins in May: 150 connected, 11 districts
        ("ecg", "count rows"),  # a centre closed and re-opened: two rows
        ("lab", "ignore disconnected_on"),  # an outpatient department that left on 20 April
        ("imaging", "ignore disconnected_on"),  # one that left in 2019
        ("imaging", "ignore connected_on"),  # one that joins in May
        ("consultation", "ignore connected_on"),  # an aided hospital that joins in June
    ],
)
def test_each_trap_changes_a_printed_count_only_when_misread(
    platform: str, misreading: str, read_csv: CsvReader
) -> None:
    institutions = {i["org_code"]: i for i in read_csv("institutions.csv")}
    rows = read_csv("platform_connections.csv")
    printed = _printed_counts(platform)
    if misreading == "count rows":
        connected = _connected(rows, platform)
        counted_rows = sum(1 for r in rows if r["platform"] == platform and r["org_code"] in connected)
        assert counted_rows != printed["connected"]
        return
    wrong = _figures(_connected(rows, platform, naive=misreading), institutions)
    assert {name: wrong[name] for name in printed} != printed


def test_institution_attributes(read_csv: CsvReader) -> None:
    institutions = read_csv("institutions.csv")
    districts = {i["name"] for i in institutions if i["kind"] == "district"}
    assert len(districts) == 12
    for inst in institutions:
        assert inst["level"] in {"tertiary", "secondary", "primary", "other", ""}, inst
        assert inst["region"] in {"city", "metro", "aided", "other"}, inst
        if inst["kind"] in {"district", "hospital"} or (inst["region"] == "city" and inst["kind"] != "hotline"):
            assert (inst["city"], inst["region"]) == ("南京市", "city"), inst
            assert inst["district"] in districts and inst["level"], inst
        elif inst["region"] != "city":
            assert inst["city"] and inst["city"] != "南京市" and not inst["district"], inst
    by_code = {i["org_code"]: i for i in institutions}
    assert by_code[org_code_of("六合区中医院")]["district"] == "六合区"
    assert by_code[org_code_of("建邺区")]["district"] == "建邺区"
    centres = [i for i in institutions if i["name"].endswith("社区卫生服务中心")]
    assert centres and all(i["level"] == "primary" and i["kind"] == "other" for i in centres)
    assert {i["level"] for i in institutions if i["kind"] == "hospital"} == {"tertiary", "secondary", "other"}


def test_hotline_centres_are_the_cities_of_the_province_table(read_csv: CsvReader) -> None:
    centres = {i["name"]: i for i in read_csv("institutions.csv") if i["kind"] == "hotline"}
    cities = [r["city"] for r in _printed("hotline_province_2020-04.csv") if r["city"] != "合计"]
    assert sorted(centres) == sorted(f"{city}12320" for city in cities)
    assert all(centres[f"{city}12320"]["city"] == f"{city}市" for city in cities)
    paragraph = {r["centre"] for r in _printed("hotline_2020-04.csv")}
    assert paragraph == {"南京12320"} and centres["南京12320"]["region"] == "city"


def test_booking_platforms_are_the_printed_ones(read_csv: CsvReader) -> None:
    printed = [r["platform"] for r in _printed("appointment_platforms_2020-04.csv") if r["no"]]
    platforms = read_csv("booking_platforms.csv")
    assert [p["name"] for p in platforms] == printed
    assert all(re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", p["platform_code"]) for p in platforms)


def test_opening_balances_make_the_printed_cumulative_figures(read_csv: CsvReader) -> None:
    balances = {(b["metric"], b["as_of"]): int(b["value"]) for b in read_csv("opening_balances.csv")}
    assert set(balances) == {("appointments", "2020-04"), ("remote_consultations", "2020-04")}
    april = next(r for r in _printed("appointments_2020-04.csv") if not r["no"])
    # 截止4月底，总预约挂号量为19238954次: everything before April plus April's bookings.
    assert balances["appointments", "2020-04"] + int(april["subtotal"]) == 19_238_954
    cumulative = next(
        int(r["value"])
        for r in _printed("remote_platforms_2020-04.csv")
        if (r["platform"], r["figure"]) == ("consultation", "consultations_cumulative")
    )
    # The rest (the April consultations) is checked against the generated stream.
    assert 0 < balances["remote_consultations", "2020-04"] < cumulative


def test_no_upload_days_are_the_holidays(read_csv: CsvReader) -> None:
    days = read_csv("no_upload_days.csv")
    assert [d["date"] for d in days] == sorted(d["date"] for d in days)
    assert {d["date"] for d in days} >= {"2020-04-04", "2020-04-05", "2020-04-06", "2020-05-01"}
    assert all(d["reason"] for d in days)
