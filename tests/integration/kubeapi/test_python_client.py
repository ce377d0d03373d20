"""The real kubernetes Python client (32.x) against the simulator over HTTP.

Simulated here: CRUD with resourceVersion conflicts, label/field selectors, limit/continue, watch with
resume, the status subresource and generation/observedGeneration, Status errors (404/409/422 reasons and
causes), server-side apply (field managers, conflicts, force) of a ConfigMap and of a custom resource
whose CRD makes it discoverable (and undiscoverable after the CRD is deleted), the scale subresource.
Not simulated: admission webhooks, schema validation of fields, RBAC, real pods.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ResourceNotFoundError

pytestmark = pytest.mark.integration

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.sim.example.com"},
    "spec": {
        "group": "sim.example.com",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"},
                },
            }
        ],
    },
}


@pytest.fixture
def api(kubeapi):
    c = kubeapi.api_client()
    yield c
    c.close()


def _ns(api, name: str) -> str:
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _cm(name: str, labels: dict | None = None, data: dict | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data or {"k": "v"})


def test_crud_conflict_and_error_reasons(api):
    v1 = client.CoreV1Api(api)
    ns = _ns(api, "crud")
    created = v1.create_namespaced_config_map(ns, _cm("one"))
    md = created.metadata
    assert md.uid and md.resource_version and md.creation_timestamp

    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map(ns, _cm("one"))
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"

    got = v1.read_namespaced_config_map("one", ns)
    got.data = {"k": "v2"}
    updated = v1.replace_namespaced_config_map("one", ns, got)
    assert int(updated.metadata.resource_version) > int(md.resource_version)
    got.data = {"k": "stale"}  # got still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        v1.replace_namespaced_config_map("one", ns, got)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"

    patched = v1.patch_namespaced_config_map("one", ns, {"data": {"extra": "x"}})  # strategic merge
    assert patched.data == {"k": "v2", "extra": "x"}

    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_config_map("missing", ns)
    body = json.loads(exc.value.body)
    assert exc.value.status == 404 and body["reason"] == "NotFound"
    assert body["details"] == {"name": "missing", "kind": "configmaps"}

    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map(ns, _cm("Bad_Name"))
    body = json.loads(exc.value.body)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123" in body["details"]["causes"][0]["message"]

    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("no-such-ns", _cm("x"))
    assert exc.value.status == 404

    with pytest.raises(ApiException) as exc:  # PUT on a collection
        api.call_api(f"/api/v1/namespaces/{ns}/configmaps", "PUT", body={}, _preload_content=False)
    assert exc.value.status == 405 and json.loads(exc.value.body)["reason"] == "MethodNotAllowed"
    with pytest.raises(ApiException) as exc:
        api.call_api(
            f"/api/v1/namespaces/{ns}/configmaps",
            "POST",
            body="{not json",
            header_params={"Content-Type": "application/json"},
            _preload_content=False,
        )
    assert exc.value.status == 400 and json.loads(exc.value.body)["reason"] == "BadRequest"

    v1.delete_namespaced_config_map("one", ns)
    assert v1.list_namespaced_config_map(ns).items == []


def test_list_selectors_limit_continue(api):
    v1 = client.CoreV1Api(api)
    ns = _ns(api, "sel")
    for i in range(7):
        v1.create_namespaced_config_map(
            ns, _cm(f"cm-{i}", labels={"tier": "a" if i < 4 else "b", **({"canary": "y"} if i == 6 else {})})
        )

    def names(**kw):
        return [c.metadata.name for c in v1.list_namespaced_config_map(ns, **kw).items]

    assert names(label_selector="tier=a") == ["cm-0", "cm-1", "cm-2", "cm-3"]
    assert names(label_selector="tier==b") == ["cm-4", "cm-5", "cm-6"]
    assert names(label_selector="tier!=a") == ["cm-4", "cm-5", "cm-6"]
    assert names(label_selector="tier in (b),canary") == ["cm-6"]
    assert names(label_selector="tier notin (a),!canary") == ["cm-4", "cm-5"]
    assert names(field_selector="metadata.name=cm-2") == ["cm-2"]
    assert names(field_selector="metadata.name!=cm-2", label_selector="tier=a") == ["cm-0", "cm-1", "cm-3"]
    with pytest.raises(ApiException) as exc:
        names(field_selector="data.k=v")
    assert exc.value.status == 400

    page = v1.list_namespaced_config_map(ns, limit=3)
    seen = [c.metadata.name for c in page.items]
    assert page.metadata.remaining_item_count == 4
    while page.metadata._continue:
        page = v1.list_namespaced_config_map(ns, limit=3, _continue=page.metadata._continue)
        seen += [c.metadata.name for c in page.items]
    assert seen == [f"cm-{i}" for i in range(7)]


def test_watch_streams_and_resumes(api, kubeapi):
    v1 = client.CoreV1Api(api)
    ns = _ns(api, "watch")
    v1.create_namespaced_config_map(ns, _cm("before"))
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version

    def writer():
        time.sleep(0.2)
        v1.create_namespaced_config_map(ns, _cm("w1", labels={"x": "1"}))
        v1.patch_namespaced_config_map("w1", ns, {"data": {"k": "changed"}})
        v1.delete_namespaced_config_map("w1", ns)

    threading.Thread(target=writer).start()
    events = []
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5):
        events.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            w.stop()
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]

    # rv "0": synthetic ADDED for what exists, then changes; label selector filters
    seen = [
        ev["object"].metadata.name
        for ev in watch.Watch().stream(
            v1.list_namespaced_config_map, ns, resource_version="0", timeout_seconds=1
        )
    ]
    assert seen == ["before"]
    # WatchList (what client-go/helm 4 send): initial ADDED events, then the initial-events-end bookmark
    url = (
        f"{kubeapi.url}/api/v1/namespaces/{ns}/configmaps?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
    )
    with urllib.request.urlopen(url) as resp:
        lines = [json.loads(line) for line in resp.read().splitlines()]
    assert [e["type"] for e in lines[:2]] == ["ADDED", "BOOKMARK"]
    assert lines[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    with pytest.raises(urllib.error.HTTPError) as err:  # sendInitialEvents needs NotOlderThan
        urllib.request.urlopen(url.replace("&resourceVersionMatch=NotOlderThan", ""))
    assert err.value.code == 422
    # the request log shows the watches
    assert kubeapi.requests.find(method="GET", path=f"/namespaces/{ns}/configmaps$", verb="watch")


def test_status_subresource_and_generation(api):
    apps = client.AppsV1Api(api)
    ns = _ns(api, "status")
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="d"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"a": "b"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"a": "b"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="i")]),
            ),
        ),
        status=client.V1DeploymentStatus(replicas=99),
    )
    created = apps.create_namespaced_deployment(ns, dep)
    assert created.status is None or created.status.replicas is None  # status dropped on create
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"  # defaulted

    st = apps.patch_namespaced_deployment_status(
        "d", ns, {"status": {"observedGeneration": 1, "readyReplicas": 1}}
    )
    assert st.status.ready_replicas == 1 and st.metadata.generation == 1
    # status is ignored on the main resource, spec is ignored on /status
    same = apps.patch_namespaced_deployment("d", ns, {"status": {"readyReplicas": 5}})
    assert same.status.ready_replicas == 1
    apps.patch_namespaced_deployment_status("d", ns, {"spec": {"replicas": 7}})
    assert apps.read_namespaced_deployment("d", ns).spec.replicas == 1
    bumped = apps.patch_namespaced_deployment("d", ns, {"spec": {"replicas": 3}})
    assert bumped.metadata.generation == 2 and bumped.status.observed_generation == 1
    scale = apps.read_namespaced_deployment_scale("d", ns)
    assert scale.spec.replicas == 3 and scale.status.selector == "a=b"
    apps.patch_namespaced_deployment_scale("d", ns, {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("d", ns).spec.replicas == 4


def test_server_side_apply_configmap_and_custom_resource(api, tmp_path):
    _ns(api, "ssa")
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied", "namespace": "ssa"},
        "data": {"a": "1", "b": "2"},
    }
    created = dyn.server_side_apply(cms, body=body, field_manager="mgr-a")
    assert created.data.a == "1"
    assert [m.manager for m in created.metadata.managedFields] == ["mgr-a"]
    # another manager changing a field mgr-a owns: 409 Conflict unless forced
    with pytest.raises(dynamic.exceptions.ConflictError) as exc:
        dyn.server_side_apply(cms, body={**body, "data": {"a": "other"}}, field_manager="mgr-b")
    assert 'conflict with "mgr-a"' in json.loads(exc.value.body)["message"]
    forced = dyn.server_side_apply(
        cms, body={**body, "data": {"a": "other"}}, field_manager="mgr-b", force_conflicts=True
    )
    assert forced.data.a == "other" and forced.data.b == "2"
    # mgr-a stops applying b -> removed (nobody else owns it)
    again = dyn.server_side_apply(cms, body={**body, "data": {"a": "other"}}, field_manager="mgr-a")
    assert dict(again.data) == {"a": "other"}

    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    dyn.create(crds, body=CRD)
    assert dyn.get(crds, name=CRD["metadata"]["name"]).status.conditions[1].type == "Established"
    gadgets = dyn.resources.get(api_version="sim.example.com/v1", kind="Gadget")
    assert gadgets.namespaced and gadgets.short_names == ["gd"]
    cr = {
        "apiVersion": "sim.example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1", "namespace": "ssa"},
        "spec": {"replicas": 2, "items": ["x", "y"]},
    }
    applied = dyn.server_side_apply(gadgets, body=cr, field_manager="tool")
    assert applied.metadata.generation == 1 and applied.spec.replicas == 2
    applied = dyn.server_side_apply(
        gadgets, body={**cr, "spec": {"replicas": 3, "items": ["z"]}}, field_manager="tool"
    )
    assert applied.metadata.generation == 2 and list(applied.spec["items"]) == ["z"]  # lists are atomic
    status = dyn.patch(
        gadgets.status,
        name="g1",
        namespace="ssa",
        body={"status": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert status.status.replicas == 3 and status.metadata.generation == 2
    # strategic merge patch is refused for custom resources, as on a real server
    with pytest.raises(ApiException) as exc:
        dyn.patch(gadgets, name="g1", namespace="ssa", body={"spec": {"replicas": 1}})
    assert exc.value.status == 415

    dyn.delete(crds, name=CRD["metadata"]["name"])
    dyn.resources.invalidate_cache()
    with pytest.raises(ResourceNotFoundError):
        dyn.resources.get(api_version="sim.example.com/v1", kind="Gadget")
    with pytest.raises(ApiException) as exc:
        api.call_api("/apis/sim.example.com/v1/namespaces/ssa/gadgets/g1", "GET", _preload_content=False)
    assert exc.value.status == 404
