"""The generated monitoring/ folder: alert rules proven by promtool, a sound Grafana dashboard.

`promtool check rules` validates the rule file, `promtool test rules` runs its unit
tests (the memory alerts fire above 70 % and 85 % and not at them), every dashboard
query is parsed as PromQL by promtool, and every metric the rules and panels use is
one the app or Streamlit exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import run
from .tooling import find_tool, render_project

PROJECT_NAME = "Ops Dashboard"
SLUG = "ops-dashboard"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# The metric families the app exports at /metrics and Streamlit at /_stcore/metrics.
APP_METRICS = {
    "app_memory_rss_bytes",
    "app_memory_limit_bytes",
    "app_memory_usage_ratio",
    "app_memory_guard_actions_total",
    "app_db_pool_size",
    "app_db_pool_checked_out",
    "app_db_pool_overflow",
    "app_db_pool_max_connections",
    "app_db_query_duration_seconds",
    "app_db_replica_fallbacks_total",
    "app_cache_requests_total",
    "app_script_errors_total",
    "app_memory_working_set_bytes",
    "app_memory_shedding",
    "app_sessions_refused_total",
    "process_open_fds",  # prometheus_client's process collector, on the same /metrics
    "process_max_fds",
}
STREAMLIT_METRICS = {"active_sessions", "session_events_total"}
# What an operator needs on one screen.
DASHBOARD_MUST_SHOW = {
    "app_memory_rss_bytes",
    "app_memory_limit_bytes",
    "app_db_pool_checked_out",
    "app_db_pool_max_connections",
    "app_db_query_duration_seconds",
    "app_cache_requests_total",
    "active_sessions",
    "app_db_replica_fallbacks_total",
    "app_script_errors_total",
}
METRIC_RE = re.compile(r"\b((?:app|session)_[a-z_]+|active_sessions)\b")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_project(tmp_path_factory.mktemp("monitoring"), project_name=PROJECT_NAME)


@pytest.fixture(scope="module")
def dashboard(project: Path) -> dict[str, Any]:
    return json.loads((project / "monitoring/grafana/dashboards/app.json").read_text())


def metric_names(expr: str) -> set[str]:
    """Metric families in a PromQL expression (histogram series map to their family)."""
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in METRIC_RE.findall(expr)}


def alert_rules(project: Path) -> list[dict[str, Any]]:
    groups = yaml.safe_load((project / "monitoring/alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_pass_promtool_check(project: Path) -> None:
    promtool = find_tool("promtool")
    run([promtool, "check", "rules", "monitoring/alerts.yml"], project)


def test_alert_unit_tests_pass(project: Path) -> None:
    """alerts.test.yml: warning above 70 %, critical above 85 %, neither at exactly those values;
    pool above 90 % per engine; replica fallbacks; targets down for 2 minutes."""
    promtool = find_tool("promtool")
    result = run([promtool, "test", "rules", "alerts.test.yml"], project / "monitoring")
    assert "SUCCESS" in result.stdout + result.stderr


def test_alerts_cover_the_operating_risks(project: Path) -> None:
    rules = {rule["alert"]: rule for rule in alert_rules(project)}
    assert set(rules) >= {
        "AppMemoryHigh",
        "AppMemoryCritical",
        "AppDbPoolNearlyExhausted",
        "AppDbReplicaFallback",
        "AppTargetDown",
        "AppFileDescriptorsHigh",
        "AppTurningSessionsAway",
    }
    assert rules["AppMemoryHigh"]["labels"]["severity"] == "warning"
    assert rules["AppMemoryCritical"]["labels"]["severity"] == "critical"
    assert rules["AppTargetDown"]["expr"] == 'up{job=~"app|streamlit"} == 0'
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert metric_names(rule["expr"]) <= APP_METRICS | STREAMLIT_METRICS, name


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows
    return [panel for panel in found if panel["type"] != "row"]


def test_dashboard_is_a_provisionable_grafana_dashboard(project: Path, dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == SLUG and len(dashboard["uid"]) <= 40
    assert dashboard["title"] == PROJECT_NAME
    assert isinstance(dashboard["schemaVersion"], int)
    panels = panels_of(dashboard)
    assert len({panel["id"] for panel in panels}) == len(panels), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["title"], panel["id"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
            assert target["expr"].strip() and target["refId"], panel["title"]
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["w"] > 0 and box["x"] + box["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
    # The text was rendered: no template or Grafana-import placeholders are left.
    text = (project / "monitoring/grafana/dashboards/app.json").read_text()
    assert "${DS_" not in text and "{%" not in text


def test_dashboard_queries_are_valid_promql(project: Path, dashboard: dict[str, Any], tmp_path: Path) -> None:
    """promtool parses each panel query, as a recording rule, with Grafana's variables filled in."""
    promtool = find_tool("promtool")
    rules = []
    for panel in panels_of(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": expr})
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run([promtool, "check", "rules", str(rule_file)], tmp_path)


def test_dashboard_shows_the_exported_metrics(dashboard: dict[str, Any]) -> None:
    used: set[str] = set()
    for panel in panels_of(dashboard):
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names <= APP_METRICS | STREAMLIT_METRICS, f"{panel['title']}: unknown {names}"
            used |= names
    assert used >= DASHBOARD_MUST_SHOW, f"missing panels for {DASHBOARD_MUST_SHOW - used}"


# --- The prod overlay's backup alerts (CloudNativePG's and the Barman Cloud plugin's metrics) ---

BACKUP_ALERT_TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  # A backup at t=0 and none after it: quiet at 25 h, firing once it is 26 h old.
  - interval: 1h
    input_series:
      - series: 'PLUGIN_last_available_backup_timestamp{namespace="ns",pod="SLUG-db-1"}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 25h
        alertname: DatabaseBackupTooOld
        exp_alerts: []
      - eval_time: 27h
        alertname: DatabaseBackupTooOld
        exp_alerts:
          - exp_labels: {severity: critical, namespace: ns}
  # Finished segments wait and the last archival is 20 minutes old: firing after 5 minutes.
  # A quiet database (nothing waiting) archives nothing for an hour: no alert.
  - interval: 1m
    input_series:
      - series: 'cnpg_collector_pg_wal_archive_status{value="ready",pod="SLUG-db-1"}'
        values: '3x20'
      - series: 'cnpg_pg_stat_archiver_seconds_since_last_archival{pod="SLUG-db-1"}'
        values: '1200+60x20'
      - series: 'cnpg_collector_pg_wal_archive_status{value="ready",pod="SLUG-db-2"}'
        values: '0x20'
      - series: 'cnpg_pg_stat_archiver_seconds_since_last_archival{pod="SLUG-db-2"}'
        values: '3600+60x20'
    alert_rule_test:
      - eval_time: 3m
        alertname: DatabaseWalArchiveStalled
        exp_alerts: []
      - eval_time: 10m
        alertname: DatabaseWalArchiveStalled
        exp_alerts:
          - exp_labels: {severity: critical, pod: SLUG-db-1}
"""


def test_prod_backup_alerts_fire_when_backups_or_archiving_stop(project: Path, tmp_path: Path) -> None:
    build = run(["kubectl", "kustomize", "deploy/overlays/prod"], project).stdout
    (rule,) = [
        doc
        for doc in yaml.safe_load_all(build)
        if doc and doc["kind"] == "PrometheusRule" and doc["metadata"]["name"] == f"{SLUG}-backups"
    ]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = find_tool("promtool")
    run([promtool, "check", "rules", "rules.yml"], tmp_path)
    # The unit tests check when each alert fires and its labels; the texts are not compared.
    for group in rule["spec"]["groups"]:
        for alert in group["rules"]:
            alert.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    tests = BACKUP_ALERT_TESTS.replace("SLUG", SLUG).replace("PLUGIN", "barman_cloud_cloudnative_pg_io")
    (tmp_path / "rules.test.yml").write_text(tests)
    result = run([promtool, "test", "rules", "rules.test.yml"], tmp_path)
    assert "SUCCESS" in result.stdout + result.stderr
