"""Schema validation on writes (tests/harness/kubeapi/schema.py), through the real kubectl 1.35 and the
kubernetes Python client: custom resources against the real CRDs of ../shared/upstream (or
$DYNADEPLOY_UPSTREAM_DIR; skipped, saying so, when absent), built-in kinds against Kubernetes' OpenAPI
schemas (kubernetes-validate, v1.35), with ``fieldValidation`` Strict / Warn / Ignore.

Not covered by the simulation (a real cluster would also refuse or change these): CEL rules
(``x-kubernetes-validations``, e.g. HTTPRoute's and DGD's cross-field rules), ``format`` checks, list-type
uniqueness and map-key merging of custom resources' lists, the Go validation of built-in kinds beyond their
OpenAPI schema (label syntax, most immutable fields, cross-field rules), admission webhooks (Dynamo's own
validating webhook is the operator stand-in's job), version conversion between served CRD versions, and
duplicate-field detection.
"""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.harness import upstream

pytestmark = pytest.mark.integration

GROUP, V1BETA1 = "nvidia.com", "v1beta1"


@pytest.fixture
def crds(kubeapi):
    """The real Dynamo, gpu-operator, HTTPRoute and Prometheus Operator CRDs in the simulator."""
    upstream.require_upstream()
    upstream.install(
        kubeapi.store,
        [
            *upstream.dynamo_crds(),
            *upstream.gpu_operator_crds(),
            upstream.httproute_crd("v1.6.1"),
            *upstream.prometheus_crds(),
        ],
    )
    kubeapi.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sch"}})
    return kubeapi


def _dgd(name: str, component: dict | None = None) -> dict:
    worker = {
        "name": "VllmDecodeWorker",
        "type": "worker",
        "replicas": 1,
        "podTemplate": {
            "spec": {"containers": [{"name": "main", "image": "vllm:1", "ports": [{"containerPort": 9090}]}]}
        },
        **(component or {}),
    }
    return {
        "apiVersion": f"{GROUP}/{V1BETA1}",
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": name, "namespace": "sch"},
        "spec": {
            "backendFramework": "vllm",
            "components": [{"name": "Frontend", "type": "frontend", "replicas": 1}, worker],
        },
    }


def _custom(kubeapi) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kubeapi.api_client())


def test_dynamos_own_example_graphs_are_accepted_as_they_are(crds):
    """Dynamo's vLLM examples (v1alpha1 and v1beta1) pass the real CRD schema unchanged: nothing is pruned,
    nothing refused (the simulator is no stricter than the real server on what Dynamo itself ships).
    Not covered: defaults are added (as on a real server), so only the example's own fields are compared."""
    root = upstream.require_upstream() / "dynamo" / "examples"
    api = _custom(crds)
    for path in sorted(root.glob("*/*.yaml")):
        doc = yaml.safe_load(path.read_text())
        version = doc["apiVersion"].split("/")[1]
        doc["metadata"]["name"] = f"{path.stem.replace('_', '-')}-{version}"
        out = api.create_namespaced_custom_object(GROUP, version, "sch", "dynamographdeployments", doc)

        def subset(want, got, where=path.name):
            if isinstance(want, dict):
                for k, v in want.items():
                    assert k in got, f"{where}: {k} was pruned"
                    subset(v, got[k], f"{where}.{k}")
            elif isinstance(want, list):
                assert len(want) == len(got), where
                for i, (a, b) in enumerate(zip(want, got, strict=True)):
                    subset(a, b, f"{where}[{i}]")
            else:
                assert want == got, where

        subset(doc["spec"], out["spec"])
        crds.store.delete(doc["apiVersion"], "DynamoGraphDeployment", doc["metadata"]["name"], "sch")


