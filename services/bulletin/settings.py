"""Bulletin settings, from `TELEMETRY_BULLETIN_*` environment variables.

The platform time zone is not repeated here: it is the common `TELEMETRY_TIMEZONE`, passed in
by the entry point together with these settings.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BulletinSettings(BaseSettings):
    """How the bulletin judges conformance and how it runs Chromium; frozen once built."""

    model_config = SettingsConfigDict(env_prefix="TELEMETRY_BULLETIN_", frozen=True, extra="ignore")

    conformance_threshold: float = Field(
        0.95, ge=0.0, le=1.0, description="an institution whose conformance rate is below this is listed"
    )
    chromium: str = Field("chromium", min_length=1, description="the headless browser: a name on PATH or a path")
    render_timeout_s: float = Field(120.0, gt=0, description="bound on one Chromium run (PDF or PNG)")
