"""The kube gateway (runtime/gateways/kube.py) against the Kubernetes API simulator, through the real kubernetes client.

Covers: server-side apply with field manager dynadeploy (idempotent, conflicts, force), get/list by label
with paging, unserved kinds, delete (404 is success, propagation, wait-gone), the informer-style wait (watch,
timeout message, fallback to polling when watches fail), error translation (429 with Retry-After, 5xx, 409,
403 with an RBAC hint, 422, unreachable API, bad kubeconfig), SelfSubjectAccessReview with deny rules, pod
logs, events, and Secrets whose values never reach logs or error messages.
"""

from __future__ import annotations

import base64
import logging
import socket
import time

import pytest

from runtime.errors import PermanentError, TransientError
from runtime.gateways.kube import Kube, WaitTimeout

pytestmark = pytest.mark.integration


@pytest.fixture
def kube(kubeapi):
    k = Kube(str(kubeapi.kubeconfig))
    yield k
    k.close()


def cm(name: str, ns: str = "default", labels: dict | None = None, data: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "data": data or {"k": "v"},
    }


def deployment(name: str = "web", replicas: int = 2) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example/web:1"}]},
            },
        },
    }


def test_apply_is_server_side_apply_with_our_field_manager_and_idempotent(kubeapi, kube):
    out = kube.apply(cm("a", labels={"x": "1"}))
    assert out["metadata"]["labels"] == {"x": "1"}
    (req,) = kubeapi.requests.find(method="PATCH", path="/configmaps/a$")
    assert (
        req.content_type.startswith("application/apply-patch")
        and req.query.get("fieldManager") == "dynadeploy"
    )
    managers = {m["manager"]: m["operation"] for m in out["metadata"]["managedFields"]}
    assert managers == {"dynadeploy": "Apply"}
    rv = out["metadata"]["resourceVersion"]
    assert kube.apply(cm("a", labels={"x": "1"}))["metadata"]["resourceVersion"] == rv  # no churn

    # another manager owns data.k with another value: a plain apply conflicts (409 -> transient), force wins
    kubeapi.store.apply(cm("b", data={"k": "theirs"}), field_manager="someone-else")
    with pytest.raises(TransientError, match="409"):
        kube.apply(cm("b", data={"k": "ours"}))
    assert kube.apply(cm("b", data={"k": "ours"}), force=True)["data"] == {"k": "ours"}


def test_get_list_by_label_with_paging_and_unserved_kinds(kubeapi, kube):
    for i in range(7):
        kube.apply(cm(f"c{i}", labels={"team": "a" if i % 2 else "b", "app": "x"}))
    assert len(kube.list("v1", "ConfigMap", "default", labels={"app": "x"}, page=3)) == 7
    assert len(kubeapi.requests.find(method="GET", path="/namespaces/default/configmaps$")) == 3  # 3 pages
    assert {o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", "default", labels={"team": "a"})} == {
        "c1",
        "c3",
        "c5",
    }
    assert kube.list("v1", "ConfigMap", "default", labels="team=a,app")[0]["kind"] == "ConfigMap"
    assert kube.get("v1", "ConfigMap", "c0", "default")["data"] == {"k": "v"}
    assert kube.get("v1", "ConfigMap", "nope", "default") is None
    assert kube.served("v1", "ConfigMap") and not kube.served("example.com/v1", "Widget")
    assert kube.list("example.com/v1", "Widget") == [] and kube.get("example.com/v1", "Widget", "w") is None
    assert kube.delete("example.com/v1", "Widget", "w") is False
    assert kube.version()["gitVersion"].startswith("v1.")


def test_delete_not_found_is_success_and_waits_until_gone(kubeapi, kube):
    assert kube.delete("v1", "ConfigMap", "missing", "default") is False
    kube.apply(deployment())
    kube.wait(
        "apps/v1",
        "Deployment",
        lambda objs: objs and objs[0].get("status", {}).get("availableReplicas") == 2,
        name="web",
        namespace="default",
        timeout_s=20,
    )
    assert kube.delete("apps/v1", "Deployment", "web", "default", propagation="Foreground", wait=True) is True
    assert len(kubeapi.requests.find(method="DELETE", path="/deployments/web$")) == 1
    assert kubeapi.store.try_get("apps/v1", "Deployment", "web", "default") is None
    assert kubeapi.store.list("apps/v1", "ReplicaSet", "default") == []  # the cascade ran (foreground)


def test_wait_watches_and_times_out_with_the_stuck_description(kubeapi, kube):
    def later():
        time.sleep(0.5)
        kubeapi.store.create(cm("late"))

    import threading

    kube.list("v1", "ConfigMap", "default")  # discovery done before the clock starts
    threading.Thread(target=later, daemon=True).start()
    t0 = time.monotonic()
    got = kube.wait(
        "v1",
        "ConfigMap",
        lambda objs: objs and objs[0],
        name="late",
        namespace="default",
        timeout_s=10,
        tick_s=5,
    )
    assert got["metadata"]["name"] == "late" and time.monotonic() - t0 < 3  # woken by the watch, not a tick
    with pytest.raises(WaitTimeout, match=r"timed out after 1s waiting for the thing: still 0"):
        kube.wait(
            "v1",
            "ConfigMap",
            lambda objs: None,
            name="nope",
            namespace="default",
            timeout_s=1,
            what="the thing",
            describe_stuck=lambda objs: f"still {len(objs)}",
        )


