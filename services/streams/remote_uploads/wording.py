"""How the bulletin names the remote-medicine platforms and their counts (the April 2020 bulletin's words).

The bulletin's section and the data-quality checks' sentences both use them.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.contract.models import RemotePlatform
from services.reports import fmt
from services.streams.remote_uploads.model import PLATFORM_COUNTS

PLATFORM_NAMES: Mapping[RemotePlatform, str] = {
    RemotePlatform.CONSULTATION: "远程医学会诊平台",
    RemotePlatform.ECG: "远程心电监测诊断平台",
    RemotePlatform.LAB: "远程临检诊断平台",
    RemotePlatform.IMAGING: "远程影像诊断平台",
}
# What one of a platform's counts is called, and its measure word.
COUNT_WORDS: Mapping[tuple[RemotePlatform, str], tuple[str, str]] = {
    (RemotePlatform.CONSULTATION, "consultations"): ("会诊", "次"),
    (RemotePlatform.ECG, "cases"): ("心电病例", "份"),
    (RemotePlatform.ECG, "consultations"): ("会诊", "例"),
    (RemotePlatform.LAB, "reports"): ("检验报告", "份"),
    (RemotePlatform.LAB, "specimens"): ("标本", "份"),
    (RemotePlatform.IMAGING, "reports"): ("影像报告", "份"),
    (RemotePlatform.IMAGING, "images"): ("图像", "份"),
}


def counts_text(platform: RemotePlatform, counts: Mapping[str, int]) -> str:
    """A platform's counts in words: 心电病例 12 份、会诊 3 例."""
    return "、".join(
        f"{COUNT_WORDS[(platform, key)][0]} {fmt.integer(counts[key])} {COUNT_WORDS[(platform, key)][1]}"
        for key in PLATFORM_COUNTS[platform]
    )
