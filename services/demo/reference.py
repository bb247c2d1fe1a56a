"""Demo reference data built from the bulletin: every file of the reference set.

`build_reference()` is deterministic: the same bulletin gives the same reference set,
byte for byte once rendered. The committed CSV files in `data/reference-2020-04/` are its
output; `python -m services.demo.reference` rewrites them and `--check` verifies them.

- institutions (`institutions.py`: codes, kinds, levels, regions, cities, districts; the
  bulletin's districts and hospitals and the institutions the new tables count);
- tables, declarations and kiosks, from the upload and kiosk tables;
- platform connections (`platforms.py`, made up to the remote-platform section's counts),
  booking platforms (the appointments-by-platform table), opening balances (so that the
  cumulative figures print) and the days without expected uploads.

Besides the CSV files, the builder decides which tables each institution uploads in April
(`DemoReference.uploaded`): the declarations are chosen around that set, so that what the
generator uploads and what the institutions declared stay consistent.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from services.demo.bulletin import Bulletin, load_bulletin
from services.demo.errors import PlanError
from services.demo.institutions import (
    ALIASES,
    DISTRICTS,
    HOSPITALS,
    Institution,
    Kind,
    all_institutions,
    canonical_name,
    org_code_of,
)
from services.demo.platforms import (
    APRIL_CONSULTATIONS,
    BOOKING_PLATFORMS,
    Connection,
    ConnectionPlan,
    plan_connections,
)

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference-2020-04"

# Days on which no upload is expected: the agreed holidays of 清明节 and 劳动节 (the platform
# still takes what arrives, and the bulletin's upload days count it).
NO_UPLOAD_DAYS: tuple[tuple[date, str], ...] = (
    (date(2020, 4, 4), "清明节"),
    (date(2020, 4, 5), "清明节"),
    (date(2020, 4, 6), "清明节"),
    (date(2020, 5, 1), "劳动节"),
    (date(2020, 5, 2), "劳动节"),
    (date(2020, 5, 3), "劳动节"),
    (date(2020, 5, 4), "劳动节"),
    (date(2020, 5, 5), "劳动节"),
)

Category = Literal["outpatient_visit", "discharge", "ehr_basic", "ehr_hypertension", "ehr_diabetes", "other"]
RequiredFor = Literal["district", "hospital", "both", "none"]

# The table catalogue: (name, category, required_for), coded T0001... in this order.
# Clinical tables (WS/T 500 EMR shared documents and the platform's detail tables) are
# required of both kinds, since districts upload for their community health centres;
# hospital-only tables are inpatient specialities; district-only tables are the public
# health records (WS/T 483, 国家基本公共卫生服务规范). Sizes: 70 both + 59 district
# = 129 required of districts; 70 both + 13 hospital = 83 required of hospitals.
_BOTH: tuple[tuple[str, Category], ...] = (
    ("门诊就诊记录", "outpatient_visit"),
    ("急诊就诊记录", "outpatient_visit"),
    ("出院小结", "discharge"),
    ("出院记录", "discharge"),
    *(
        (name, "other")
        for name in (
            "患者基本信息",
            "门诊挂号记录",
            "门诊诊断记录",
            "门（急）诊病历",
            "急诊留观病历",
            "西药处方",
            "中药处方",
            "门诊收费结算记录",
            "门诊收费明细",
            "检验报告",
            "检验结果明细",
            "微生物检验结果",
            "药敏试验结果",
            "检查报告",
            "医学影像检查报告",
            "病理检查报告",
            "治疗记录",
            "入院登记记录",
            "入院记录",
            "住院病案首页",
            "中医住院病案首页",
            "住院医嘱",
            "住院费用明细",
            "住院结算记录",
            "首次病程记录",
            "日常病程记录",
            "上级医师查房记录",
            "疑难病例讨论记录",
            "交接班记录",
            "转科记录",
            "阶段小结",
            "抢救记录",
            "会诊记录",
            "术前小结",
            "术前讨论",
            "术后首次病程记录",
            "死亡记录",
            "死亡病例讨论记录",
            "24小时内入出院记录",
            "24小时内入院死亡记录",
            "一般手术记录",
            "麻醉术前访视记录",
            "麻醉记录",
            "麻醉术后访视记录",
            "输血记录",
            "一般护理记录",
            "病重（病危）护理记录",
            "手术护理记录",
            "生命体征测量记录",
            "出入量记录",
            "入院评估",
            "护理计划",
            "出院评估与指导",
            "手术知情同意书",
            "麻醉知情同意书",
            "输血治疗同意书",
            "特殊检查及特殊治疗同意书",
            "病危（重）通知书",
            "其他知情告知同意书",
            "转诊（院）记录",
            "传染病报告卡",
            "死亡医学证明",
            "病历概要",
            "预约挂号记录",
            "检验申请单",
            "检查申请单",
        )
    ),
)
_HOSPITAL_ONLY: tuple[str, ...] = (
    "高值耗材使用记录",
    "待产记录",
    "阴道分娩记录",
    "剖宫产记录",
    "临床路径记录",
    "医疗不良事件报告",
    "医院感染监测记录",
    "手术排班记录",
    "重症监护记录",
    "血液透析记录",
    "医技预约记录",
    "科室信息",
    "医护人员信息",
)
_DISTRICT_ONLY: tuple[tuple[str, Category], ...] = (
    ("个人基本信息", "ehr_basic"),
    ("高血压患者管理卡", "ehr_hypertension"),
    ("高血压患者随访记录", "ehr_hypertension"),
    ("糖尿病患者管理卡", "ehr_diabetes"),
    ("糖尿病患者随访记录", "ehr_diabetes"),
    *(
        (name, "other")
        for name in (
            "家庭基本信息",
            "健康体检记录",
            "新生儿家庭访视记录",
            "1岁以内儿童健康检查记录",
            "1-2岁儿童健康检查记录",
            "3-6岁儿童健康检查记录",
            "出生医学证明",
            "第1次产前检查服务记录",
            "第2-5次产前随访服务记录",
            "产后访视记录",
            "产后42天健康检查记录",
            "预防接种卡",
            "预防接种记录",
            "疑似预防接种异常反应报告",
            "严重精神障碍患者个人信息补充表",
            "严重精神障碍患者随访服务记录",
            "肺结核患者第一次入户随访记录",
            "肺结核患者随访服务记录",
            "老年人生活自理能力评估",
            "老年人中医药健康管理服务记录",
            "儿童中医药健康管理服务记录",
            "健康教育活动记录",
            "卫生计生监督协管信息报告登记",
            "家庭医生签约记录",
            "家庭医生签约履约记录",
            "脑卒中患者随访记录",
            "冠心病患者随访记录",
            "慢性阻塞性肺疾病患者随访记录",
            "恶性肿瘤患者随访记录",
            "残疾人康复服务记录",
            "孕产妇保健手册",
            "婚前保健服务记录",
            "妇女病普查记录",
            "新生儿疾病筛查记录",
            "新生儿听力筛查记录",
            "5岁以下儿童死亡报告",
            "孕产妇死亡报告",
            "出生缺陷监测记录",
            "高危孕产妇管理记录",
            "体弱儿管理记录",
            "居民健康卡发卡记录",
            "健康档案调阅记录",
            "健康档案迁移记录",
            "65岁及以上老年人健康管理记录",
            "慢病患者年度评估记录",
            "社区卫生服务机构信息",
            "家庭病床记录",
            "计划生育技术服务记录",
            "避孕药具发放记录",
            "流动人口基本信息",
            "职业健康检查记录",
            "学生健康体检记录",
            "精神障碍患者危险性评估记录",
            "艾滋病患者随访记录",
        )
    ),
)
# Retired tables stay in the catalogue (old events refer to them) but are required of no one.
_RETIRED: tuple[str, ...] = ("门诊日志（停用）", "住院日志（停用）", "健康档案索引（旧版，停用）")

REQUIRED_COUNTS: Mapping[Kind, int] = {"district": 129, "hospital": 83}

# A category's tables an institution uploads, in order of importance: the first always,
# the others once the institution uploads at least this many tables (larger systems
# cover more of a category).
_CATEGORY_MIN_TABLES = 20


@dataclass(frozen=True, slots=True)
class Table:
    """Row of tables.csv."""

    table_code: str
    name: str
    category: Category
    required_for: RequiredFor

    def required_of(self, kind: Kind) -> bool:
        """Whether institutions of `kind` must upload this table."""
        return self.required_for in {kind, "both"}


@dataclass(frozen=True, slots=True)
class DemoReference:
    """The demo's reference set plus the tables each institution uploads in April 2020."""

    institutions: tuple[Institution, ...]
    tables: tuple[Table, ...]
    declarations: tuple[tuple[str, str], ...]
    """(org_code, table_code), sorted."""
    kiosks: tuple[tuple[str, str], ...]
    """(kiosk_id, org_code), sorted."""
    uploaded: Mapping[str, tuple[str, ...]]
    """org_code -> table codes with records in April 2020 (not part of the CSV files)."""
    connections: ConnectionPlan
    """platform_connections.csv, and which of its rows are traps."""
    booking_platforms: tuple[tuple[str, str], ...]
    """(platform_code, name), in the bulletin's order."""
    opening_balances: tuple[tuple[str, str, int], ...]
    """(metric, as_of YYYY-MM, value)."""
    no_upload_days: tuple[tuple[date, str], ...]

    def institution(self, org_code: str) -> Institution:
        """The institution with that code."""
        for inst in self.institutions:
            if inst.org_code == org_code:
                return inst
        raise KeyError(org_code)

    def table(self, table_code: str) -> Table:
        """The table with that code."""
        for table in self.tables:
            if table.table_code == table_code:
                return table
        raise KeyError(table_code)

    def required(self, kind: Kind) -> tuple[Table, ...]:
        """Tables required of institutions of `kind`."""
        return tuple(t for t in self.tables if t.required_of(kind))

    def declared(self, org_code: str) -> tuple[str, ...]:
        """Table codes declared by an institution (empty for 未反馈)."""
        return tuple(t for o, t in self.declarations if o == org_code)

    def kiosk_ids(self, org_code: str) -> tuple[str, ...]:
        """Kiosks registered to an institution."""
        return tuple(k for k, o in self.kiosks if o == org_code)


