"""Demo reference data (institutions, tables, declarations, kiosks) built from the bulletin.

`build_reference()` is deterministic: the same bulletin gives the same reference set,
byte for byte once rendered. The committed CSV files in `data/reference-2020-04/` are its
output; `python -m services.demo.reference` rewrites them and `--check` verifies them.

Institution codes are stable by construction, not by position: districts carry their
administrative division code (`D320115` 江宁区), hospitals an explicit `H` number listed
below. Names the bulletin tables spell differently are merged through `ALIASES`; each
merge (and each near-name that is deliberately *not* merged) is documented in
`services/demo/README.md`.

Besides the four CSV files, the builder decides which tables each institution uploads
in April (`DemoReference.uploaded`): the declarations are chosen around that set, so
that what the generator uploads and what the institutions declared stay consistent.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from services.demo.bulletin import Bulletin, load_bulletin
from services.demo.errors import PlanError

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference-2020-04"

Kind = Literal["district", "hospital"]
Category = Literal["outpatient_visit", "discharge", "ehr_basic", "ehr_hypertension", "ehr_diabetes", "other"]
RequiredFor = Literal["district", "hospital", "both", "none"]

# Administrative division codes (GB/T 2260) of Nanjing's districts. 江北新区 is a
# state-level new area, not an administrative division, and has no code: it gets the
# city's prefix 3201 with letters, which no numeric division code can ever collide with.
DISTRICTS: tuple[tuple[str, str], ...] = (
    ("D320102", "玄武区"),
    ("D320104", "秦淮区"),
    ("D320105", "建邺区"),
    ("D320106", "鼓楼区"),
    ("D320111", "浦口区"),
    ("D320113", "栖霞区"),
    ("D320114", "雨花台区"),
    ("D320115", "江宁区"),
    ("D320116", "六合区"),
    ("D320117", "溧水区"),
    ("D320118", "高淳区"),
    ("D3201JB", "江北新区"),
)

# Hospitals, numbered once and for all (a new hospital takes the next number; a number
# is never reused): first the hospital upload table in its printed order, then the
# hospitals only the kiosk table lists, then those only the appointments table lists.
HOSPITALS: tuple[tuple[str, str], ...] = (
    ("H0001", "江苏省中医院"),
    ("H0002", "江苏省人民医院"),
    ("H0003", "南京鼓楼医院"),
    ("H0004", "南京市儿童医院"),
    ("H0005", "南京市中医院"),
    ("H0006", "东南大学附属中大医院"),
    ("H0007", "南京市第一医院"),
    ("H0008", "南京市第二医院"),
    ("H0009", "南京医科大学第二附属医院"),
    ("H0010", "东部战区总医院"),
    ("H0011", "江苏省肿瘤医院"),
    ("H0012", "南京市妇幼保健院"),
    ("H0013", "江苏省中西医结合医院"),
    ("H0014", "南京市中西医结合医院"),
    ("H0015", "南京市江北人民医院"),
    ("H0016", "南京脑科医院"),
    ("H0017", "南京市口腔医院"),
    ("H0018", "江苏省第二中医院"),
    ("H0019", "江苏省口腔医院"),
    ("H0020", "江苏省省级机关医院"),
    ("H0021", "南京市胸科医院"),
    ("H0022", "南京市中心医院"),
    ("H0023", "南京医科大学附属眼科医院"),
    ("H0024", "东部战区空军医院"),
    ("H0025", "南京市职业病防治院"),
    ("H0026", "中国人民解放军第八一医院"),
    ("H0027", "南京市江宁医院"),
    ("H0028", "南京市高淳人民医院"),
    ("H0029", "中国医学科学院皮肤病研究所"),
    ("H0030", "南京明基医院"),
    ("H0031", "泰康仙林鼓楼医院"),
    ("H0032", "南京同仁医院"),
    ("H0033", "上海梅山医院"),
    ("H0034", "南京医科大学附属逸夫医院"),
    ("H0035", "东部战区总医院汤山分院"),
    ("H0036", "南京理工大学校医院"),
    ("H0037", "南京市大厂医院"),
    ("H0038", "南京鼓楼医院江北国际医院"),
    ("H0039", "南京市六合人民医院"),
    ("H0040", "南京市溧水区人民医院"),
    ("H0041", "南京市浦口区中医院"),
    ("H0042", "南京市高淳中医院"),
    ("H0043", "南京市栖霞区医院"),
    ("H0044", "南京医科大学友谊整形外科医院"),
    ("H0045", "南京市浦口区中心医院"),
    ("H0046", "南京市红十字医院"),
    ("H0047", "南京市江宁医院（湖山路）"),
)

# Spellings of the bulletin tables -> the canonical name above. Only re-spellings of one
# institution belong here; distinct campuses and branches stay distinct (README.md).
ALIASES: Mapping[str, str] = {
    "江苏省级机关医院": "江苏省省级机关医院",  # hospital upload table drops the second 省
    "南京江北人民医院": "南京市江北人民医院",  # kiosk table drops 市
    "同仁医院": "南京同仁医院",  # kiosk table drops 南京
    "南医大眼科医院": "南京医科大学附属眼科医院",  # hospital upload table abbreviates
    "南京理工大学医院": "南京理工大学校医院",  # appointments table drops 校
}

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
class Institution:
    """Row of institutions.csv."""

    org_code: str
    name: str
    kind: Kind


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


def canonical_name(unit: str) -> str:
    """The canonical institution name for a unit as spelled in any bulletin table."""
    return ALIASES.get(unit, unit)


def org_code_of(unit: str) -> str:
    """The stable org_code of a unit as spelled in any bulletin table; KeyError if unknown."""
    name = canonical_name(unit)
    for code, known in (*DISTRICTS, *HOSPITALS):
        if known == name:
            return code
    raise KeyError(unit)


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
    institutions = tuple(
        sorted(
            (
                *(Institution(code, name, "district") for code, name in DISTRICTS),
                *(Institution(code, name, "hospital") for code, name in HOSPITALS),
            ),
            key=lambda i: i.org_code,
        )
    )
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
    )


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    # "\n" line ends, so the files are byte-identical whatever the platform.
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def render_reference(ref: DemoReference) -> dict[str, str]:
    """The four CSV files of a reference set, by file name, exactly as committed."""
    return {
        "institutions.csv": _csv_text(
            ("org_code", "name", "kind"), [(i.org_code, i.name, i.kind) for i in ref.institutions]
        ),
        "tables.csv": _csv_text(
            ("table_code", "name", "category", "required_for"),
            [(t.table_code, t.name, t.category, t.required_for) for t in ref.tables],
        ),
        "declarations.csv": _csv_text(("org_code", "table_code"), ref.declarations),
        "kiosks.csv": _csv_text(("kiosk_id", "org_code"), ref.kiosks),
    }


def write_reference(folder: Path, ref: DemoReference | None = None) -> list[Path]:
    """Write the four CSV files into `folder`; return their paths."""
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


if __name__ == "__main__":
    sys.exit(main())
