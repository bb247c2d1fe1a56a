"""Aggregator settings, from `TELEMETRY_*` environment variables."""

from __future__ import annotations

from pydantic import Field

from services.settings import CommonSettings


class AggregatorSettings(CommonSettings):
    """Everything the aggregator reads from the environment."""

    aggregator_host: str = "127.0.0.1"
    aggregator_port: int = Field(8081, ge=1, le=65535)
    consumer_group: str = "health-telemetry-aggregator"
    max_batch_records: int = Field(500, ge=1, description="Kafka records (each up to 1,000 events) per poll")
    max_batch_events: int = Field(20_000, ge=1, description="events applied per database transaction")
    poll_timeout_ms: int = Field(100, ge=1)
    fetch_max_wait_ms: int = Field(50, ge=1)
    cache_refresh_s: float = Field(5.0, gt=0)
    db_pool_size: int = Field(8, ge=2)
