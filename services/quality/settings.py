"""The data-quality checks' settings, from `TELEMETRY_QUALITY_*` environment variables.

The conformance threshold is the bulletin's (`TELEMETRY_BULLETIN_CONFORMANCE_THRESHOLD`), which
listed low conformance before these checks had a report of their own; it is passed in with these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.quality.cross_stream import CROSS_STREAM_TOLERANCE
from services.quality.trends import OUTLIER_SHARE
from services.quality.uploads import FLATLINE_DAYS
from services.settings import settings_on


class QualitySettings(BaseSettings):
    """How the checks judge a month; frozen once built."""

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_QUALITY_", frozen=True, extra="ignore")

    flatline_days: int = Field(
        FLATLINE_DAYS, ge=1, le=31, description="silent days in a row at the month's end that make a flatline"
    )
    outlier_share: float = Field(
        OUTLIER_SHARE, gt=0, le=10, description="volume_outlier: off the previous three months' mean by more than this"
    )
    cross_stream_tolerance: float = Field(
        CROSS_STREAM_TOLERANCE,
        ge=0,
        lt=1,
        description="cross_stream_mismatch: share of the larger figure the two may differ by",
    )


@dataclass(frozen=True)
class Thresholds:
    """Everything the checks compare with, in one value."""

    conformance_threshold: float = 0.95
    flatline_days: int = FLATLINE_DAYS
    outlier_share: float = OUTLIER_SHARE
    cross_stream_tolerance: float = CROSS_STREAM_TOLERANCE

    @classmethod
    def of(cls, settings: QualitySettings, conformance_threshold: float) -> Thresholds:
        """The thresholds of `settings` and the bulletin's conformance threshold."""
        return cls(
            conformance_threshold,
            settings.flatline_days,
            settings.outlier_share,
            settings.cross_stream_tolerance,
        )


def settings_of(state: Any) -> QualitySettings:
    """An app's quality settings: `state.quality_settings` if its entry point set them, else read once."""
    return settings_on(state, "quality_settings", QualitySettings)