def table_catalogue() -> tuple[Table, ...]:
    """The demo's table catalogue, coded T0001... in a fixed order."""
    rows: list[tuple[str, Category, RequiredFor]] = [
        *((name, category, "both") for name, category in _BOTH),
        *((name, "other", "hospital") for name in _HOSPITAL_ONLY),
        *((name, category, "district") for name, category in _DISTRICT_ONLY),
        *((name, "other", "none") for name in _RETIRED),
    ]
    return tuple(
        Table(table_code=f"T{n:04d}", name=name, category=category, required_for=required_for)
        for n, (name, category, required_for) in enumerate(rows, start=1)
    )


def _needed_categories(bulletin: Bulletin) -> dict[str, list[Category]]:
    """Categories each uploading institution must cover in April to produce its figures."""
    needed: dict[str, list[Category]] = {}
    for d in bulletin.districts:
        figures: tuple[tuple[Category, int], ...] = (
            ("outpatient_visit", d.outpatient_visits),
            ("discharge", d.discharges),
            ("ehr_basic", d.ehr_basic_cumulative),
            ("ehr_hypertension", d.ehr_hypertension_cumulative),
            ("ehr_diabetes", d.ehr_diabetes_cumulative),
        )
        # A category with a non-zero figure needs a table of it with records in April;
        # the cumulative health records get an April increment wherever they are non-zero.
        needed[org_code_of(d.unit)] = [category for category, value in figures if value > 0]
    for h in bulletin.hospitals:
        # Not in the bulletin: every uploading hospital reports outpatient visits and discharges.
        needed[org_code_of(h.unit)] = ["outpatient_visit", "discharge"]
    return needed


