"""Canary on the kube target through the real canary flow, with real traffic split by the cluster's own
traffic layer: a Gateway API HTTPRoute's weights, or an ingress-nginx canary Ingress.

One simulator for the module, with the process runtime (each graph's frontend and mocker workers run as
real Dynamo processes on a loopback address) and the traffic layer (a Gateway implementation and
ingress-nginx stand-ins whose real loopback proxies split requests by the route's weights); the real
helm, kubectl and kubernetes client.

Covers: a healthy candidate staged as its own graph beside stable, compared side by side, given 50% of
the requests entering through the HTTPRoute (both frontends' TTFT histograms read), then promoted as
revision 2 with the route back on stable alone and the candidate graph deleted; the same through
ingress-nginx (a canary Ingress with canary-weight, deleted at the end); a slow candidate rolled back by
the gate by itself while a client entering through the Gateway sees no failed request; a spec without a
route compared side by side only; a candidate platform refused before any change; a missing Gateway
failing the preflight before any change; a route the Gateway refuses failing at once with its reason.
Not covered (the simulation's limits): a real Gateway's data plane (Envoy etc.) and its propagation
delay beyond the route's status, TLS, more than one frontend replica per graph, GPUs (mocker workers).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flows.canary import CanaryFailed, canary
from flows.deploy import deploy
from flows.teardown import teardown
from runtime.domain import naming
from runtime.errors import NotSupportedError, PreflightError
from runtime.gateways import loadgen
from runtime.targets.kube.backend import KubeBackend
from runtime.targets.kube.route import RouteRejected
from tests.harness.kubeapi.controllers import BACKEND_HEADER, GATEWAY_CONTROLLER, NGINX_CONTROLLER

from .conftest import make_spec, spec_doc, start_cluster, stop_cluster, writes

pytestmark = pytest.mark.integration

DGD = ("nvidia.com/v1beta1", "DynamoGraphDeployment")
GW_PORT, INGRESS_PORT = 18080, 18081
SERVING = {"topology": "agg", "workers": {"replicas": 1}}
# Generous bounds for the healthy cases: both graphs share two loaded cores, so latency is noisy here.
HEALTHY = {
    "requests_per_step": 24,
    "min_samples": 12,
    "steps": [50, 100],
    "analysis_interval_s": 60,
    "max_ttft_regression": 10.0,
    "max_itl_regression": 10.0,
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory, chart_env):
    sim = start_cluster(
        tmp_path_factory, process_runtime=True, traffic={"ingress_port": INGRESS_PORT, "seed": 7}
    )
    store = sim.store
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "infra"}})
    store.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "sim"},
            "spec": {"controllerName": GATEWAY_CONTROLLER},
        }
    )
    store.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "edge", "namespace": "infra"},
            "spec": {
                "gatewayClassName": "sim",
                "listeners": [
                    {
                        "name": "http",
                        "protocol": "HTTP",
                        "port": GW_PORT,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        }
    )
    store.create(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "nginx"},
            "spec": {"controller": NGINX_CONTROLLER},
        }
    )
    yield sim
    stop_cluster(sim)


GATEWAY = {"gateway": {"name": "edge", "namespace": "infra", "hostnames": ["llm.example.test"]}}
INGRESS = {"ingress": {"class_name": "nginx", "host": "llm.example.test", "port": INGRESS_PORT}}


def doc(sim, name: str, route: dict | None, canary_cfg: dict) -> dict:
    serving = {**SERVING, **({"route": route} if route else {})}
    return spec_doc(sim, name, serving, canary=canary_cfg)


def entry_backends(url: str, n: int = 40) -> dict[str, int]:
    """Where n requests entering at ``url`` (Host llm.example.test) were sent by the traffic layer."""
    import httpx

    seen: dict[str, int] = {}
    with httpx.Client(timeout=30, headers={"Host": "llm.example.test"}) as client:
        for _ in range(n):
            r = client.get(f"{url}/v1/models")
            assert r.status_code == 200, r.text
            seen[r.headers[BACKEND_HEADER]] = seen.get(r.headers[BACKEND_HEADER], 0) + 1
    return seen


def assert_candidate_gone(sim, name: str) -> None:
    canary_graph = naming.dgd_name(make_spec(sim, name), canary=True)
    assert sim.store.try_get(*DGD, canary_graph, name) is None
    assert [p for p in sim.ctl.runtime.processes() if p["pod"].startswith(f"{name}/{canary_graph}")] == []


@pytest.mark.parametrize("route", ["gateway", "ingress"])
def test_healthy_candidate_gets_real_traffic_by_weight_and_is_promoted(prefect_api, sim, route):
    name = f"kc-ok-{route}"
    d = doc(sim, name, GATEWAY if route == "gateway" else INGRESS, HEALTHY)
    first = deploy(spec=d)
    kb = KubeBackend(make_spec(sim, name, {**SERVING, "route": d["serving"]["route"]}))
    entry = kb.route_url()
    assert entry is not None and entry.startswith("http://127.77.")
    assert entry_backends(entry) == {f"{name}/{name}-frontend": 40}, "the route serves stable alone"

    result = canary(spec=d, candidate={"serving": {"mocker": {"speedup_ratio": 12.0}}})
    assert result["status"] == "promoted" and result["revision"] == first["revision"] + 1
    assert [r["step"] for r in result["steps"]] == ["side-by-side", "50%"]
    assert all(r["verdict"] == "pass" for r in result["steps"]), result["steps"]
    shifted = result["steps"][1]
    # both frontends served a share of what entered through the route: each side has TTFT samples
    assert shifted["stable_ttft_p90_ms"] is not None and shifted["candidate_ttft_p90_ms"] is not None
    assert shifted["errors"] == 0 and shifted["requests"] == HEALTHY["requests_per_step"]
    assert "weights" in result["traffic"] or "canary-weight" in result["traffic"]

    revs = {r.number: r for r in kb.revisions()}
    assert revs[2].status == "serving" and revs[2].started_by == "canary"
    assert revs[2].spec["serving"]["mocker"]["speedup_ratio"] == 12.0
    assert entry_backends(entry) == {f"{name}/{name}-frontend": 40}, "promoted: stable alone again"
    assert_candidate_gone(sim, name)
    ingresses = sorted(i["metadata"]["name"] for i in sim.store.list("networking.k8s.io/v1", "Ingress", name))
    assert ingresses == ([] if route == "gateway" else [name]), "the canary Ingress is gone"
    down = teardown(spec=d, delete_model_cache=True)
    assert down["leftovers"] == []


def test_slow_candidate_rolls_back_by_itself_and_clients_of_the_route_fail_nothing(prefect_api, sim):
    name = "kc-slow"
    d = doc(sim, name, GATEWAY, HEALTHY | {"max_ttft_regression": 0.5, "max_itl_regression": 0.5})
    deploy(spec=d)
    kb = KubeBackend(make_spec(sim, name, {**SERVING, "route": GATEWAY}))
    entry = kb.route_url()
    stop = threading.Event()
    reports = []

    def client() -> None:  # a user of the route for the whole canary, in bounded batches
        while not stop.is_set():
            reports.append(
                asyncio.run(
                    loadgen.run_load(
                        entry,
                        "dynadeploy/tiny-mock",
                        requests=8,
                        concurrency=2,
                        max_tokens=8,
                        prompt="route traffic",
                        timeout_s=60,
                        host="llm.example.test",
                    )
                )
            )

    thread = threading.Thread(target=client)
    thread.start()
    try:
        with pytest.raises(CanaryFailed, match="rolled back at side-by-side"):
            canary(spec=d, candidate={"serving": {"mocker": {"speedup_ratio": 0.05}}})
    finally:
        stop.set()
        thread.join(timeout=120)
    failed = [res.error for r in reports for res in r.results if not res.ok]
    assert sum(r.count for r in reports) > 0 and failed == []
    assert [(r.number, r.status) for r in kb.revisions()] == [(1, "serving")]
    assert_candidate_gone(sim, name)
    route = sim.store.get("gateway.networking.k8s.io/v1", "HTTPRoute", name, name)
    assert [b["name"] for b in route["spec"]["rules"][0]["backendRefs"]] == [f"{name}-frontend"]
    teardown(spec=d, delete_model_cache=True)


def test_without_a_route_the_canary_is_side_by_side_only(prefect_api, sim):
    name = "kc-noroute"
    d = doc(sim, name, None, HEALTHY)
    deploy(spec=d)
    result = canary(spec=d, candidate={"serving": {"mocker": {"speedup_ratio": 12.0}}})
    assert result["status"] == "promoted" and [r["step"] for r in result["steps"]] == ["side-by-side"]
    assert "no serving.route" in result["traffic"]
    assert_candidate_gone(sim, name)
    teardown(spec=d, delete_model_cache=True)


def test_a_candidate_platform_is_refused_before_any_change(prefect_api, sim):
    name = "kc-platform"
    d = doc(sim, name, None, HEALTHY)
    deploy(spec=d)
    before = len(sim.requests.entries)
    with pytest.raises(NotSupportedError, match="one operator"):
        canary(spec=d, candidate={"platform": {"operator_mode": "namespace"}})
    assert [w for w in writes(sim, before) if "/configmaps" not in w and "/leases" not in w] == []
    teardown(spec=d, delete_model_cache=True)


def test_a_missing_gateway_fails_the_preflight_before_any_change(prefect_api, sim):
    name = "kc-nogw"
    d = doc(sim, name, {"gateway": {"name": "nope", "namespace": "infra"}}, HEALTHY)
    before = len(sim.requests.entries)
    with pytest.raises(PreflightError, match="Gateway infra/nope does not exist") as err:
        deploy(spec=d)
    assert "serving.route.gateway.name" in err.value.hint
    assert [w for w in writes(sim, before) if "/leases" not in w] == []


def test_a_route_the_gateway_refuses_fails_fast_with_the_reason(prefect_api, sim):
    """A listener admitting routes from its own namespace only: Accepted=False NotAllowedByListeners."""
    sim.store.create(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "private", "namespace": "infra"},
            "spec": {
                "gatewayClassName": "sim",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": GW_PORT + 10}],
            },
        }
    )
    name = "kc-refused"
    d = doc(sim, name, {"gateway": {"name": "private", "namespace": "infra"}}, HEALTHY)
    t0 = time.monotonic()
    with pytest.raises(RouteRejected, match="NotAllowedByListeners") as err:
        deploy(spec=d)
    assert time.monotonic() - t0 < 100, "refused at once, not after the route timeout"
    assert "allowedRoutes" in err.value.hint
    teardown(spec=d, delete_model_cache=True)
