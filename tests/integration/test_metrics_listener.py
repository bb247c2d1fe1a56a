"""The aggregator's metrics carry every institution's figures: they are not on the report API
that institutions reach, but on a listener of their own, bound to loopback unless told."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.stack import StackConfig, admin_headers, aggregator_running

pytestmark = pytest.mark.integration


async def test_the_report_api_does_not_serve_the_metrics_their_own_listener_does(stack_config: StackConfig) -> None:
    async with aggregator_running(stack_config) as aggregator:
        assert (await aggregator.get("/metrics")).status_code == 404
        assert (await aggregator.get("/metrics", headers=admin_headers())).status_code == 404
        listener = aggregator.app.state.metrics_listener  # type: ignore[attr-defined]
        assert listener.host == "127.0.0.1"
        async with httpx.AsyncClient(base_url=listener.url) as scraper:
            text = (await scraper.get("/metrics")).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"aggregator_institution_upload_days", "aggregator_events_applied"} <= names
