"""Every institution of the demo, with its code, kind, level, region, city and district.

Two groups (services/demo/README.md says more):
- the institutions the bulletin names: 12 district health commissions and 48 hospitals
  (their codes are stable by construction: division codes and an explicit `H` number),
  with a level and a district each (hand-written here, plausible, not official);
- institutions the new tables count but do not name, made up: the 12320 hotline centres of
  the province table, the city's community health centres (one per street or former town),
  private outpatient departments, hospitals of the metropolitan area's cities, remote
  institutions the city supports, and four city institutions of no level.

Names the bulletin tables spell differently are merged through `ALIASES`; each merge (and
each near-name deliberately *not* merged) is documented in the README.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["district", "hospital", "hotline", "other"]
Level = Literal["tertiary", "secondary", "primary", "other"]
Region = Literal["city", "metro", "aided", "other"]

CITY = "南京市"

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
DISTRICT_NAMES: tuple[str, ...] = tuple(name for _, name in DISTRICTS)

# Hospitals, numbered once and for all (a new hospital takes the next number; a number is
# never reused): the hospital upload table in its printed order, then the hospitals only the
# kiosk table lists, then those only the appointments table lists, then those only the
# remote-platform section lists. Each with its level and district.
HOSPITALS: tuple[tuple[str, str, Level, str], ...] = (
    ("H0001", "江苏省中医院", "tertiary", "秦淮区"),
    ("H0002", "江苏省人民医院", "tertiary", "鼓楼区"),
    ("H0003", "南京鼓楼医院", "tertiary", "鼓楼区"),
    ("H0004", "南京市儿童医院", "tertiary", "鼓楼区"),
    ("H0005", "南京市中医院", "tertiary", "秦淮区"),
    ("H0006", "东南大学附属中大医院", "tertiary", "鼓楼区"),
    ("H0007", "南京市第一医院", "tertiary", "秦淮区"),
    ("H0008", "南京市第二医院", "tertiary", "鼓楼区"),
    ("H0009", "南京医科大学第二附属医院", "tertiary", "鼓楼区"),
    ("H0010", "东部战区总医院", "tertiary", "玄武区"),
    ("H0011", "江苏省肿瘤医院", "tertiary", "玄武区"),
    ("H0012", "南京市妇幼保健院", "tertiary", "秦淮区"),
    ("H0013", "江苏省中西医结合医院", "tertiary", "玄武区"),
    ("H0014", "南京市中西医结合医院", "tertiary", "玄武区"),
    ("H0015", "南京市江北人民医院", "secondary", "江北新区"),
    ("H0016", "南京脑科医院", "tertiary", "鼓楼区"),
    ("H0017", "南京市口腔医院", "tertiary", "鼓楼区"),
    ("H0018", "江苏省第二中医院", "tertiary", "建邺区"),
    ("H0019", "江苏省口腔医院", "tertiary", "鼓楼区"),
    ("H0020", "江苏省省级机关医院", "tertiary", "鼓楼区"),
    ("H0021", "南京市胸科医院", "tertiary", "鼓楼区"),
    ("H0022", "南京市中心医院", "secondary", "玄武区"),
    ("H0023", "南京医科大学附属眼科医院", "tertiary", "鼓楼区"),
    ("H0024", "东部战区空军医院", "tertiary", "鼓楼区"),
    ("H0025", "南京市职业病防治院", "secondary", "鼓楼区"),
    ("H0026", "中国人民解放军第八一医院", "tertiary", "秦淮区"),
    ("H0027", "南京市江宁医院", "tertiary", "江宁区"),
    ("H0028", "南京市高淳人民医院", "tertiary", "高淳区"),
    ("H0029", "中国医学科学院皮肤病研究所", "tertiary", "玄武区"),
    ("H0030", "南京明基医院", "tertiary", "建邺区"),
    ("H0031", "泰康仙林鼓楼医院", "tertiary", "栖霞区"),
    ("H0032", "南京同仁医院", "tertiary", "江宁区"),
    ("H0033", "上海梅山医院", "secondary", "雨花台区"),
    ("H0034", "南京医科大学附属逸夫医院", "tertiary", "江宁区"),
    ("H0035", "东部战区总医院汤山分院", "secondary", "江宁区"),
    ("H0036", "南京理工大学校医院", "other", "玄武区"),
    ("H0037", "南京市大厂医院", "secondary", "江北新区"),
    ("H0038", "南京鼓楼医院江北国际医院", "tertiary", "江北新区"),
    ("H0039", "南京市六合人民医院", "secondary", "六合区"),
    ("H0040", "南京市溧水区人民医院", "secondary", "溧水区"),
    ("H0041", "南京市浦口区中医院", "secondary", "浦口区"),
    ("H0042", "南京市高淳中医院", "secondary", "高淳区"),
    ("H0043", "南京市栖霞区医院", "secondary", "栖霞区"),
    ("H0044", "南京医科大学友谊整形外科医院", "secondary", "鼓楼区"),
    ("H0045", "南京市浦口区中心医院", "secondary", "浦口区"),
    ("H0046", "南京市红十字医院", "secondary", "秦淮区"),
    ("H0047", "南京市江宁医院（湖山路）", "tertiary", "江宁区"),
    ("H0048", "南京市六合区中医院", "secondary", "六合区"),
)

# Spellings of the bulletin tables -> the canonical name above. Only re-spellings of one
# institution belong here; distinct campuses and branches stay distinct (README.md).
ALIASES: Mapping[str, str] = {
    "江苏省级机关医院": "江苏省省级机关医院",  # hospital upload table drops the second 省
    "南京江北人民医院": "南京市江北人民医院",  # kiosk table drops 市
    "同仁医院": "南京同仁医院",  # kiosk table drops 南京
    "南医大眼科医院": "南京医科大学附属眼科医院",  # hospital upload table abbreviates
    "南京理工大学医院": "南京理工大学校医院",  # appointments table drops 校
    "六合区中医院": "南京市六合区中医院",  # remote top uploaders drop 南京市
}

# The 12320 centres of the province table (4月全省12320), by the city's division code.
# 镇江, 扬州 and 淮安 are cities of the Nanjing metropolitan area; the others are not.
HOTLINE_CENTRES: tuple[tuple[str, str, Region], ...] = (
    ("L3201", "南京", "city"),
    ("L3202", "无锡", "other"),
    ("L3205", "苏州", "other"),
    ("L3206", "南通", "other"),
    ("L3208", "淮安", "metro"),
    ("L3210", "扬州", "metro"),
    ("L3211", "镇江", "metro"),
    ("L3212", "泰州", "other"),
)

# One community health centre per street (街道) or former town of each district, made up
# after the city's streets: "<district><street>社区卫生服务中心", coded C<district><nn>.
STREETS: Mapping[str, tuple[str, ...]] = {
    "玄武区": ("梅园新村", "新街口", "玄武门", "锁金村", "红山", "孝陵卫", "玄武湖"),
    "秦淮区": (
        "秦虹", "夫子庙", "双塘", "中华门", "五老村", "洪武路", "大光路", "瑞金路", "月牙湖", "光华路", "朝天宫",
        "红花",
    ),
    "建邺区": ("南苑", "兴隆", "莫愁湖", "沙洲", "双闸", "江心洲"),
    "鼓楼区": (
        "宁海路", "华侨路", "湖南路", "中央门", "挹江门", "江东", "凤凰", "小市", "热河南路", "幕府山", "建宁路",
        "宝塔桥", "下关",
    ),
    "浦口区": ("江浦", "桥林", "汤泉", "星甸", "永宁", "珠江", "石桥", "乌江", "老山"),
    "栖霞区": ("尧化", "马群", "迈皋桥", "燕子矶", "栖霞", "龙潭", "仙林", "八卦洲", "西岗", "靖安"),
    "雨花台区": ("雨花", "赛虹桥", "西善桥", "板桥", "铁心桥", "梅山", "古雄", "宁南"),
    "江宁区": (
        "东山", "秣陵", "汤山", "淳化", "禄口", "江宁", "谷里", "湖熟", "横溪", "麒麟", "周岗", "陶吴", "铜井", "上峰",
        "土桥", "龙都", "东善桥", "丹阳", "铜山", "方山",
    ),
    "六合区": (
        "雄州", "龙池", "程桥", "金牛湖", "横梁", "龙袍", "马鞍", "冶山", "竹镇", "新篁", "八百桥", "东沟", "玉带",
        "瓜埠",
    ),
    "溧水区": ("永阳", "柘塘", "东屏", "石湫", "洪蓝", "白马", "和凤", "晶桥", "明觉", "共和", "孔镇", "群力"),
    "高淳区": ("淳溪", "古柏", "阳江", "砖墙", "漆桥", "固城", "东坝", "桠溪", "定埠", "青山"),
    "江北新区": ("泰山", "顶山", "沿江", "盘城", "大厂", "长芦", "葛塘", "高新"),
}  # fmt: skip

# Private outpatient departments (门诊部, level other), made up: "南京<district><word>门诊部",
# coded M<district><nn>; more of them in the old city than at its edges.
CLINICS_PER_DISTRICT: Mapping[str, int] = {
    "玄武区": 10, "秦淮区": 12, "建邺区": 9, "鼓楼区": 14, "浦口区": 5, "栖霞区": 8, "雨花台区": 7, "江宁区": 12,
    "六合区": 4, "溧水区": 2, "高淳区": 2, "江北新区": 5,
}  # fmt: skip
_CLINIC_WORDS = (
    "仁康", "瑞康", "济民", "德仁", "康华", "惠民", "博爱", "仁和", "康宁", "益民", "安康", "华康", "明德", "慈航",
    "泰和", "恒康", "福康", "永康", "健民", "长康", "嘉禾", "宁康", "春晖", "维康", "正和", "金康", "宏康", "众康",
    "康达", "颐和", "仁爱", "怡康",
)  # fmt: skip

# Hospitals of other cities of the metropolitan area (南京都市圈), made up after real names.
METRO: tuple[tuple[str, str, str, Level], ...] = (
    ("X340501", "马鞍山市人民医院", "马鞍山市", "tertiary"),
    ("X340502", "马鞍山市中心医院", "马鞍山市", "secondary"),
    ("X340503", "当涂县人民医院", "马鞍山市", "secondary"),
    ("X321101", "镇江市第一人民医院", "镇江市", "tertiary"),
    ("X321102", "句容市人民医院", "镇江市", "secondary"),
    ("X321001", "扬州市第一人民医院", "扬州市", "tertiary"),
    ("X321002", "仪征市人民医院", "扬州市", "secondary"),
)
# Remote institutions the city supports (边远地区帮扶医疗机构), made up after real names.
AIDED: tuple[tuple[str, str, str, Level], ...] = (
    ("A01", "墨竹工卡县人民医院", "拉萨市", "secondary"),
    ("A02", "霍城县人民医院", "伊犁哈萨克自治州", "secondary"),
    ("A03", "共和县人民医院", "海南藏族自治州", "secondary"),
    ("A04", "商洛市中心医院", "商洛市", "tertiary"),
    ("A05", "洛南县医院", "商洛市", "secondary"),
    ("A06", "丹凤县医院", "商洛市", "secondary"),
    ("A07", "泗洪县人民医院", "宿迁市", "secondary"),
    ("A08", "德钦县人民医院", "迪庆藏族自治州", "secondary"),
)
# City institutions of no level (其他机构): public-health and service bodies.
CITY_OTHERS: tuple[tuple[str, str, str], ...] = (
    ("O01", "南京市急救中心", "鼓楼区"),
    ("O02", "南京市疾病预防控制中心", "鼓楼区"),
    ("O03", "南京红十字血液中心", "玄武区"),
    ("O04", "南京市卫生信息中心", "鼓楼区"),
)


@dataclass(frozen=True, slots=True)
class Institution:
    """Row of institutions.csv."""

    org_code: str
    name: str
    kind: Kind
    level: Level | None = None
    region: Region | None = None
    city: str | None = None
    district: str | None = None


def canonical_name(unit: str) -> str:
    """The canonical institution name for a unit as spelled in any bulletin table."""
    return ALIASES.get(unit, unit)


def org_code_of(unit: str) -> str:
    """The stable org_code of a district or hospital as spelled in any bulletin table; KeyError if unknown."""
    name = canonical_name(unit)
    for code, known in DISTRICTS:
        if known == name:
            return code
    for code, known, _, _ in HOSPITALS:
        if known == name:
            return code
    raise KeyError(unit)


def hotline_centre_of(city: str) -> str:
    """The org_code of a city's 12320 centre, the city written as in the province table (苏州)."""
    for code, short, _ in HOTLINE_CENTRES:
        if short == city:
            return code
    raise KeyError(city)


