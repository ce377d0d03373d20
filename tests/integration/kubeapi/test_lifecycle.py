"""Deletion semantics over HTTP with the kubernetes client: finalizers and deletionTimestamp, ownerReference
garbage collection (Background, Foreground, Orphan), namespace deletion cascading, Terminating namespaces
refusing new content; plus the protobuf encoding round-trip of a Secret, pod logs, Table output,
discovery documents and the store's Python API used by controllers.

Simulated: all of the above, synchronously (the cascade has finished when DELETE returns unless a
finalizer holds an object). Not simulated: the GC's asynchrony and its handling of dangling owner
references at create time, graceful pod termination.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.harness.kubeapi import protobuf
from tests.harness.kubeapi.store import Event

pytestmark = pytest.mark.integration


@pytest.fixture
def v1(kubeapi):
    c = kubeapi.api_client()
    yield client.CoreV1Api(c)
    c.close()


def _owner(obj) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": obj.metadata.name, "uid": obj.metadata.uid}


def _cm(name, owners=None, finalizers=None):
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, owner_references=owners, finalizers=finalizers)
    )


def test_finalizers_and_owner_reference_gc(v1, kubeapi):
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="gc")))
    # Background: dependents collected after the owner is gone
    owner = v1.create_namespaced_config_map("gc", _cm("owner"))
    v1.create_namespaced_config_map("gc", _cm("child", owners=[_owner(owner)]))
    v1.delete_namespaced_config_map("owner", "gc")
    assert v1.list_namespaced_config_map("gc").items == []

    # Orphan: dependents stay, their ownerReference removed
    owner = v1.create_namespaced_config_map("gc", _cm("owner"))
    v1.create_namespaced_config_map("gc", _cm("child", owners=[_owner(owner)]))
    v1.delete_namespaced_config_map("owner", "gc", propagation_policy="Orphan")
    child = v1.read_namespaced_config_map("child", "gc")
    assert not child.metadata.owner_references
    v1.delete_namespaced_config_map("child", "gc")

    # Foreground: a dependent with a finalizer keeps the owner (foregroundDeletion) until released
    owner = v1.create_namespaced_config_map("gc", _cm("owner"))
    v1.create_namespaced_config_map("gc", _cm("child", owners=[_owner(owner)], finalizers=["test/hold"]))
    v1.delete_namespaced_config_map("owner", "gc", propagation_policy="Foreground")
    held = v1.read_namespaced_config_map("owner", "gc")
    assert held.metadata.deletion_timestamp and held.metadata.finalizers == ["foregroundDeletion"]
    child = v1.read_namespaced_config_map("child", "gc")
    assert child.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as exc:  # no new finalizers while deleting
        v1.patch_namespaced_config_map("child", "gc", {"metadata": {"finalizers": ["test/hold", "x/y"]}})
    assert exc.value.status == 403
    v1.patch_namespaced_config_map(
        "child", "gc", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["test/hold"]}}
    )
    assert v1.list_namespaced_config_map("gc").items == []

    # delete preconditions
    cm = v1.create_namespaced_config_map("gc", _cm("pre"))
    with pytest.raises(ApiException) as exc:
        v1.delete_namespaced_config_map(
            "pre", "gc", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
        )
    assert exc.value.status == 409
    v1.delete_namespaced_config_map(
        "pre", "gc", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=cm.metadata.uid))
    )


def test_namespace_deletion_cascades(v1, kubeapi):
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    for i in range(3):
        v1.create_namespaced_config_map("doomed", _cm(f"c{i}"))
    v1.create_namespaced_secret(
        "doomed", client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
    )
    v1.create_namespaced_config_map("doomed", _cm("stuck", finalizers=["test/hold"]))
    v1.delete_namespace("doomed")
    ns = v1.read_namespace("doomed")
    assert ns.status.phase == "Terminating"
    assert [c.metadata.name for c in v1.list_namespaced_config_map("doomed").items] == ["stuck"]
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("doomed", _cm("late"))
    assert exc.value.status == 403 and "being terminated" in json.loads(exc.value.body)["message"]
    v1.patch_namespaced_config_map("stuck", "doomed", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as exc:
        v1.read_namespace("doomed")
    assert exc.value.status == 404


def test_protobuf_secret_round_trip(kubeapi):
    kubeapi.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pb"}})
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": "pb-secret", "namespace": "pb", "labels": {"owner": "helm", "name": "x"}},
        "data": {"release": base64.b64encode(b"\x00\x01binary\xff").decode()},
    }

    def call(method, path, body=None, ctype=protobuf.CONTENT_TYPE, accept=protobuf.CONTENT_TYPE):
        req = urllib.request.Request(
            kubeapi.url + path, data=body, method=method, headers={"Content-Type": ctype, "Accept": accept}
        )
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()

    status, ctype, raw = call("POST", "/api/v1/namespaces/pb/secrets", protobuf.encode(secret))
    assert status == 201 and ctype == protobuf.CONTENT_TYPE and raw.startswith(b"k8s\x00")
    back = protobuf.decode(raw)
    assert back["data"] == secret["data"] and back["metadata"]["labels"] == secret["metadata"]["labels"]
    assert back["metadata"]["uid"] and back["metadata"]["resourceVersion"]
    # JSON when the client accepts it (helm asks for protobuf,json)
    _, ctype, raw = call(
        "GET", "/api/v1/namespaces/pb/secrets/pb-secret", accept=f"{protobuf.CONTENT_TYPE}, application/json"
    )
    assert ctype == "application/json" and json.loads(raw)["data"] == secret["data"]
    # a protobuf list, then a protobuf PUT with the decoded object
    _, _, raw = call("GET", "/api/v1/namespaces/pb/secrets?labelSelector=owner%3Dhelm")
    listed = protobuf.decode(raw)
    assert listed["kind"] == "SecretList" and [s["metadata"]["name"] for s in listed["items"]] == [
        "pb-secret"
    ]
    back["metadata"]["labels"]["status"] = "deployed"
    status, _, raw = call("PUT", "/api/v1/namespaces/pb/secrets/pb-secret", protobuf.encode(back))
    assert status == 200
    assert kubeapi.store.get("v1", "Secret", "pb-secret", "pb")["metadata"]["labels"]["status"] == "deployed"


def test_pod_logs_table_discovery_and_store_api(kubeapi, v1):
    store = kubeapi.store
    events: list[Event] = []
    seen = threading.Event()

    def controller(st, ev):
        if ev is not None and ev.kind == "Pod":
            events.append(ev)
            seen.set()

    kubeapi.add_controller(controller)
    pod = store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"},
        }
    )
    assert pod["status"]["phase"] == "Running"  # Python create keeps status (controller shortcut)
    store.set_pod_log("default", "p", "line 1\nline 2\nline 3\n")
    assert v1.read_namespaced_pod_log("p", "default", tail_lines=2) == "line 2\nline 3\n"
    assert [
        p.metadata.name
        for p in v1.list_namespaced_pod("default", field_selector="status.phase=Running").items
    ] == ["p"]
    assert seen.wait(5) and events[0].type == "ADDED"
    assert kubeapi.wait_idle()

    req = urllib.request.Request(
        kubeapi.url + "/api/v1/namespaces/default/pods",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    table = json.loads(urllib.request.urlopen(req).read())
    assert table["kind"] == "Table" and table["rows"][0]["cells"][0] == "p"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"

    with urllib.request.urlopen(kubeapi.url + "/apis/apps/v1") as resp:
        names = {r["name"] for r in json.loads(resp.read())["resources"]}
    assert {"deployments", "deployments/status", "deployments/scale", "statefulsets", "daemonsets"} <= names
    with urllib.request.urlopen(kubeapi.url + "/apis") as resp:
        groups = {g["name"] for g in json.loads(resp.read())["groups"]}
    assert {
        "apps",
        "batch",
        "rbac.authorization.k8s.io",
        "networking.k8s.io",
        "storage.k8s.io",
        "policy",
        "autoscaling",
        "apiextensions.k8s.io",
        "coordination.k8s.io",
        "authorization.k8s.io",
    } <= groups
    review = client.AuthorizationV1Api(kubeapi.api_client()).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb="create", resource="pods")
            )
        )
    )
    assert review.status.allowed is True