def test_unknown_fields_of_a_custom_resource_are_pruned_warned_or_refused(crds, kubectl):
    """scalingAdapter is an empty object in the v1beta1 schema: ``enabled`` is pruned silently by the Python
    client (no fieldValidation: Warn, a Warning header), refused by kubectl (Strict, its default), printed
    as a warning by kubectl --validate=warn. Not covered: kubectl's client-side schema checks (the simulator
    serves no OpenAPI schemas, so kubectl leaves validation to the server, as with any CRD)."""
    api = _custom(crds)
    out = api.create_namespaced_custom_object(
        GROUP, V1BETA1, "sch", "dynamographdeployments", _dgd("pruned", {"scalingAdapter": {"enabled": True}})
    )
    assert out["spec"]["components"][1]["scalingAdapter"] == {}
    live = crds.store.get(f"{GROUP}/{V1BETA1}", "DynamoGraphDeployment", "pruned", "sch")
    assert live["spec"]["components"][1]["scalingAdapter"] == {}

    doc = _dgd("strict", {"scalingAdapter": {"enabled": True}, "bogus": 1})
    res = kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(doc), check=False)
    assert res.rc != 0
    assert (
        'strict decoding error: unknown field "spec.components[1].bogus", unknown field '
        '"spec.components[1].scalingAdapter.enabled"' in res.err
    )
    assert crds.store.try_get(f"{GROUP}/{V1BETA1}", "DynamoGraphDeployment", "strict", "sch") is None

    res = kubectl("create", "--validate=warn", "-f", "-", stdin=json.dumps(doc))
    assert 'Warning: unknown field "spec.components[1].bogus"' in res.err
    assert 'Warning: unknown field "spec.components[1].scalingAdapter.enabled"' in res.err
    live = crds.store.get(f"{GROUP}/{V1BETA1}", "DynamoGraphDeployment", "strict", "sch")
    assert "bogus" not in live["spec"]["components"][1]
    assert (
        crds.requests.find(method="POST", path="/dynamographdeployments$")[-1].query["fieldValidation"]
        == "Warn"
    )


def test_custom_resource_types_enums_and_required_fields_are_refused_with_the_real_messages(crds):
    """Type, enum and required violations answer 422 Invalid with the apiserver's cause shapes.
    Not covered: CEL rules and formats, which the real server also checks."""
    api = _custom(crds)
    bad = _dgd("bad", {"replicas": "two", "type": "gpu-worker"})
    del bad["spec"]["components"][0]["name"]
    with pytest.raises(ApiException) as exc:
        api.create_namespaced_custom_object(GROUP, V1BETA1, "sch", "dynamographdeployments", bad)
    assert exc.value.status == 422
    body = json.loads(exc.value.body)
    assert body["reason"] == "Invalid"
    causes = {c["field"]: c["message"] for c in body["details"]["causes"]}
    assert causes["spec.components[0].name"] == "Required value"
    assert causes["spec.components[1].replicas"] == (
        'Invalid value: "string": spec.components[1].replicas in body must be of type integer: "string"'
    )
    assert causes["spec.components[1].type"].startswith(
        'Unsupported value: "gpu-worker": supported values: "frontend", "worker"'
    )
    assert body["message"].startswith('DynamoGraphDeployment.nvidia.com "bad" is invalid: [')


def test_structural_defaults_are_applied(crds):
    """Defaults of the CRD schema are filled in on write (containerPort's protocol: TCP), so a graph read
    back differs from what was sent exactly where a real server's would. Not covered: defaulting on read
    from storage after a CRD's defaults change."""
    out = _custom(crds).create_namespaced_custom_object(
        GROUP, V1BETA1, "sch", "dynamographdeployments", _dgd("defaults")
    )
    port = out["spec"]["components"][1]["podTemplate"]["spec"]["containers"][0]["ports"][0]
    assert port == {"containerPort": 9090, "protocol": "TCP"}


def test_status_and_metadata_of_custom_resources_are_pruned_too(crds):
    """A status write is checked against the status schema; unknown metadata fields are dropped. Not
    covered: status ratcheting (a real server lets an invalid existing value stay)."""
    store = crds.store
    store.create(_dgd("st"))
    dgd = store.get(f"{GROUP}/{V1BETA1}", "DynamoGraphDeployment", "st", "sch")
    dgd["status"] = {"state": "successful", "madeUp": {"x": 1}}
    out = store.update_status(dgd)
    assert "madeUp" not in out["status"] and out["status"]["state"] == "successful"


