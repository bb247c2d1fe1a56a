"""The hotline stream's contract: `POST /v1/hotline-contacts` events and the rows of their report."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.contract.models import ContractEvent, Timestamp


class ContactKind(StrEnum):
    """What reached the centre: a call it answered, or a 12345 work order it received."""

    CALL = "call"
    WORK_ORDER = "work_order"


class ContactCategory(StrEnum):
    """The category of a contact; which ones a kind allows is `CATEGORIES_OF`."""

    CONSULTATION = "consultation"
    COMPLAINT = "complaint"
    APPOINTMENT = "appointment"
    CRISIS_INTERVENTION = "crisis_intervention"
    SATISFACTION_SURVEY = "satisfaction_survey"
    VOICE_QA = "voice_qa"
    CITY_12345 = "city_12345"
    PROVINCE_12345 = "province_12345"


CALL_CATEGORIES = (
    ContactCategory.CONSULTATION,
    ContactCategory.COMPLAINT,
    ContactCategory.APPOINTMENT,
    ContactCategory.CRISIS_INTERVENTION,
    ContactCategory.SATISFACTION_SURVEY,
    ContactCategory.VOICE_QA,
)
"""The call categories, in the bulletin's order (and the report's columns)."""
WORK_ORDER_CATEGORIES = (ContactCategory.CITY_12345, ContactCategory.PROVINCE_12345)
CATEGORIES_OF: Mapping[ContactKind, frozenset[ContactCategory]] = {
    ContactKind.CALL: frozenset(CALL_CATEGORIES),
    ContactKind.WORK_ORDER: frozenset(WORK_ORDER_CATEGORIES),
}


class HotlineContact(ContractEvent):
    """`POST /v1/hotline-contacts`: one call answered or one work order received by a 12320 centre."""

    kind: ContactKind
    category: ContactCategory
    occurred_at: Timestamp

    @field_validator("category")
    @classmethod
    def _category_of_its_kind(cls, category: ContactCategory, info: ValidationInfo) -> ContactCategory:
        # A rule across two fields, in the model so that the collector answers 422 and the consumer
        # dead-letters an event that got past it; a field validator rather than a model validator
        # because a problem then names the field (`category`), not the whole event. `kind` is
        # validated first (field order); when it is itself invalid, its own problem is reported.
        kind = info.data.get("kind")
        if kind is not None and category not in CATEGORIES_OF[kind]:
            allowed = ", ".join(c.value for c in ContactCategory if c in CATEGORIES_OF[kind])
            raise ValueError(f"{category.value!r} is not a category of kind {kind.value!r}; it takes one of {allowed}")
        return category


class HotlineRow(BaseModel):
    """One centre of `GET /v1/reports/hotline`; the total has `org_code` and `city` null and name 合计."""

    model_config = ConfigDict(frozen=True)

    org_code: str | None
    name: str
    city: str | None
    calls: int
    consultation: int
    complaint: int
    appointment: int
    crisis_intervention: int
    satisfaction_survey: int
    voice_qa: int
    work_orders_city_12345: int
    work_orders_province_12345: int


class HotlineReport(BaseModel):
    """`GET /v1/reports/hotline`: every centre, most calls first, and the total of those rows."""

    model_config = ConfigDict(frozen=True)

    rows: list[HotlineRow]
    total: HotlineRow
