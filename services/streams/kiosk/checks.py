"""What the collector checks of a kiosk transaction beyond the contract: the kiosk is its institution's."""

from __future__ import annotations

from collections.abc import Sequence

from services.storage.reference import ReferenceSnapshot
from services.streams.kiosk.model import KioskTransaction


def reference_problems(event: KioskTransaction, ref: ReferenceSnapshot) -> Sequence[tuple[str, str]]:
    """(field, reason) of a transaction from a kiosk not registered to its institution."""
    if ref.kiosk_org.get(event.kiosk_id) != event.org_code:
        return (("kiosk_id", f"kiosk {event.kiosk_id!r} is not registered to {event.org_code}"),)
    return ()