def test_other_upstream_crds_validate_their_resources(crds, kubectl):
    """Prometheus Operator's PodMonitor, Gateway API's HTTPRoute (v1.6.1) and the gpu-operator's
    ClusterPolicy are the real CRDs: wrong shapes are refused, unknown fields pruned. Not covered: the
    operators behind them (nothing scrapes, routes or installs drivers because of these objects here),
    HTTPRoute's CEL rules."""
    pm = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "dynamo", "namespace": "sch"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "podMetricsEndpoints": [
                {"port": "system", "path": "/metrics", "interval": "5s", "scrapeEvery": "5s"}
            ],
        },
    }
    res = kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(pm), check=False)
    assert 'unknown field "spec.podMetricsEndpoints[0].scrapeEvery"' in res.err
    del pm["spec"]["podMetricsEndpoints"][0]["scrapeEvery"]
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(pm))

    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "sch"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "svc", "port": 8000, "weight": "half"}]}],
        },
    }
    res = kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(route), check=False)
    assert "spec.rules[0].backendRefs[0].weight in body must be of type integer" in res.err
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = 100
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(route))
    live = crds.store.get("gateway.networking.k8s.io/v1", "HTTPRoute", "r", "sch")
    # the CRD's defaults, as a real server fills them in
    assert live["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]

    cp = {
        "apiVersion": "nvidia.com/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "cluster-policy"},
        "spec": {"driver": {"enabled": "yes"}},
    }
    res = kubectl("create", "-f", "-", stdin=json.dumps(cp), check=False)
    assert res.rc != 0 and "spec.driver.enabled in body must be of type boolean" in res.err


def test_built_in_kinds_are_validated_against_kubernetes_openapi(kubeapi, kubectl):
    """Deployments, Services... through the Python client (Warn: unknown fields dropped with a Warning
    header) and kubectl (Strict: refused), wrong types refused by the decoder (400), missing required fields
    422. Not covered: Go-side validation beyond the OpenAPI schema (e.g. label value syntax, port ranges,
    selector/template label agreement, immutable selectors)."""
    kubectl("create", "namespace", "b")
    apps = client.AppsV1Api(kubeapi.api_client())
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "b"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1", "imagePullPolice": "Always"}]},
            },
        },
    }
    out = apps.create_namespaced_deployment("b", dep)
    assert out.spec.template.spec.containers[0].image_pull_policy is None
    raw = kubeapi.store.get("apps/v1", "Deployment", "web", "b")
    assert "imagePullPolice" not in raw["spec"]["template"]["spec"]["containers"][0]

    dep["metadata"]["name"] = "web2"
    res = kubectl("create", "-f", "-", stdin=json.dumps(dep), check=False)
    assert res.rc != 0
    assert (
        'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolice"' in res.err
    )
    res = kubectl("create", "--validate=warn", "-f", "-", stdin=json.dumps(dep))
    assert 'Warning: unknown field "spec.template.spec.containers[0].imagePullPolice"' in res.err

    dep["metadata"]["name"] = "web3"
    del dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"]
    dep["spec"]["replicas"] = "2"
    res = kubectl("create", "-f", "-", stdin=json.dumps(dep), check=False)
    assert res.rc != 0 and "cannot unmarshal string into Go struct field" in res.err

    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "b"},
        "spec": {"ports": [{"targetPort": 8000}]},
    }
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(kubeapi.api_client()).create_namespaced_service("b", svc)
    assert exc.value.status == 422 and "spec.ports[0].port: Required value" in exc.value.body


WIDGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "gone": {"type": "string"},
                "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"n": {"type": "integer"}},
                },
                "empty": {"type": "object"},
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                },
            },
        }
    },
}


def test_structural_rules_on_a_small_crd(kubeapi_bare):
    """The structural-schema rules one by one on a CRD of our own (no upstream folder needed): maps keep
    their keys, preserve-unknown-fields keeps unknown fields but still checks the known ones, an object
    without properties keeps nothing, int-or-string takes both, defaults fill in, minimum, enum, types and
    required are checked. Not covered: CEL, formats, list-type; a null is dropped even where the schema says
    nullable (the simulator drops every null on write; a real server keeps nullable ones)."""
    store = kubeapi_bare.store
    store.create(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                    }
                ],
            },
        }
    )
    out = store.create(
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default", "bogus": 1},
            "spec": {
                "size": 2,
                "port": "http",
                "labels": {"a": "1"},
                "free": {"n": 1, "x": [1]},
                "empty": {"enabled": True},
                "items": [{"k": "v", "z": 1}],
                "top": 1,
            },
        }
    )
    assert out["spec"] == {
        "size": 2,
        "port": "http",
        "mode": "a",
        "labels": {"a": "1"},
        "free": {"n": 1, "x": [1]},
        "empty": {},
        "items": [{"k": "v"}],
    }
    assert "bogus" not in out["metadata"]
    out["spec"]["port"] = 8080
    assert store.update(out)["spec"]["port"] == 8080
    from tests.harness.kubeapi.errors import ApiError

    for spec, field, text in (
        ({"size": 0}, "spec.size", "should be greater than or equal to 1"),
        ({}, "spec.size", "Required value"),
        ({"size": 1, "free": {"n": "x"}}, "spec.free.n", "must be of type integer"),
        ({"size": 1, "port": 1.5}, "spec.port", "must be of type integer|string"),
        ({"size": 1, "mode": "c"}, "spec.mode", 'supported values: "a", "b"'),
    ):
        with pytest.raises(ApiError) as exc:
            store.create(
                {
                    "apiVersion": "example.com/v1",
                    "kind": "Widget",
                    "metadata": {"name": "bad", "namespace": "default"},
                    "spec": spec,
                }
            )
        assert exc.value.code == 422
        causes = {c["field"]: c["message"] for c in exc.value.details["causes"]}
        assert text in causes[field], causes
