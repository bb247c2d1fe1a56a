"""The remote-upload stream's contract: `POST /v1/remote-uploads` events and the rows of their report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from services.contract.models import ContractEvent, Count, InstitutionLevel, Region, RemotePlatform, Timestamp

COUNT_KEYS: tuple[str, ...] = ("consultations", "cases", "reports", "specimens", "images")
"""Every count key of any platform, in the order reports and the raw table write them."""

PLATFORM_COUNTS: Mapping[RemotePlatform, tuple[str, ...]] = {
    RemotePlatform.CONSULTATION: ("consultations",),
    RemotePlatform.ECG: ("cases", "consultations"),
    RemotePlatform.LAB: ("reports", "specimens"),
    RemotePlatform.IMAGING: ("reports", "images"),
}
"""The count keys each platform allows (contract revision 2)."""

MAIN_COUNT: Mapping[RemotePlatform, str] = {
    RemotePlatform.CONSULTATION: "consultations",
    RemotePlatform.ECG: "cases",
    RemotePlatform.LAB: "reports",
    RemotePlatform.IMAGING: "reports",
}
"""The count a platform's top uploaders are ranked by."""

Counts = Annotated[dict[str, Count], Field(min_length=1)]


def _key_problem(key: str, value: Any, platform: RemotePlatform | None) -> InitErrorDetails:
    if platform is None:
        reason = PydanticCustomError(
            "count_key", "not a count of any platform (counts: {keys})", {"keys": ", ".join(COUNT_KEYS)}
        )
    else:
        reason = PydanticCustomError(
            "count_key",
            "not a count of the {platform} platform (its counts: {keys})",
            {"platform": platform.value, "keys": ", ".join(PLATFORM_COUNTS[platform])},
        )
    return InitErrorDetails(type=reason, loc=(key,), input=value)


def _again(error: ErrorDetails) -> InitErrorDetails:
    """A validation error as the details it can be raised again from, in one list with others."""
    details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


class RemoteUpload(ContractEvent):
    """`POST /v1/remote-uploads`: one upload to a remote-medicine platform."""

    platform: RemotePlatform
    uploaded_at: Timestamp
    counts: Counts

    @field_validator("counts", mode="wrap")
    @classmethod
    def _platform_counts(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        """The counts, each key one the platform has; every problem of them at once.

        `platform` is declared before `counts`, so it is in `info.data` when it was valid (when
        it was not, a key of no platform is still named). A key the platform does not have is
        a problem at `counts.<key>`, listed together with any problem of the values: a
        ValidationError raised here keeps its locations under the field's.
        """
        platform = info.data.get("platform")
        known = platform if isinstance(platform, RemotePlatform) else None
        allowed = PLATFORM_COUNTS[known] if known is not None else COUNT_KEYS
        problems = (
            [_key_problem(k, v, known) for k, v in value.items() if k not in allowed] if isinstance(value, dict) else []
        )
        try:
            counts = handler(value)
        except ValidationError as exc:
            problems += [_again(error) for error in exc.errors()]
        if problems:
            raise ValidationError.from_exception_data("counts", problems)
        return counts


class RegionLevelCount(BaseModel):
    """Institutions connected at the month's end of one region and level (level null: unknown)."""

    model_config = ConfigDict(frozen=True)

    region: Region
    level: InstitutionLevel | None
    count: int


class TopUploader(BaseModel):
    """One of a platform's three institutions with the most of its main count in the month."""

    model_config = ConfigDict(frozen=True)

    org_code: str
    name: str
    value: int


class RemotePlatformFigures(BaseModel):
    """One platform of `GET /v1/reports/remote-platforms`: its connections and its month."""

    model_config = ConfigDict(frozen=True)

    platform: RemotePlatform
    connected: int
    cities: int
    districts: int
    districts_primary: int
    by_region_level: list[RegionLevelCount]
    consultations: int
    cases: int
    reports: int
    specimens: int
    images: int
    consultations_cumulative: int | None
    """The consultation platform's, with the opening balance; null for the others and without a balance."""
    top_uploaders: list[TopUploader]


class RemotePlatformsReport(BaseModel):
    """`GET /v1/reports/remote-platforms?month=YYYY-MM`: one object per platform, in the contract's order."""

    model_config = ConfigDict(frozen=True)

    platforms: list[RemotePlatformFigures]