def district_code(district: str) -> str:
    """The digits (or letters) of a district's code after the `D`: 320115, 3201JB."""
    for code, name in DISTRICTS:
        if name == district:
            return code[1:]
    raise KeyError(district)


def community_centres() -> tuple[Institution, ...]:
    """The city's community health centres, district by district (level primary)."""
    return tuple(
        Institution(f"C{district_code(d)}{n:02d}", f"{d}{street}社区卫生服务中心", "other", "primary", "city", CITY, d)
        for d in DISTRICT_NAMES
        for n, street in enumerate(STREETS[d], start=1)
    )


def clinics() -> tuple[Institution, ...]:
    """The city's private outpatient departments, district by district (level other)."""
    out = []
    offset = 0
    for d in DISTRICT_NAMES:
        # 玄武区 -> 南京玄武..., but 江北新区 keeps its name (江北新 is no name).
        short = d if d == "江北新区" else d.removesuffix("区")
        for n in range(1, CLINICS_PER_DISTRICT[d] + 1):
            word = _CLINIC_WORDS[(offset + n * 7) % len(_CLINIC_WORDS)]
            out.append(
                Institution(
                    f"M{district_code(d)}{n:02d}", f"南京{short}{word}门诊部", "other", "other", "city", CITY, d
                )
            )
        offset += 3
    return tuple(out)


def all_institutions() -> tuple[Institution, ...]:
    """Every institution of the demo reference set, sorted by org_code."""
    found = [
        *(Institution(code, name, "district", "other", "city", CITY, name) for code, name in DISTRICTS),
        *(Institution(code, name, "hospital", level, "city", CITY, d) for code, name, level, d in HOSPITALS),
        *(
            Institution(code, f"{short}12320", "hotline", None, region, f"{short}市")
            for code, short, region in HOTLINE_CENTRES
        ),
        *community_centres(),
        *clinics(),
        *(Institution(code, name, "other", level, "metro", city) for code, name, city, level in METRO),
        *(Institution(code, name, "other", level, "aided", city) for code, name, city, level in AIDED),
        *(Institution(code, name, "other", "other", "city", CITY, d) for code, name, d in CITY_OTHERS),
    ]
    return tuple(sorted(found, key=lambda i: i.org_code))