def _choose_uploaded(
    org_code: str, count: int, pool: Sequence[Table], categories: Sequence[Category]
) -> tuple[str, ...]:
    rng = random.Random(f"uploaded:{org_code}")  # noqa: S311 - reproducible demo data, no secret
    chosen: list[Table] = []
    for category in categories:
        of_category = [t for t in pool if t.category == category]
        take = len(of_category) if count >= _CATEGORY_MIN_TABLES else 1
        chosen.extend(of_category[:take])
    others = [t for t in pool if t.category == "other"]
    if count < len(chosen) or count - len(chosen) > len(others):
        raise PlanError(f"{org_code}: cannot choose {count} uploaded tables covering {list(categories)}")
    chosen.extend(rng.sample(others, count - len(chosen)))
    return tuple(sorted(t.table_code for t in chosen))


def build_reference(bulletin: Bulletin | None = None) -> DemoReference:
    """Build the demo reference set from the bulletin (the package's copy by default)."""
    bulletin = bulletin if bulletin is not None else load_bulletin()
    tables = table_catalogue()
    institutions = all_institutions()
    needed = _needed_categories(bulletin)
    targets: list[tuple[str, Kind, int | None, int]] = [
        *((org_code_of(d.unit), "district", d.declared_tables, d.uploaded_tables) for d in bulletin.districts),
        *((org_code_of(h.unit), "hospital", h.declared_tables, h.uploaded_tables) for h in bulletin.hospitals),
    ]
    uploaded: dict[str, tuple[str, ...]] = {}
    declarations: list[tuple[str, str]] = []
    for org_code, kind, declared_count, uploaded_count in targets:
        pool = [t for t in tables if t.required_of(kind)]
        chosen = _choose_uploaded(org_code, uploaded_count, pool, needed[org_code])
        uploaded[org_code] = chosen
        if declared_count is None:
            continue  # 未反馈: it uploads, but has declared nothing.
        if declared_count < len(chosen):
            raise PlanError(f"{org_code}: declares {declared_count} tables but uploads {len(chosen)}")
        # Declared = what it uploads plus tables it declared and did not upload this month.
        rng = random.Random(f"declared:{org_code}")  # noqa: S311 - reproducible demo data, no secret
        rest = [t.table_code for t in pool if t.table_code not in chosen]
        extra = rng.sample(rest, declared_count - len(chosen))
        declarations.extend((org_code, code) for code in (*chosen, *extra))
    kiosks: list[tuple[str, str]] = []
    for row in bulletin.kiosks:
        org_code = org_code_of(row.unit)
        kiosks.extend((f"K-{org_code}-{n:03d}", org_code) for n in range(1, row.kiosks + 1))
    return DemoReference(
        institutions=institutions,
        tables=tables,
        declarations=tuple(sorted(declarations)),
        kiosks=tuple(sorted(kiosks)),
        uploaded=dict(sorted(uploaded.items())),
        connections=plan_connections(bulletin, institutions),
        booking_platforms=_booking_platforms(bulletin),
        opening_balances=_opening_balances(bulletin),
        no_upload_days=NO_UPLOAD_DAYS,
    )


