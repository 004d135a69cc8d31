"""What operators deploy beside the service: Prometheus alerts (checked and unit-tested with
promtool), the Prometheus and Alertmanager examples, the Grafana dashboard, the Procfile."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from scoreboard import metrics
from scoreboard.redis_client import Keys
from web.scrape import ScrapeCollector

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "scoreboard.json"
ALERTS = ["ScoreboardHighErrorRate", "ScoreboardSlowResponses", "ScoreboardAnomalyPattern",
          "ScoreboardDatabasePoolSaturated", "ScoreboardRedisMemoryHigh"]


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `apt-get install -y {package}` (`make test` installs it)"
    return path


def run(argv, cwd=PROMETHEUS):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_alert_rules_pass_promtool():
    promtool = tool("promtool", "prometheus")
    assert "SUCCESS: 5 rules found" in run([promtool, "check", "rules", "alerts.yml"])
    run([promtool, "test", "rules", "alerts_test.yml"])


def test_the_five_alerts_each_fire_and_do_not_fire_in_the_unit_tests():
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
    assert [rule["alert"] for rule in rules] == ALERTS
    for rule in rules:
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["labels"]["severity"] in ("page", "warning")
    cases = {name: {"fires": 0, "quiet": 0} for name in ALERTS}
    for test in yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]:
        for case in test["alert_rule_test"]:
            cases[case["alertname"]]["fires" if case["exp_alerts"] else "quiet"] += 1
    for name, seen in cases.items():
        assert seen["fires"] >= 1 and seen["quiet"] >= 1, (name, seen)


def test_example_prometheus_and_alertmanager_configs_are_valid():
    run([tool("promtool", "prometheus"), "check", "config", "prometheus.yml"])
    run([tool("amtool", "prometheus-alertmanager"), "check-config", str(ROOT / "deploy/alertmanager/alertmanager.yml")])


def exported_names(r) -> set[str]:
    """Every series name the processes export (defined metrics and scrape-time ones)."""
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            base = value._name
            kind = value._type
            if kind == "counter":
                names |= {base + "_total"}
            elif kind == "histogram":
                names |= {base + "_bucket", base + "_sum", base + "_count"}
            else:
                names.add(base)
    for family in ScrapeCollector(r, Keys("sbdeploy:"), ("scores", "maintenance")).collect():
        names.add(family.name)
    return names


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_alerts_and_dashboard_query_only_metrics_the_service_exports(r):
    known = exported_names(r)
    used = set()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
    for expr in [rule["expr"] for rule in rules]:
        used |= set(re.findall(r"\bscoreboard_[a-z0-9_]+", expr))
    for expr in dashboard_exprs():
        used |= set(re.findall(r"\bscoreboard_[a-z0-9_]+", expr))
    assert used - known == set()
    # and the dashboard shows every figure the issue asks for
    for name in ("scoreboard_http_requests_total", "scoreboard_submissions_refused_total",
                 "scoreboard_submissions_flagged_total", "scoreboard_apply_batch_size_bucket",
                 "scoreboard_queue_depth", "scoreboard_queue_failed_jobs", "scoreboard_queue_workers",
                 "scoreboard_stream_connections", "scoreboard_stream_events_sent_total",
                 "scoreboard_db_pool_connections_in_use", "scoreboard_redis_memory_used_bytes"):
        assert name in used, name


def test_grafana_dashboard_imports(tmp_path):
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"panel {panel['title']!r} overlaps another"
                cells.add((x, y))
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    # every query is valid PromQL: promtool checks them as recording rules
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, expr in enumerate(dashboard_exprs())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    run([tool("promtool", "prometheus"), "check", "rules", str(path)])


def test_procfile_names_the_processes():
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert set(lines) == {"release", "web", "stream", "worker", "scheduler"}
    assert "web.stream_wsgi:app" in lines["stream"]
    assert "python -m scheduler" in lines["scheduler"] and "python -m workers" in lines["worker"]
    for name in ("worker", "scheduler"):
        assert "METRICS_PORT" in lines[name]
