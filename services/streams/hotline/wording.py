"""How the bulletin names each figure of a hotline row: in a table and in a sentence.

The words are the April 2020 bulletin's; the bulletin's section and the data-quality checks'
sentences both use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Wording:
    """How the bulletin names a figure: in a table (Chinese, English) and in a sentence (words, unit)."""

    label: str
    label_en: str
    words: str
    unit: str


WORDING: Mapping[str, Wording] = {
    "calls": Wording("受理电话", "calls", "共受理咨询电话", "个"),
    "consultation": Wording("咨询类（不含专家咨询）", "consultation", "咨询类（不含专家咨询）", "个"),
    "complaint": Wording("医疗服务投诉", "complaints", "医疗服务投诉", "个"),
    "appointment": Wording("电话预约", "appointments by phone", "电话预约", "个"),
    "crisis_intervention": Wording("心理危机干预", "crisis intervention", "心理危机干预", "个"),
    "satisfaction_survey": Wording("医院满意度调查（呼入）", "satisfaction surveys", "医院满意度调查（呼入）", "个"),
    "voice_qa": Wording("自助语音问答", "self-service voice Q&A", "自助语音问答", "个"),
    "work_orders_city_12345": Wording("市12345工单", "city 12345 work orders", "受理市12345工单", "件"),
    "work_orders_province_12345": Wording("省12345工单", "province 12345 work orders", "省12345工单", "件"),
}
"""Every figure of a report row, in its order; the words are the April 2020 bulletin's."""