def _booking_platforms(bulletin: Bulletin) -> tuple[tuple[str, str], ...]:
    """The booking platforms, as printed; each must be one the demo knows the channel of."""
    codes = {name: code for code, name, _ in BOOKING_PLATFORMS}
    printed = [row.platform for row in bulletin.appointment_platforms]
    if sorted(printed) != sorted(codes):
        raise PlanError(f"booking platforms printed {printed}, the demo knows {sorted(codes)}")
    return tuple((codes[name], name) for name in printed)


def _opening_balances(bulletin: Bulletin) -> tuple[tuple[str, str, int], ...]:
    """Everything before April 2020, so that the printed cumulative figures come out.

    Appointments: the printed total to date less the printed April total. Consultations on
    the remote consultation platform: the printed cumulative figure less the demo's April ones.
    """
    appointments = bulletin.appointments_to_date - bulletin.appointments_printed_total.subtotal
    consultations = bulletin.remote_figures("consultation")["consultations_cumulative"] - APRIL_CONSULTATIONS
    if appointments < 0 or consultations < 0:
        raise PlanError(f"negative opening balances: {appointments} appointments, {consultations} consultations")
    return (("appointments", "2020-04", appointments), ("remote_consultations", "2020-04", consultations))


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    # "\n" line ends, so the files are byte-identical whatever the platform.
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _connection_row(c: Connection) -> tuple[str, str, str, str]:
    return (c.platform, c.org_code, c.connected_on.isoformat(), _cell(c.disconnected_on))


