"""What the collector checks of a hotline contact beyond the contract: its institution is a 12320 centre."""

from __future__ import annotations

from collections.abc import Sequence

from services.contract.models import InstitutionKind
from services.storage.reference import ReferenceSnapshot
from services.streams.hotline.model import HotlineContact


def reference_problems(event: HotlineContact, ref: ReferenceSnapshot) -> Sequence[tuple[str, str]]:
    """(field, reason) of a contact from an institution that is not of kind `hotline`."""
    kind = ref.kind_of(event.org_code)
    if kind is not InstitutionKind.HOTLINE:
        shown = kind.value if kind is not None else "unknown"
        return (("org_code", f"{event.org_code} is not a 12320 hotline centre (its kind is {shown}, not hotline)"),)
    return ()
