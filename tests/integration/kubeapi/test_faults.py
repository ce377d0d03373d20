"""Fault injection, each kind seen by a real client: 429 + Retry-After (Python client: ApiException with
the header; kubectl/client-go: waits and retries), 500/503 for a number of requests, added latency,
a watch stream cut after N events (and resumed from the last resourceVersion), and a helm release left
in pending-upgrade so ``helm upgrade`` refuses to run. Faults are set from Python and over HTTP
(/_sim/faults, /_sim/helm-release-status).

Not simulated: network-level faults (resets mid-request, TLS, DNS), slow bodies, partial writes.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from .conftest import CHART

pytestmark = pytest.mark.integration


@pytest.fixture
def v1(kubeapi):
    c = kubeapi.api_client(retries=False)  # urllib3 would otherwise retry 429/503 by itself
    yield client.CoreV1Api(c)
    c.close()


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def test_429_with_retry_after_and_5xx(kubeapi, v1):
    rule = kubeapi.faults.add(path=r"/configmaps$", verbs=["list"], status=429, retry_after=3, times=1)
    with pytest.raises(ApiException) as exc:
        v1.list_namespaced_config_map("default")
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "3"
    body = json.loads(exc.value.body)
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 3
    assert v1.list_namespaced_config_map("default").items == []  # times=1: next one passes
    assert rule.hits == 1
    with urllib.request.urlopen(kubeapi.url + "/_sim/requests") as resp:
        logged = [r for r in json.loads(resp.read()) if r["path"] == "/api/v1/namespaces/default/configmaps"]
    assert [(r["verb"], r["status"]) for r in logged] == [("list", 429), ("list", 200)]

    kubeapi.faults.add(path=r"/configmaps", verbs=["create"], status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            v1.create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"))
            )
        assert exc.value.status == 500
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    statuses = [r.status for r in kubeapi.requests.find(method="POST", path="/configmaps$")]
    assert statuses == [500, 500, 201]

    # over HTTP: a 503 on GET for one request
    _post(
        kubeapi.url + "/_sim/faults", {"path": "/configmaps/c$", "verbs": ["GET"], "status": 503, "times": 1}
    )
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_config_map("c", "default")
    assert exc.value.status == 503 and exc.value.headers["Retry-After"] == "1"
    assert v1.read_namespaced_config_map("c", "default").metadata.name == "c"


def test_clients_honour_retry_after(kubeapi, kubectl):
    # the Python client with its default urllib3 retries waits Retry-After and succeeds
    kubeapi.faults.add(
        path=r"/namespaces/default/secrets$", verbs=["list"], status=429, retry_after=1, times=1
    )
    api = kubeapi.api_client()
    t0 = time.monotonic()
    assert client.CoreV1Api(api).list_namespaced_secret("default").items == []
    assert time.monotonic() - t0 >= 0.9
    api.close()
    # so does client-go (kubectl)
    kubeapi.faults.add(
        path=r"/namespaces/default/configmaps$", verbs=["list"], status=429, retry_after=1, times=1
    )
    res = kubectl("get", "configmaps", "-n", "default")
    lists = kubeapi.requests.find(method="GET", path="/namespaces/default/configmaps$")
    assert [r.status for r in lists] == [429, 200]
    assert lists[1].started - lists[0].started >= 0.9
    assert "No resources found" in res.err


def test_latency(kubeapi, v1):
    v1.list_namespaced_config_map("default")  # warm the connection
    kubeapi.faults.add(path=r"/namespaces/default/configmaps$", verbs=["list"], latency=0.4, times=1)
    t0 = time.monotonic()
    v1.list_namespaced_config_map("default")
    assert time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    v1.list_namespaced_config_map("default")
    assert time.monotonic() - t0 < 0.4
    assert kubeapi.requests.find(path=r"/namespaces/default/configmaps$")[-2].duration >= 0.4


def test_dropped_watch_is_resumed_from_last_resource_version(kubeapi, v1):
    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    for i in range(5):
        v1.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"w{i}"))
        )
    kubeapi.faults.add(path=r"/configmaps$", verbs=["watch"], drop_watch_after=2, times=1)
    w = watch.Watch()
    t0 = time.monotonic()
    first = [
        ev["object"].metadata.name
        for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10)
    ]
    assert first == ["w0", "w1"] and time.monotonic() - t0 < 5  # cut, long before the timeout
    rest = []
    for ev in w.stream(
        v1.list_namespaced_config_map, "default", resource_version=w.resource_version, timeout_seconds=1
    ):
        rest.append(ev["object"].metadata.name)
    assert rest == ["w2", "w3", "w4"]


def test_pending_upgrade_release_blocks_helm_upgrade(kubeapi, helm):
    helm("install", "stuck", str(CHART), "-n", "default", "--set", "hook.enabled=false")
    if helm.major == 4:  # over HTTP, or from Python
        _post(
            kubeapi.url + "/_sim/helm-release-status",
            {"name": "stuck", "namespace": "default", "status": "pending-upgrade"},
        )
    else:
        kubeapi.set_helm_release_status("stuck", "default", "pending-upgrade")
    history = json.loads(helm("history", "stuck", "-n", "default", "-o", "json").out)
    assert history[-1]["status"] == "pending-upgrade"
    res = helm("upgrade", "stuck", str(CHART), "-n", "default", check=False)
    assert res.rc != 0
    assert "another operation (install/upgrade/rollback) is in progress" in res.err