def render_reference(ref: DemoReference) -> dict[str, str]:
    """The CSV files of a reference set, by file name, exactly as committed."""
    return {
        "institutions.csv": _csv_text(
            ("org_code", "name", "kind", "level", "region", "city", "district"),
            [
                (i.org_code, i.name, i.kind, _cell(i.level), _cell(i.region), _cell(i.city), _cell(i.district))
                for i in ref.institutions
            ],
        ),
        "tables.csv": _csv_text(
            ("table_code", "name", "category", "required_for"),
            [(t.table_code, t.name, t.category, t.required_for) for t in ref.tables],
        ),
        "declarations.csv": _csv_text(("org_code", "table_code"), ref.declarations),
        "kiosks.csv": _csv_text(("kiosk_id", "org_code"), ref.kiosks),
        "platform_connections.csv": _csv_text(
            ("platform", "org_code", "connected_on", "disconnected_on"),
            [_connection_row(c) for c in ref.connections.connections],
        ),
        "booking_platforms.csv": _csv_text(("platform_code", "name"), ref.booking_platforms),
        "opening_balances.csv": _csv_text(
            ("metric", "as_of", "value"), [(m, as_of, str(v)) for m, as_of, v in ref.opening_balances]
        ),
        "no_upload_days.csv": _csv_text(("date", "reason"), [(d.isoformat(), r) for d, r in ref.no_upload_days]),
    }


def write_reference(folder: Path, ref: DemoReference | None = None) -> list[Path]:
    """Write the CSV files into `folder`; return their paths."""
    ref = ref if ref is not None else build_reference()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_reference(ref).items():
        path = folder / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


def stale_files(folder: Path, ref: DemoReference | None = None) -> list[str]:
    """Names of the CSV files in `folder` that differ from what the builder produces."""
    ref = ref if ref is not None else build_reference()
    stale = []
    for name, text in render_reference(ref).items():
        path = folder / name
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: rewrite (or with --check, verify) the committed reference CSV files."""
    parser = argparse.ArgumentParser(
        prog="python -m services.demo.reference",
        description="Build the demo reference data (April 2020) from the bulletin tables.",
    )
    parser.add_argument("--out", type=Path, default=REFERENCE_DIR, help="folder to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only verify the folder; exit 1 if it differs")
    args = parser.parse_args(argv)
    ref = build_reference()
    if args.check:
        stale = stale_files(args.out, ref)
        for name in stale:
            print(f"{args.out / name}: differs from the builder's output", file=sys.stderr)
        return 1 if stale else 0
    for path in write_reference(args.out, ref):
        print(path)
    return 0


__all__ = [
    "ALIASES",
    "DISTRICTS",
    "HOSPITALS",
    "REFERENCE_DIR",
    "DemoReference",
    "Institution",
    "Kind",
    "Table",
    "build_reference",
    "canonical_name",
    "org_code_of",
    "render_reference",
    "stale_files",
    "write_reference",
]


if __name__ == "__main__":
    sys.exit(main())
