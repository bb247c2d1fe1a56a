"""Every PromQL expression of the rules and the dashboards, evaluated by the local Prometheus
(`deploy/local/test` starts it with deploy/local/prometheus.sh), and every metric they read
checked against what the services export."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from services.aggregator.metrics import AggregatorMetrics
from services.collector.metrics import CollectorMetrics
from tests.monitoring.sources import PROMETHEUS_UID, Target, promql_names, render, rules, targets

PROMETHEUS_URL = os.environ.get("TELEMETRY_TEST_PROMETHEUS_URL", "http://127.0.0.1:9090")
# Values for the dashboards' variables (any real ones: only the syntax is at stake here).
VARIABLES = {"kind": "district", "institution": ["D320102", "D320104"], "month": "2020-04"}


def _query(expr: str) -> dict[str, Any]:
    try:
        response = httpx.get(f"{PROMETHEUS_URL}/api/v1/query", params={"query": expr}, timeout=10)
    except httpx.TransportError as exc:
        pytest.fail(
            f"Prometheus at {PROMETHEUS_URL} not reachable ({exc!r}): start it with deploy/local/prometheus.sh start"
        )
    body: dict[str, Any] = response.json()
    return body


def _rule_id(rule: dict[str, Any]) -> str:
    return str(rule.get("alert") or rule["record"])


def test_a_broken_expression_is_reported_as_an_error() -> None:
    """The checks below can fail: Prometheus answers a parse error with status "error"."""
    body = _query("sum(rate(collector_http_requests_total[5m])")
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"


@pytest.mark.parametrize("rule", rules(), ids=_rule_id)
def test_rule_expression_evaluates(rule: dict[str, Any]) -> None:
    body = _query(rule["expr"])
    assert body["status"] == "success", body


@pytest.mark.parametrize("target", targets(PROMETHEUS_UID), ids=lambda t: t.id)
def test_dashboard_expression_evaluates(target: Target) -> None:
    expr = render(target.query, VARIABLES, PROMETHEUS_UID)
    assert "$" not in expr
    body = _query(expr)
    assert body["status"] == "success", body


def test_prometheus_runs_the_rules_of_the_repository() -> None:
    """The local Prometheus loaded deploy/prometheus/rules (prometheus.sh start reloads it)."""
    response = httpx.get(f"{PROMETHEUS_URL}/api/v1/rules", timeout=10)
    loaded = {r["name"] for g in response.json()["data"]["groups"] for r in g["rules"]}
    assert loaded == {_rule_id(r) for r in rules()}


def _exported() -> set[str]:
    """Sample names the services can export (a labelled metric with no child yet included)."""
    families: list[Metric] = []
    for build in (CollectorMetrics, AggregatorMetrics):
        registry = CollectorRegistry()
        build(registry)
        families += registry.collect()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix for family in families for suffix in suffixes[family.type]}


def test_every_metric_read_is_exported() -> None:
    """A misspelt metric makes an alert that never fires and a panel that stays empty."""
    recorded = {r["record"] for r in rules() if "record" in r}
    expressions = [r["expr"] for r in rules()] + [t.query for t in targets(PROMETHEUS_UID)]
    read = {n for e in expressions for n in promql_names(e)}
    assert "aggregator_institution_table_coverage_ratio" in read  # the extraction finds names
    assert read - _exported() - recorded == set()
