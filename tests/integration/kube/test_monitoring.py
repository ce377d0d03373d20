"""Monitoring on a kube target against the Kubernetes API simulator: without the Prometheus Operator the
preflight says so plainly and applies nothing; with the real prometheus-operator CRDs installed, the
PodMonitors, PrometheusRule and dashboard ConfigMap are applied (server-side) and teardown removes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from runtime.targets.kube.backend import KubeBackend

from .conftest import labelled, make_spec, start_cluster, stop_cluster

ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = (
    Path(os.environ.get("DYNADEPLOY_UPSTREAM_DIR") or ROOT.parent / "shared" / "upstream")
    / "prometheus-operator"
)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"no prometheus-operator CRDs at {CRD_DIR}"),
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory, chart_env):
    sim = start_cluster(tmp_path_factory)
    yield sim
    stop_cluster(sim)


def test_operator_absent_is_said_plainly_then_present_objects_are_applied_and_torn_down(sim):
    spec = make_spec(sim, "kmon", monitoring={})
    out = KubeBackend(spec).provision().details
    assert "no Prometheus Operator" in out["monitoring"] and "kube-prometheus-stack" in out["monitoring"]

    for name in ("podmonitors", "prometheusrules"):
        crd = yaml.safe_load((CRD_DIR / f"monitoring.coreos.com_{name}.yaml").read_text())
        KubeBackend(spec).kube.apply(crd)
    out = KubeBackend(spec).provision().details
    assert out["monitoring"] == (
        "applied PodMonitor kmon-frontend, PodMonitor kmon-workers, "
        "PrometheusRule kmon-slo, ConfigMap kmon-dashboard"
    )
    assert sorted(
        o["metadata"]["name"] for o in labelled(sim, "monitoring.coreos.com/v1", "PodMonitor", "kmon")
    ) == ["kmon-frontend", "kmon-workers"]
    (rule,) = labelled(sim, "monitoring.coreos.com/v1", "PrometheusRule", "kmon")
    assert [g["name"] for g in rule["spec"]["groups"]] == [
        "dynadeploy-kmon-slo-recording",
        "dynadeploy-kmon-alerts",
    ]

    # The same deployment without `monitoring:`: provision removes its monitoring objects, and only those.
    def configmaps():
        return {o["metadata"]["name"] for o in labelled(sim, "v1", "ConfigMap", "kmon")}

    others = configmaps() - {"kmon-dashboard"}
    assert "kmon-dashboard" in configmaps()
    out = KubeBackend(make_spec(sim, "kmon")).provision().details
    assert out["monitoring"] == (
        "removed PodMonitor kmon-frontend, PodMonitor kmon-workers, "
        "PrometheusRule kmon-slo, ConfigMap kmon-dashboard"
    ), out
    assert labelled(sim, "monitoring.coreos.com/v1", "PodMonitor", "kmon") == []
    assert labelled(sim, "monitoring.coreos.com/v1", "PrometheusRule", "kmon") == []
    assert configmaps() == others
    assert (
        "monitoring" not in KubeBackend(make_spec(sim, "kmon")).provision().details
    )  # nothing left to remove

    KubeBackend(spec).provision()
    KubeBackend(spec).teardown()
    assert labelled(sim, "monitoring.coreos.com/v1", "PodMonitor", "kmon") == []
    assert labelled(sim, "monitoring.coreos.com/v1", "PrometheusRule", "kmon") == []
