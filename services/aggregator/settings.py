"""Aggregator settings, from `TELEMETRY_*` environment variables."""

from __future__ import annotations

import re
from datetime import date

from pydantic import Field, field_validator

from services.settings import DEFAULT_CONSUMER_GROUP, CommonSettings

_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


class AggregatorSettings(CommonSettings):
    """Everything the aggregator reads from the environment."""

    aggregator_host: str = "127.0.0.1"
    aggregator_port: int = Field(8081, ge=1, le=65535)
    aggregator_metrics_host: str = Field(
        "127.0.0.1", description="address of the metrics listener: internal only, it shows every institution's figures"
    )
    aggregator_metrics_port: int = Field(9181, ge=0, le=65535, description="metrics listener port (0: any free port)")
    consumer_group: str = DEFAULT_CONSUMER_GROUP
    max_batch_records: int = Field(500, ge=1, description="Kafka records (each up to 1,000 events) per poll")
    max_batch_events: int = Field(20_000, ge=1, description="events applied per database transaction")
    poll_timeout_ms: int = Field(100, ge=1)
    fetch_max_wait_ms: int = Field(50, ge=1)
    cache_refresh_s: float = Field(5.0, gt=0)
    db_pool_size: int = Field(8, ge=2)
    apply_connections: int = Field(
        2, ge=1, le=16, description="transactions a batch is split into by partition, applied at once"
    )
    dedupe_horizon_days: int = Field(
        400, ge=1, description="a closed month's dedupe keys are kept this long, then the month is archived"
    )
    archive_check_s: float = Field(3600.0, gt=0, description="how often months past the horizon are archived")
    quality_refresh_s: float = Field(30.0, gt=0, description="how often the data-quality gauges are re-read")
    restatements_refresh_s: float = Field(
        300.0, gt=0, description="how often the closed months' restatement gauges are recomputed"
    )
    quality_month: str | None = Field(
        None, description="YYYY-MM the data-quality gauges describe; default the current month (set it for a replay)"
    )
    quality_scheduled_lookback_days: int = Field(
        8, ge=2, description="an institution whose nightly batch carried no records for longer is not expected to"
    )

    page_session_hours: float = Field(
        8.0, gt=0, le=24 * 30, description="how long a sign-in to the institution pages lasts"
    )
    page_trust_forwarded_proto: bool = Field(
        False,
        description="trust X-Forwarded-Proto for the session cookie's Secure flag (only behind a proxy that sets it)",
    )

    @field_validator("quality_month")
    @classmethod
    def _month_format(cls, value: str | None) -> str | None:
        if value is not None and not _MONTH.match(value):
            raise ValueError(f"quality_month must be YYYY-MM, got {value!r}")
        return value

    @property
    def quality_month_date(self) -> date | None:
        """First day of `quality_month`, or None for the current month."""
        if self.quality_month is None:
            return None
        year, month = self.quality_month.split("-")
        return date(int(year), int(month), 1)