def test_wait_falls_back_to_polling_when_watches_fail(kubeapi, kube):
    kubeapi.faults.add(path="/configmaps", verbs=["watch"], status=500)
    threading = __import__("threading")
    threading.Timer(0.8, lambda: kubeapi.store.create(cm("polled"))).start()
    got = kube.wait(
        "v1",
        "ConfigMap",
        lambda objs: objs and objs[0],
        name="polled",
        namespace="default",
        timeout_s=15,
        tick_s=0.5,
    )
    assert got["metadata"]["name"] == "polled"
    # transient read errors during a wait are waited through, up to the deadline
    kubeapi.faults.add(path="/configmaps", verbs=["list"], status=503, times=2)
    assert kube.wait(
        "v1",
        "ConfigMap",
        lambda objs: objs and objs[0],
        name="polled",
        namespace="default",
        timeout_s=10,
        tick_s=0.5,
    )


@pytest.mark.parametrize(("status", "retry_after"), [(429, 2.0), (500, None), (503, 3.0), (504, None)])
def test_throttling_and_server_errors_are_transient_with_retry_after(kubeapi, kube, status, retry_after):
    kubeapi.faults.add(
        path="/configmaps/a$", verbs=["get"], status=status, retry_after=retry_after or 1, times=1
    )
    with pytest.raises(TransientError) as info:
        kube.get("v1", "ConfigMap", "a", "default")
    assert f"HTTP {status}" in str(info.value)
    assert info.value.retry_after == retry_after
    assert kube.get("v1", "ConfigMap", "a", "default") is None  # the fault fired once: the next call works


def test_forbidden_is_permanent_with_an_rbac_hint(kubeapi, kube):
    kubeapi.faults.add(path="/namespaces/default/configmaps", verbs=["patch"], status=403)
    with pytest.raises(PermanentError) as info:
        kube.apply(cm("denied"))
    assert not isinstance(info.value, TransientError)
    assert "may not patch configmaps in namespace default" in info.value.hint
    assert "kubectl auth can-i patch configmaps -n default" in info.value.hint


def test_invalid_objects_unreachable_servers_and_bad_kubeconfigs(kubeapi, kube, tmp_path):
    with pytest.raises(PermanentError, match="HTTP 422") as info:
        kube.apply(cm("Not_A_Valid_Name"))
    assert not isinstance(info.value, TransientError)

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(kubeapi.kubeconfig.read_text().replace(f":{kubeapi.port}", f":{port}"))
    with pytest.raises(TransientError, match="cannot reach the Kubernetes API"):
        Kube(str(dead)).version()
    with pytest.raises(PermanentError, match="does not exist"):
        Kube(str(tmp_path / "missing")).version()
    with pytest.raises(PermanentError, match="context nope") as info:
        Kube(str(kubeapi.kubeconfig), "nope").version()
    assert "target.context" in info.value.hint


def test_access_reviews_answer_per_verb_and_resource(kubeapi, kube):
    assert kube.can_i("create", "dynamographdeployments", group="nvidia.com", namespace="ns1")
    kubeapi.deny(verb="create", resource="dynamographdeployments")
    assert not kube.can_i("create", "dynamographdeployments", group="nvidia.com", namespace="ns1")
    assert kube.can_i("get", "dynamographdeployments", group="nvidia.com", namespace="ns1")
    assert kube.can_i("get", "pods", namespace="ns1", subresource="log")


def test_pod_logs_and_events(kubeapi, kube):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "main", "image": "x:1"}]},
    }
    live = kubeapi.store.create(pod)
    kubeapi.store.set_pod_log("default", "p", "\n".join(f"line {i}" for i in range(100)) + "\n")
    assert kube.pod_logs("p", "default", tail_lines=2).splitlines() == ["line 98", "line 99"]
    assert kube.pod_logs("gone", "default") == ""
    kubeapi.store.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "p.1", "namespace": "default"},
            "involvedObject": {
                "kind": "Pod",
                "name": "p",
                "namespace": "default",
                "uid": live["metadata"]["uid"],
            },
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
            "type": "Warning",
        }
    )
    kubeapi.store.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "q.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "q", "namespace": "default"},
            "reason": "Other",
            "message": "x",
        }
    )
    assert [e["reason"] for e in kube.events_for(live)] == ["BackOff"]


def test_secrets_are_written_from_values_and_never_logged(kubeapi, kube, caplog):
    token = "hf_" + "S3cr3tT0kenValue" * 2
    caplog.set_level(logging.DEBUG)
    assert kube.ensure_secret("hf", "default", {"HF_TOKEN": token}, labels={"a": "b"}) is True
    live = kubeapi.store.get("v1", "Secret", "hf", "default")
    assert base64.b64decode(live["data"]["HF_TOKEN"]).decode() == token
    assert kube.ensure_secret("hf", "default", {"HF_TOKEN": token}, labels={"a": "b"}) is False  # unchanged
    patches = kubeapi.requests.find(method="PATCH", path="/secrets/hf$")
    assert len(patches) == 1
    kubeapi.faults.add(
        path="/secrets/hf$", verbs=["patch"], status=500, message=f"echoing the request {token}", times=1
    )
    with pytest.raises(TransientError) as info:
        kube.ensure_secret("hf", "default", {"HF_TOKEN": token + "x"})
    assert token not in str(info.value) and "HTTP 500" in str(info.value)
    assert token not in caplog.text and "S3cr3t" not in caplog.text
