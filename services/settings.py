"""Settings shared by both services (each service extends them in its own settings module)."""

from __future__ import annotations

from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)

# The aggregators' consumer group; the command line waits on it by default.
DEFAULT_CONSUMER_GROUP = "health-telemetry-aggregator"
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "admin", "token", "test"}


class CommonSettings(BaseSettings):
    """Read from `TELEMETRY_*` environment variables; frozen once built."""

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    events_topic: str = "telemetry.events"
    dead_letter_topic: str = "telemetry.events.dead-letter"
    events_partitions: int = Field(6, ge=1)
    events_replication_factor: int = Field(1, ge=1, description="3 in production and on the local 3-broker cluster")
    events_min_insync_replicas: int | None = Field(
        None, ge=1, description="copies an acks=all write needs in sync; default 2 with replication 2 or more, else 1"
    )
    kafka_topics_recheck_s: float = Field(
        30.0, gt=0, description="how often topics found less durable than configured are checked again"
    )
    database_url: SecretStr = SecretStr("postgresql://telemetry:telemetry@127.0.0.1:55432/telemetry")
    admin_token: SecretStr
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"

    @field_validator("admin_token")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        # A guessable admin token would let anyone write any institution's data.
        if value is None:
            return None
        secret = value.get_secret_value()
        if secret.lower() in _PLACEHOLDERS or len(secret) < 16:
            raise ValueError("TELEMETRY_ADMIN_TOKEN must be a random value of at least 16 characters")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> CommonSettings:
        # More in-sync copies than copies: no write could ever be acknowledged.
        if self.min_insync_replicas > self.events_replication_factor:
            raise ValueError(
                f"TELEMETRY_EVENTS_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) exceeds "
                f"TELEMETRY_EVENTS_REPLICATION_FACTOR ({self.events_replication_factor})"
            )
        return self

    @property
    def min_insync_replicas(self) -> int:
        """`min.insync.replicas` of the topics: the setting, or 2 when there are two copies or more.

        With 2, a `202` from Kafka means two brokers hold the events, and one broker may be
        lost without refusing writes (with replication 3); 1 would let `acks=all` be
        satisfied by the leader alone.
        """
        if self.events_min_insync_replicas is not None:
            return self.events_min_insync_replicas
        return min(self.events_replication_factor, 2)

    @property
    def zone(self) -> ZoneInfo:
        """The platform time zone."""
        return ZoneInfo(self.timezone)


class ToolSettings(CommonSettings):
    """The command line's settings: the admin token is only needed by commands that post."""

    admin_token: SecretStr | None = None  # type: ignore[assignment]
    collector_url: str = "http://127.0.0.1:8080"
    aggregator_url: str = "http://127.0.0.1:8081"


def settings_on(state: Any, name: str, kind: type[S]) -> S:
    """`state.<name>` if the app's entry point set it, else `kind()` read from the environment once
    and kept on the app (never in a module global, which would outlive the app and leak between tests).

    For the settings of a part the app's factory does not build itself (the bulletin's, the checks').
    """
    found = getattr(state, name, None)
    if isinstance(found, kind):
        return found
    built = kind()
    setattr(state, name, built)
    return built
