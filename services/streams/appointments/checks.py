"""What the collector checks of a booking beyond the contract: the platform it names is known."""

from __future__ import annotations

from collections.abc import Sequence

from services.storage.reference import ReferenceSnapshot
from services.streams.appointments.model import Appointment


def reference_problems(event: Appointment, ref: ReferenceSnapshot) -> Sequence[tuple[str, str]]:
    """(field, reason) of a booking naming a platform the reference data does not list."""
    if event.platform is not None and event.platform not in ref.booking_platforms:
        return (("platform", f"unknown booking platform {event.platform!r}"),)
    return ()
