"""What the monitoring tests read: the rule files, the promtool tests, the dashboards, and
Grafana's variable interpolation (the little of it the dashboards use)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.stack import REPO

RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "deploy" / "prometheus" / "tests"
DASHBOARDS_DIR = REPO / "deploy" / "grafana" / "dashboards"
PROVISIONING_DIR = REPO / "deploy" / "grafana" / "provisioning"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
MONITORING_DOC = REPO / "docs" / "monitoring.md"

PROMETHEUS_UID = "telemetry-prometheus"
TIMESCALEDB_UID = "telemetry-timescaledb"


def rule_files() -> list[Path]:
    """deploy/prometheus/rules/*.yml, as Prometheus loads them."""
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    """deploy/prometheus/tests/*.yml."""
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    """Every rule (alerting and recording) of every group."""
    found: list[dict[str, Any]] = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found.extend(group["rules"])
    return found


def alerts() -> list[dict[str, Any]]:
    """The alerting rules."""
    return [r for r in rules() if "alert" in r]


def dashboards() -> dict[str, dict[str, Any]]:
    """Dashboard JSON by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


@dataclass(frozen=True)
class Target:
    """One query of a dashboard: a panel's target or a variable's query."""

    dashboard: str
    panel: str
    ref: str
    datasource_uid: str
    query: str

    @property
    def id(self) -> str:
        """A readable test id."""
        return f"{self.dashboard}:{self.panel}:{self.ref}"


def targets(uid: str) -> list[Target]:
    """Every query on the data source `uid`, over all dashboards."""
    found: list[Target] = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                source = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
                if source == uid:
                    query = target.get("rawSql") if uid == TIMESCALEDB_UID else target.get("expr")
                    found.append(Target(name, panel["title"], target["refId"], uid, query))
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("type") == "query" and (variable.get("datasource") or {}).get("uid") == uid:
                found.append(Target(name, f"variable {variable['name']}", "var", uid, variable["query"]))
    return found


_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::(?P<format>\w+))?\}|(?P<plain>\w+))")

# Grafana's built-in variables that the dashboards use, with the values of a typical range.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def render(query: str, values: Mapping[str, str | Sequence[str]], datasource: str) -> str:
    """Interpolate Grafana variables as Grafana does for `datasource` (SQL or Prometheus).

    A multi-value variable is `'a','b'` in SQL and `(a|b)` in PromQL by default; `:regex`
    gives `a|b` (escaped); a single value is inserted as it is.
    """

    def one(match: re.Match[str]) -> str:
        name = match["braced"] or match["plain"]
        if name in BUILTINS:
            return BUILTINS[name]
        if name not in values:
            raise KeyError(f"variable ${name} is not defined by the dashboard")
        value = values[name]
        fmt = match["format"]
        if isinstance(value, str):
            return re.escape(value) if fmt == "regex" else value
        if fmt == "regex":
            return "|".join(re.escape(v) for v in value)
        if fmt not in (None, "sqlstring", "singlequote"):
            raise ValueError(f"format {fmt} is not handled by this test")
        if datasource == TIMESCALEDB_UID:
            return ",".join("'" + v.replace("'", "''") + "'" for v in value)
        return "(" + "|".join(re.escape(v) for v in value) + ")"

    return _VARIABLE.sub(one, query)


def promql_names(expr: str) -> set[str]:
    """Metric and recording-rule names an expression reads (ours only)."""
    return set(re.findall(r"\b(?:collector|aggregator)_[a-z0-9_]+\b|\btelemetry:[a-z0-9_:]+\b", expr))
