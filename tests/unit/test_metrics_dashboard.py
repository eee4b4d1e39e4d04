"""The shipped Grafana dashboard: valid structure, and it queries only metrics the code exports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics.catalog import exported_sample_names
from core.metrics.collect import Metrics
from core.metrics.dashboard import render
from tests.conftest import REPO_ROOT
from tests.procs import run

DASHBOARD = REPO_ROOT / "observability" / "grafana-dashboard.json"
PROMETHEUS_YML = REPO_ROOT / "observability" / "prometheus.yml"
DS = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_ROWS = {"Feed health", "Book integrity", "Strategies", "Execution", "Risk", "Bot"}

# PromQL words that are not metric names when not followed by "("
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (with Grafana variables in it)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors ($__rate_interval, 5m ...)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end() :].lstrip().startswith("("):
            continue  # a function or aggregation call
        if m.group(0) not in _KEYWORDS:
            names.add(m.group(0))
    return names


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def expressions(dash: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(dash) for t in p.get("targets", [])]


def exported_names() -> set[str]:
    """What a real scrape can contain: the catalog plus prometheus_client's process collectors."""
    text = Metrics().exposition().decode()
    scraped = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    return exported_sample_names() | scraped


def test_the_name_extractor_finds_metric_names_and_only_those() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, action) (rate(polybot_x_seconds_bucket{job=~"$job", a="b"}'
        "[$__rate_interval]))) / ignoring(x) sum without (y) (up) > bool 0 and on() polybot_y offset 5m"
    )
    assert metric_names(expr) == {"polybot_x_seconds_bucket", "up", "polybot_y"}
    assert metric_names('max by (mode) (polybot_trading_mode{job=~"$job"}) == 1') == {"polybot_trading_mode"}


def test_dashboard_file_is_the_generated_one() -> None:
    assert DASHBOARD.read_text(encoding="utf-8") == render(), (
        "observability/grafana-dashboard.json differs from core/metrics/dashboard.py: run "
        "uv run python -m core.metrics.dashboard --out observability/grafana-dashboard.json"
    )


def test_every_panel_queries_only_exported_metrics() -> None:
    dash = load()
    exported = exported_names()
    exprs = expressions(dash)
    assert len(exprs) > 40
    unknown = [(title, name) for title, expr in exprs for name in metric_names(expr) if name not in exported]
    assert unknown == [], f"panels query metrics the code does not export: {unknown}"
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            names = set(re.findall(r"label_values\(\s*([A-Za-z_:][\w:]*)", json.dumps(var["query"])))
            assert names and names <= exported, var


def test_the_check_catches_a_wrong_name() -> None:
    # the same check must fail for names that differ only by a suffix
    exported = exported_names()
    for wrong in ("polybot_ws_frames", "polybot_armed_total", "polybot_feed_receive_to_apply_seconds"):
        assert wrong not in exported
        assert metric_names(f"rate({wrong}[5m])") - exported == {wrong}


def test_dashboard_structure_is_valid_grafana() -> None:
    dash = load()
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 30
    assert dash["title"] and dash["uid"]
    [ds_var] = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
    ids: set[int] = set()
    boxes: list[tuple[int, int, int, int, str]] = []
    rows: list[str] = []
    current_row_panels = 0
    for p in panels(dash):
        assert isinstance(p["id"], int) and p["id"] not in ids, p["title"]
        ids.add(p["id"])
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in ("h", "w", "x", "y")), p["title"]
        assert 0 <= g["x"] and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        boxes.append((g["x"], g["y"], g["w"], g["h"], p["title"]))
        if p["type"] == "row":
            if rows:
                assert current_row_panels > 0, f"row {rows[-1]} has no panels"
            rows.append(p["title"])
            current_row_panels = 0
            continue
        current_row_panels += 1
        assert p["type"] in {"timeseries", "stat"}, p["title"]
        assert p["datasource"] == DS, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DS and t["expr"].strip() and t["refId"], p["title"]
    assert REQUIRED_ROWS <= set(rows)
    for i, (x1, y1, w1, h1, t1) in enumerate(boxes):
        for x2, y2, w2, h2, t2 in boxes[i + 1 :]:
            overlap = x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and y2 < y1 + h1
            assert not overlap, f"panels {t1!r} and {t2!r} overlap"


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    return promtool


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    promtool = _promtool()
    lines = ["groups:", "  - name: polybot_dashboard", "    rules:"]
    for i, (_title, expr) in enumerate(expressions(load())):
        concrete = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$job", ".*")
        lines += [f"      - record: polybot_dashboard:expr_{i}", f"        expr: {json.dumps(concrete)}"]
    rules = tmp_path / "rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    proc = run([promtool, "check", "rules", str(rules)], text=True, timeout_s=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_yml_is_a_valid_config_scraping_the_default_port() -> None:
    text = PROMETHEUS_YML.read_text()
    assert "127.0.0.1:9108" in text and "metrics_path: /metrics" in text
    promtool = _promtool()
    proc = run([promtool, "check", "config", str(PROMETHEUS_YML)], text=True, timeout_s=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
