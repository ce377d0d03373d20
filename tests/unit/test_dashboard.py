"""runtime.render.dashboard: the Grafana dashboard of a deployment, its shipped copy in infra/, its ConfigMap on
Kubernetes, and that every panel's PromQL parses (promtool). That every query also returns data in a real
Prometheus is asserted by tests/integration/local/test_monitoring.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from runtime.render import dashboard, monitoring_kube
from runtime.spec import API_VERSION, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "targets" / "local-monitoring.yaml"
SHIPPED = ROOT / "infra" / "monitoring" / "dashboards" / "local-monitoring.json"


def test_shipped_dashboard_is_the_rendered_one():
    board = dashboard.render(load_spec(EXAMPLE))
    assert json.loads(SHIPPED.read_text()) == json.loads(json.dumps(board)), (
        "regenerate: uv run python -m runtime.render.dashboard infra/targets/local-monitoring.yaml "
        + str(SHIPPED.relative_to(ROOT))
    )


def test_panels_cover_latency_traffic_errors_queue_kv_workers_and_burn():
    board = dashboard.render(load_spec(EXAMPLE))
    titles = " | ".join(p["title"] for p in board["panels"])
    for word in (
        "Time to first token",
        "Inter-token latency",
        "Requests per second",
        "Error ratio",
        "Queued",
        "KV-cache",
        "Workers",
        "SLO burn",
    ):
        assert word in titles
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert board["annotations"]["list"][0]["name"] == "Revisions"
    assert all('deployment="local-monitoring"' in t["expr"] for p in board["panels"] for t in p["targets"])
    assert dashboard.render(parse_spec({"apiVersion": API_VERSION, "name": "plain"})) is None


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run `make debs`")
def test_every_panel_query_parses(tmp_path):
    spec = load_spec(EXAMPLE)
    exprs = [t[0].replace("$__rate_interval", "1m") for q in dashboard.queries(spec) for t in q["targets"]]
    exprs.append(dashboard.annotation_query(spec))
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"panel:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "panels.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        ["promtool", "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_kubernetes_ships_it_as_a_grafana_sidecar_configmap():
    spec = parse_spec(
        {"apiVersion": API_VERSION, "name": "kmon", "target": {"kind": "kube"}, "monitoring": {}}
    )
    cm = monitoring_kube.render(spec, dashboard.render(spec))[-1]
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    ((key, text),) = cm["data"].items()
    assert key == "dynadeploy-kmon.json" and json.loads(text)["title"] == "dynadeploy kmon"
