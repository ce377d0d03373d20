"""The real kubectl (1.35, pinned) against the simulator, with validation ON (the simulator's minimal
OpenAPI v3 makes kubectl validate server-side, so no --validate=false is needed).

Simulated here: client-side apply (three-way strategic merge patch: list items removed by merge key),
server-side apply with field managers and conflicts, get (Table and -o json), wait --for=jsonpath and
--for=condition (list + watch), delete with GC of owned ReplicaSets, namespace deletion.
Not simulated: printer columns of built-in kinds beyond NAME/AGE, real pods, admission, schema validation.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: kt, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        ports: [{containerPort: 80}]
      - name: side
        image: busybox:1
"""


def test_client_side_apply_get_wait_delete(kubeapi, kubectl):
    kubectl("create", "namespace", "kt")
    assert "created" in kubectl("apply", "-f", "-", stdin=DEPLOYMENT).out
    changed = (
        DEPLOYMENT.replace("nginx:1", "nginx:2")
        .replace('{name: B, value: "2"}', '{name: C, value: "3"}')
        .replace("      - name: side\n        image: busybox:1\n", "")
    )
    assert "configured" in kubectl("apply", "-f", "-", stdin=changed).out
    containers = kubeapi.store.get("apps/v1", "Deployment", "web", "kt")["spec"]["template"]["spec"][
        "containers"
    ]
    assert [c["name"] for c in containers] == ["web"]
    assert containers[0]["image"] == "nginx:2"
    assert [e["name"] for e in containers[0]["env"]] == ["A", "C"]
    smp = kubeapi.requests.find(method="PATCH", path="/deployments/web$")
    assert smp and smp[-1].content_type.startswith("application/strategic-merge-patch+json")
    assert smp[-1].query.get("fieldManager") == "kubectl-client-side-apply"

    kubectl("wait", "--for=jsonpath={.status.readyReplicas}=2", "deployment/web", "-n", "kt", "--timeout=20s")
    kubectl("wait", "--for=condition=Available", "deployment/web", "-n", "kt", "--timeout=20s")

    listing = kubectl("get", "deployments,configmaps", "-n", "kt").out
    assert "deployment.apps/web" in listing
    doc = json.loads(kubectl("get", "deployments", "-n", "kt", "-o", "json").out)
    assert [i["metadata"]["name"] for i in doc["items"]] == ["web"]
    assert doc["items"][0]["status"]["observedGeneration"] == doc["items"][0]["metadata"]["generation"] == 2
    assert kubeapi.store.list("apps/v1", "ReplicaSet", "kt")  # made by the basic controller

    kubectl("delete", "deployment/web", "-n", "kt")
    assert kubeapi.store.list("apps/v1", "ReplicaSet", "kt") == []  # owned RS collected
    assert kubectl("get", "deployment", "web", "-n", "kt", check=False).rc != 0

    kubectl("delete", "namespace", "kt")
    assert kubeapi.store.try_get("v1", "Namespace", "kt") is None
    # validation stayed on: kubectl read the OpenAPI v3 index, then let the server validate (Strict)
    assert all(r.status == 200 for r in kubeapi.requests.find(method="GET", path="^/openapi/v3"))
    posts = kubeapi.requests.find(method="POST", path="/deployments$")
    assert posts and posts[0].query.get("fieldValidation") == "Strict"


def test_server_side_apply_managers_and_conflicts(kubeapi, kubectl):
    kubectl("create", "namespace", "kt")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: kt}\ndata: {a: '1', b: '2'}\n"
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", "-", stdin=cm).out
    kubectl("apply", "--server-side", "-f", "-", stdin=cm.replace(", b: '2'", ""))
    obj = kubeapi.store.get("v1", "ConfigMap", "ssa", "kt")
    assert obj["data"] == {"a": "1"}  # b no longer applied -> removed
    assert {m["manager"] for m in obj["metadata"]["managedFields"]} == {"kubectl"}
    applies = kubeapi.requests.find(method="PATCH", path="/configmaps/ssa$")
    assert all(r.content_type == "application/apply-patch+yaml" for r in applies)

    # another manager owns .data.a -> conflict, then --force-conflicts takes it over
    res = kubectl(
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        "-",
        stdin=cm.replace("a: '1'", "a: 'x'"),
        check=False,
    )
    assert res.rc != 0 and 'conflict with "kubectl"' in res.err
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        "-",
        stdin=cm.replace("a: '1'", "a: 'x'"),
    )
    assert kubeapi.store.get("v1", "ConfigMap", "ssa", "kt")["data"]["a"] == "x"

    # a Deployment applied server-side becomes ready and converges on re-apply (no change, no new RV)
    kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    kubectl("wait", "--for=condition=Available", "deployment/web", "-n", "kt", "--timeout=20s")
    rv = kubeapi.store.get("apps/v1", "Deployment", "web", "kt")["metadata"]["resourceVersion"]
    kubectl("apply", "--server-side", "-f", "-", stdin=DEPLOYMENT)
    assert kubeapi.store.get("apps/v1", "Deployment", "web", "kt")["metadata"]["resourceVersion"] == rv


def test_imperative_commands_and_access_reviews(kubeapi, kubectl):
    """kubectl's typed commands send protobuf bodies; auth can-i posts a SelfSubjectAccessReview."""
    kubectl("create", "namespace", "imp")
    kubectl("create", "serviceaccount", "robot", "-n", "imp")
    kubectl("create", "secret", "generic", "creds", "--from-literal=token=abc", "-n", "imp")
    kubectl("create", "configmap", "cfg", "--from-literal=k=v", "-n", "imp")
    posts = kubeapi.requests.find(method="POST", path="^/api/v1/")
    assert {r.content_type for r in posts} == {"application/vnd.kubernetes.protobuf"}
    assert kubeapi.store.get("v1", "Secret", "creds", "imp")["data"] == {"token": "YWJj"}
    assert kubectl("auth", "can-i", "create", "pods", "-n", "imp").out.strip() == "yes"
    kubeapi.deny(verb="delete", resource="namespaces")
    res = kubectl("auth", "can-i", "delete", "namespaces", check=False)
    assert res.rc == 1 and res.out.startswith("no")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "imp"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    kubeapi.store.create(pod)
    kubeapi.store.set_pod_log("imp", "p", "started\nserving\n")
    assert kubectl("logs", "p", "-n", "imp").out == "started\nserving\n"
