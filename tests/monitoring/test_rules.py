"""The alert rules: promtool unit tests (firing and quiet cases for every alert), and what
each rule must carry for the person on call."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.sources import (
    ALERTMANAGER_CONFIG,
    MONITORING_DOC,
    alerts,
    rule_files,
    rule_test_files,
    rules,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
ANNOTATIONS = {"summary", "summary_zh", "description", "description_zh", "runbook"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: deploy/local/prometheus.sh install provides it (deploy/local/test runs it)")
    return path


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=240, cwd=cwd, check=False)


def test_rule_files_are_valid() -> None:
    result = _run(_tool("promtool"), "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = _run(_tool("promtool"), "test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in rule_test_files():
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_speaks_to_the_person_on_call(rule: dict[str, object]) -> None:
    annotations = rule["annotations"]
    labels = rule["labels"]
    assert isinstance(annotations, dict) and isinstance(labels, dict)
    assert set(annotations) == ANNOTATIONS
    for key in ("summary_zh", "description_zh"):
        assert CJK.search(annotations[key]), f"{key} is not in Chinese"
    for key in ("summary", "description"):
        assert not CJK.search(annotations[key]), f"{key} should be the English text"
    assert labels["severity"] in {"critical", "warning"}
    assert labels["area"] in {"platform", "data_quality"}
    anchor = annotations["runbook"].removeprefix("docs/monitoring.md#")
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in MONITORING_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"docs/monitoring.md has no section #{anchor}"


def test_thresholds_are_named_recording_rules() -> None:
    """Alerts read thresholds from telemetry:threshold:* rules, which exist, once each."""
    recorded = [r["record"] for r in rules() if "record" in r]
    assert len(recorded) == len(set(recorded))
    used = {name for a in alerts() for name in re.findall(r"telemetry:threshold:[a-z_]+", a["expr"])}
    defined = {name for name in recorded if name.startswith("telemetry:threshold:")}
    assert used == defined, "a threshold no alert reads, or an alert reading a threshold that is not defined"


def test_alertmanager_configuration_is_valid() -> None:
    result = _run(_tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    routed = {m for route in config["route"]["routes"] for m in route["matchers"]}
    assert {f'area="{a["labels"]["area"]}"' for a in alerts()} <= routed, "an alert area without a route"
