"""The remote-medicine platforms' check: uploads on days the institution was not connected (counted all the same)."""

from __future__ import annotations

from services.contract.models import InstitutionKind
from services.quality.problems import InstitutionProblems, Problem
from services.reports import fmt
from services.streams.remote_uploads.report import RemoteMonth, unconnected_uploads
from services.streams.remote_uploads.wording import PLATFORM_NAMES, counts_text


def remote_problems(data: RemoteMonth) -> list[InstitutionProblems]:
    """Per institution, its uploads to each platform on days it was not connected (counted all the same)."""
    by_org: dict[str, list[Problem]] = {}
    for found in unconnected_uploads(data):
        by_org.setdefault(found.org_code, []).append(
            Problem(
                "unconnected_remote_upload",
                f"{PLATFORM_NAMES[found.platform]}：未接入期间上传 {fmt.integer(found.uploads)} 次"
                f"（{counts_text(found.platform, found.counts)}），已计入",
                tuple(fmt.day_ranges(found.days)),
                {
                    "platform": found.platform.value,
                    "uploads": found.uploads,
                    "counts": dict(found.counts),
                    "days": [day.isoformat() for day in sorted(found.days)],
                },
            )
        )
    out = []
    for org, problems in by_org.items():
        kind = data.ref.kind_of(org) or InstitutionKind.OTHER
        out.append(InstitutionProblems(org, data.names.get(org, org), kind, tuple(problems)))
    return out
