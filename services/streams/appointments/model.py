"""The appointments stream's contract: `POST /v1/appointments` events and the report of them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.contract.models import Code, ContractEvent, Timestamp


class Channel(StrEnum):
    """How a booking was made (预约途径)."""

    ONLINE_12320 = "online_12320"
    """12320 web or app (12320在线预约)."""
    PHONE = "phone"
    """The 12320 phone line (电话预约)."""
    IN_CLINIC = "in_clinic"
    """Booked at the clinic (诊间预约)."""
    THIRD_PARTY = "third_party"
    """A third-party platform (第三方)."""


PLATFORM_CHANNELS = frozenset({Channel.ONLINE_12320, Channel.THIRD_PARTY})
"""The channels on which a booking may name its booking platform."""


class Appointment(ContractEvent):
    """`POST /v1/appointments`: one booking made; `org_code` is the institution where the appointment is."""

    channel: Channel
    platform: Code | None = None
    """A `platform_code` of the reference data's booking platforms; `null` is the same as leaving it out."""
    booked_at: Timestamp

    @field_validator("platform")
    @classmethod
    def _platform_only_where_the_channel_has_one(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A field validator, not a model validator, so the 422 names the field (`platform`),
        # not the whole event. `channel` is validated first (field order); absent from
        # `info.data` when it was itself invalid, and then that is the problem reported.
        channel = info.data.get("channel")
        if value is not None and channel is not None and channel not in PLATFORM_CHANNELS:
            raise ValueError(
                f"a booking on channel {channel.value} names no platform; "
                "only online_12320 and third_party bookings may"
            )
        return value


class AppointmentRow(BaseModel):
    """One institution's bookings of the month by channel (预约挂号服务统计表)."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str | None
    """None for an institution the reference data in force no longer has."""
    online_12320: int
    phone: int
    in_clinic: int
    third_party: int
    subtotal: int


class AppointmentTotal(BaseModel):
    """The total row (合计) of the rows shown."""

    model_config = ConfigDict(frozen=True)

    online_12320: int
    phone: int
    in_clinic: int
    third_party: int
    subtotal: int


class BookingPlatformRow(BaseModel):
    """Bookings of the month that name one booking platform (分途径预约情况统计)."""

    model_config = ConfigDict(frozen=True)

    platform_code: str
    name: str | None
    """None for a platform the reference data in force no longer has."""
    appointments: int


class AppointmentReport(BaseModel):
    """`GET /v1/reports/appointments?month=YYYY-MM`."""

    model_config = ConfigDict(frozen=True)

    month: str
    rows: list[AppointmentRow]
    """Institutions with bookings in the month, most bookings first."""
    total: AppointmentTotal
    appointments_cumulative: int | None
    """Bookings to the month's end, all institutions: the `appointments` opening balance plus the
    months from its `as_of`; None before any balance, and for an institution's token."""
    platforms: list[BookingPlatformRow]
    """Every booking platform, most bookings first."""
    platforms_total: int
