"""runtime.render.monitoring_kube: the PodMonitors and PrometheusRule of a Kubernetes deployment validate against
the real prometheus-operator CRDs (../shared/upstream/prometheus-operator, or $DYNADEPLOY_UPSTREAM_DIR):
JSON-schema validation of each object against its CRD's openAPIV3Schema, made strict (an unknown field is an
error here, where the API server would silently prune it)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import pytest
import yaml

from runtime.render import monitoring, monitoring_kube
from runtime.spec import API_VERSION, parse_spec

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = Path(os.environ.get("DYNADEPLOY_UPSTREAM_DIR") or ROOT.parent / "shared" / "upstream")
CRD_DIR = UPSTREAM / "prometheus-operator"
needs_crds = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"no prometheus-operator CRDs at {CRD_DIR}")

SPEC = {
    "apiVersion": API_VERSION,
    "name": "kmon",
    "target": {"kind": "kube", "namespace": "serving"},
    "monitoring": {"kube_labels": {"release": "prometheus"}},
}


def _strict(schema: dict) -> dict:
    """additionalProperties: false wherever the schema lists properties and does not keep unknown fields
    (and RE2 inline flags where Python's re accepts them)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            # Go's RE2 takes a flag group anywhere; Python's re only at the start: same regex, moved.
            if isinstance(node.get("pattern"), str) and node["pattern"].startswith("^(?i)"):
                node["pattern"] = "(?i)^" + node["pattern"][5:]
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def _schema(kind: str) -> dict:
    crd = yaml.safe_load((CRD_DIR / f"monitoring.coreos.com_{kind.lower()}s.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    assert version["served"] and crd["spec"]["names"]["kind"] == kind
    return _strict(version["schema"]["openAPIV3Schema"])


@needs_crds
def test_rendered_objects_validate_against_the_real_crds():
    spec = parse_spec(SPEC)
    objs = monitoring_kube.render(spec)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("PodMonitor", "kmon-frontend"),
        ("PodMonitor", "kmon-workers"),
        ("PrometheusRule", "kmon-slo"),
    ]
    for obj in objs:
        assert obj["metadata"]["namespace"] == "serving"
        assert obj["metadata"]["labels"]["release"] == "prometheus"
        schema = _schema(obj["kind"])
        # metadata is validated by the API server itself, not by the CRD schema
        jsonschema.validate({k: v for k, v in obj.items() if k != "metadata"}, schema)


@needs_crds
def test_the_strict_schema_catches_a_typo():
    obj = monitoring_kube.render(parse_spec(SPEC))[0]
    obj["spec"]["podMetricsEndpoints"][0]["intervall"] = "5s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate({k: v for k, v in obj.items() if k != "metadata"}, _schema("PodMonitor"))
    # one fault per validation, so each is shown caught on its own
    rule = monitoring_kube.render(parse_spec(SPEC))[2]
    rule["spec"]["groups"][0]["rules"][0]["expr"] = 3.5  # PromQL must be a string or int-or-string
    with pytest.raises(jsonschema.ValidationError, match=r"3.5"):
        jsonschema.validate({k: v for k, v in rule.items() if k != "metadata"}, _schema("PrometheusRule"))
    rule = monitoring_kube.render(parse_spec(SPEC))[2]
    rule["spec"]["groups"][0]["rules"][0]["recod"] = "x"
    with pytest.raises(jsonschema.ValidationError, match="recod"):
        jsonschema.validate({k: v for k, v in rule.items() if k != "metadata"}, _schema("PrometheusRule"))


def test_podmonitors_select_the_graph_and_label_like_the_local_scrape():
    spec = parse_spec(SPEC)
    fe, workers, rule = monitoring_kube.render(spec)
    assert fe["spec"]["selector"]["matchLabels"] == {"nvidia.com/dynamo-graph-deployment-name": "kmon"}
    assert fe["spec"]["podMetricsEndpoints"][0]["port"] == "http"
    assert workers["spec"]["podMetricsEndpoints"][0]["port"] == "system"
    assert workers["spec"]["selector"]["matchExpressions"][0]["values"] == ["worker", "prefill", "decode"]
    targets = {
        r["targetLabel"]: r["sourceLabels"] for r in fe["spec"]["podMetricsEndpoints"][0]["relabelings"]
    }
    assert targets == {
        "deployment": ["__meta_kubernetes_pod_label_nvidia_com_dynamo_graph_deployment_name"],
        "role": ["__meta_kubernetes_pod_label_nvidia_com_dynamo_component_type"],
    }
    assert rule["spec"]["groups"] == monitoring.rule_groups(spec)["groups"]


def test_nothing_without_monitoring_and_a_plain_message_when_the_operator_is_absent():
    assert monitoring_kube.render(parse_spec({k: v for k, v in SPEC.items() if k != "monitoring"})) == []
    assert monitoring_kube.render(parse_spec({**SPEC, "monitoring": {"prometheus": False}})) == []
    msg = monitoring_kube.absent_message(list(monitoring_kube.CRDS))
    assert (
        "no Prometheus Operator" in msg
        and "kube-prometheus-stack" in msg
        and "monitoring.prometheus: false" in msg
    )
