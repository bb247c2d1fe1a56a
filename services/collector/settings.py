"""Collector settings, from `TELEMETRY_*` environment variables."""

from __future__ import annotations

from pydantic import Field

from services.settings import CommonSettings


class CollectorSettings(CommonSettings):
    """Everything the collector reads from the environment."""

    collector_host: str = "127.0.0.1"
    collector_port: int = Field(8080, ge=1, le=65535)
    publish_timeout_s: float = Field(5.0, gt=0, description="wait this long for the broker's ack before 503")
    retry_after_s: int = Field(5, ge=1, description="Retry-After sent with 503")
    cache_refresh_s: float = Field(5.0, gt=0)
    producer_linger_ms: int = Field(2, ge=0)
