"""The example PrometheusRule in docs/operations.md: valid PromQL and rule files (promtool, when
installed), four alerts for the signals issue 18 names, and only metric names the server (or
the process collector) really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from inference_server.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(
    r"<!-- prometheusrule:begin -->\n```yaml\n(.*?)```\n<!-- prometheusrule:end -->", re.S
)


def rule_object() -> dict:
    text = (ROOT / "docs" / "operations.md").read_text()
    (block,) = BLOCK.findall(text)
    return yaml.safe_load(block)


def test_the_rules_cover_queue_429_latency_and_restarts():
    obj = rule_object()
    assert (obj["apiVersion"], obj["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    rules = [r for g in obj["spec"]["groups"] for r in g["rules"]]
    exprs = {r["alert"]: r["expr"] for r in rules}
    assert "t2i_queue_depth_images" in exprs["T2IQueueNotDraining"]
    assert 'status="429"' in exprs["T2IRejectingRequests"]
    assert "histogram_quantile(0.95" in exprs["T2ILatencyHigh"]
    assert "process_start_time_seconds" in exprs["T2IServerRestarting"]


def exported_series() -> set[str]:
    """Every series name the server's registry can export (labelled families included, which
    have no sample until first used)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names


def test_every_metric_the_rules_use_is_exported():
    exported = exported_series()
    for group in rule_object()["spec"]["groups"]:
        for rule in group["rules"]:
            used = set(re.findall(r"\b((?:t2i|process)_[a-z0-9_]+)\b", rule["expr"]))
            assert used and used <= exported, (rule["alert"], used - exported)


def test_promtool_accepts_the_rules(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:  # Debian package `prometheus`; the PromQL checks above still ran
        return
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_object()["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 rules found" in result.stdout
