"""The traffic controllers (tests/harness/kubeapi/controllers/traffic.py) driven by the real kubernetes
client and kubectl, with real HTTP requests through their loopback proxies to small aiohttp backends that
stand in for pods (their podIPs are the backends' loopback addresses; the services controller turns them
into EndpointSlices).

Simulated here: GatewayClass / Gateway / HTTPRoute status (Accepted, Programmed, listeners and
attachedRoutes; NotAllowedByListeners, NoMatchingParent, BackendNotFound, RefNotPermitted until a
ReferenceGrant, InvalidKind), weighted splits measured over many requests, weight changes taking effect
once the route status reports the new generation, weight 0, all weights 0 -> 500, host/path/header
matching and 404, SSE streamed through incrementally, an in-flight stream finishing on its old backend,
Gateway deletion closing the proxy; ingress-nginx canary-weight 0/30/100, canary-by-header (always/never
and -value), a canary in another namespace, a canary alone serving nothing, Ingress status; kubectl apply
and get of Gateway API objects.
Not simulated: TLS, filters, timeouts, retries (see traffic.py's docstring).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter

import httpx
import pytest
from aiohttp import web
from kubernetes import client
from kubernetes.client.rest import ApiException

from runtime.host.ports import port_is_free
from tests.harness.kubeapi import Simulator
from tests.harness.kubeapi.controllers import (
    BACKEND_HEADER,
    GATEWAY_CONTROLLER,
    NGINX_CONTROLLER,
    install_all,
)

from .conftest import Tool, require_binary
from .conftest import wait_for as _wait_for

pytestmark = pytest.mark.integration

GROUP, V = "gateway.networking.k8s.io", "v1"
GW_PORT, NGINX_PORT = 18080, 18081
REQUESTS = 400


# ---------------------------------------------------------------------------------------------- backends
class Backends:
    """aiohttp servers on loopback addresses, one per fake pod: echo JSON, or SSE on /stream that sends
    its first event, then waits for ``release()`` before the rest."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-backends", daemon=True)
        self.thread.start()
        self.gate = self._call(self._event())
        self.runners: list[web.AppRunner] = []
        self.port = random.randint(20000, 30000)  # every backend listens on this port, on its own address

    async def _event(self) -> asyncio.Event:
        return asyncio.Event()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self, name: str) -> str:
        """Start a backend answering as ``name``; returns its (fresh loopback) address."""
        ip = next(
            ip
            for ip in (f"127.78.{random.randint(0, 255)}.{random.randint(2, 254)}" for _ in range(500))
            if port_is_free(self.port, ip)
        )

        async def handle(request: web.Request) -> web.StreamResponse:
            if request.path == "/stream":
                resp = web.StreamResponse(
                    headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                )
                await resp.prepare(request)
                await resp.write(f"data: {name} 0\n\n".encode())
                await asyncio.wait_for(self.gate.wait(), 20)
                for chunk in (f"data: {name} 1\n\n", "data: [DONE]\n\n"):
                    await resp.write(chunk.encode())
                await resp.write_eof()
                return resp
            body = await request.text()
            return web.json_response(
                {
                    "backend": name,
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string,
                    "body": body,
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                }
            )

        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, ip, self.port).start()
            self.runners.append(runner)

        self._call(start())
        return ip

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)

    def stop(self) -> None:
        self.release()
        for r in self.runners:
            self._call(r.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def kubeapi(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("kubeapi")
    sim = Simulator().start()
    sim.ctl = install_all(
        sim,
        dynamo=False,
        jobs=False,
        storage=False,
        gpu_operator=False,
        workloads={"ready_delay": 0.02, "terminating_delay": 0.1},
        # Stand-in HTTPRoute CRD: these contract tests pin parentRefs as sent ({"name": "gw"});
        # the real CRD (what the kube suite installs) defaults their group and kind.
        traffic={"ingress_port": NGINX_PORT, "seed": 20240501, "crds": "stand-in"},
    )
    sim.write_kubeconfig(home / "kubeconfig")
    sim.env = sim.tool_env(home)
    sim.backends = Backends()
    yield sim
    sim.stop()
    sim.backends.stop()
    assert not sim.controller_errors, "\n".join(e[2] for e in sim.controller_errors)


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=httpx.Timeout(10.0, read=5.0)) as c:
        yield c


def wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    return _wait_for(pred, timeout, what)


def setup_services(sim, ns: str, *names: str, ns_labels: dict | None = None) -> None:
    """Namespace ``ns`` with, per name, a Service (port 80 -> the backends' port) and a Ready pod whose
    podIP is a live backend answering as ``name``."""
    core = client.CoreV1Api(sim.api_client())
    if sim.store.try_get("v1", "Namespace", ns) is None:
        core.create_namespace({"metadata": {"name": ns, "labels": ns_labels or {}}})
    for name in names:
        ip = sim.backends.start(name)
        sim.store.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",  # as a kubelet would report it
                "metadata": {"name": f"{name}-0", "namespace": ns, "labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "backend"}]},
                "status": {"podIP": ip},
            }
        )
        core.create_namespaced_service(
            ns,
            {
                "metadata": {"name": name},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": sim.backends.port}],
                },
            },
        )
    disc = client.DiscoveryV1Api(sim.api_client())

    def ready() -> bool:
        slices = disc.list_namespaced_endpoint_slice(ns).items
        by_svc = {s.metadata.labels["kubernetes.io/service-name"]: s for s in slices}
        return all(
            n in by_svc and by_svc[n].endpoints and by_svc[n].endpoints[0].conditions.ready for n in names
        )

    wait_for(ready, what=f"ready endpoints of {names}")


def crd_api(sim) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(sim.api_client())


def make_gateway(
    sim, ns: str, name: str = "gw", *, listeners: list[dict] | None = None, cls: str = "sim"
) -> str:
    api = crd_api(sim)
    try:
        api.create_cluster_custom_object(
            GROUP,
            V,
            "gatewayclasses",
            {
                "apiVersion": f"{GROUP}/{V}",
                "kind": "GatewayClass",
                "metadata": {"name": cls},
                "spec": {"controllerName": GATEWAY_CONTROLLER},
            },
        )
    except ApiException as exc:
        assert exc.status == 409  # noqa: PT017 - one of many cases in a loop; pytest.raises cannot express 'may raise'
    api.create_namespaced_custom_object(
        GROUP,
        V,
        ns,
        "gateways",
        {
            "apiVersion": f"{GROUP}/{V}",
            "kind": "Gateway",
            "metadata": {"name": name},
            "spec": {
                "gatewayClassName": cls,
                "listeners": listeners or [{"name": "http", "port": GW_PORT, "protocol": "HTTP"}],
            },
        },
    )
    gw = wait_for(
        lambda: (
            (api.get_namespaced_custom_object(GROUP, V, ns, "gateways", name).get("status") or {}).get(
                "addresses"
            )
            and api.get_namespaced_custom_object(GROUP, V, ns, "gateways", name)
        ),
        what="gateway address",
    )
    return gw["status"]["addresses"][0]["value"]


def route(name: str, backends: list[tuple[str, int]], *, parent: dict | None = None, **spec) -> dict:
    rules = spec.pop("rules", None) or [
        {"backendRefs": [{"name": b, "port": 80, "weight": w} for b, w in backends]}
    ]
    return {
        "apiVersion": f"{GROUP}/{V}",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [parent or {"name": "gw"}], "rules": rules, **spec},
    }


def conditions(obj: dict, parent: int = 0) -> dict[str, dict]:
    parents = [
        p for p in (obj.get("status") or {}).get("parents") or [] if p["controllerName"] == GATEWAY_CONTROLLER
    ]
    return {c["type"]: c for c in parents[parent]["conditions"]} if len(parents) > parent else {}


def route_settled(sim, ns: str, name: str) -> dict:
    """The route once our parent status reports its current generation (the proxy already routes by it)."""
    api = crd_api(sim)

    def done():
        obj = api.get_namespaced_custom_object(GROUP, V, ns, "httproutes", name)
        conds = conditions(obj)
        gen = obj["metadata"]["generation"]
        return obj if conds and all(c["observedGeneration"] == gen for c in conds.values()) else None

    return wait_for(done, what=f"route {ns}/{name} status")


def spread(http: httpx.Client, url: str, n: int = REQUESTS, **kw) -> Counter:
    out: Counter = Counter()
    for _ in range(n):
        r = http.get(url, **kw)
        out[(r.status_code, r.headers.get(BACKEND_HEADER))] += 1
    return out


# ---------------------------------------------------------------------------------------------- Gateway API
def test_gateway_status_weighted_split_and_weight_changes(kubeapi, http):
    setup_services(kubeapi, "app", "stable", "canary")
    addr = make_gateway(kubeapi, "app")
    assert addr.startswith("127.77.") and addr == kubeapi.ctl.traffic.gateway_address("app", "gw")
    api = crd_api(kubeapi)
    gc = api.get_cluster_custom_object(GROUP, V, "gatewayclasses", "sim")
    assert {c["type"]: c["status"] for c in gc["status"]["conditions"]} == {"Accepted": "True"}
    api.create_namespaced_custom_object(
        GROUP, V, "app", "httproutes", route("split", [("stable", 90), ("canary", 10)])
    )
    obj = route_settled(kubeapi, "app", "split")
    conds = conditions(obj)
    assert (conds["Accepted"]["status"], conds["ResolvedRefs"]["status"]) == ("True", "True")
    assert obj["status"]["parents"][0]["parentRef"] == {"name": "gw"}
    gw = wait_for(
        lambda: (
            (g := api.get_namespaced_custom_object(GROUP, V, "app", "gateways", "gw"))["status"]["listeners"][
                0
            ]["attachedRoutes"]
            == 1
            and g
        ),
        what="attachedRoutes",
    )
    assert {c["type"]: c["status"] for c in gw["status"]["conditions"]} == {
        "Accepted": "True",
        "Programmed": "True",
    }
    lst = gw["status"]["listeners"][0]
    assert lst["supportedKinds"] == [{"group": GROUP, "kind": "HTTPRoute"}]
    assert {c["type"]: c["status"] for c in lst["conditions"]} == {
        "Accepted": "True",
        "Programmed": "True",
        "ResolvedRefs": "True",
        "Conflicted": "False",
    }

    # an OpenAI-style request: method, path, query, body, Host kept, hop-by-hop headers dropped
    r = http.post(
        f"http://{addr}:{GW_PORT}/v1/chat/completions?x=1",
        json={"model": "m", "messages": []},
        headers={"Host": "api.example", "Connection": "keep-alive, x-hop", "x-hop": "1", "x-e2e": "2"},
    )
    assert r.status_code == 200 and r.headers[BACKEND_HEADER] in ("app/stable", "app/canary")
    echo = r.json()
    assert (echo["method"], echo["path"], echo["query"]) == ("POST", "/v1/chat/completions", "x=1")
    assert json.loads(echo["body"]) == {"model": "m", "messages": []}
    assert echo["headers"]["host"] == "api.example" and echo["headers"]["x-e2e"] == "2"
    assert "x-hop" not in echo["headers"] and echo["headers"]["x-forwarded-for"].startswith("127.")

    url = f"http://{addr}:{GW_PORT}/v1/models"
    counts = spread(http, url)
    canary = counts[(200, "app/canary")]
    assert counts[(200, "app/stable")] + canary == REQUESTS
    assert 16 <= canary <= 64, counts  # mean 40, sd 6: 4 sd either way

    api.patch_namespaced_custom_object(
        GROUP,
        V,
        "app",
        "httproutes",
        "split",
        {
            "spec": {
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "stable", "port": 80, "weight": 50},
                            {"name": "canary", "port": 80, "weight": 50},
                        ]
                    }
                ]
            }
        },
    )
    assert route_settled(kubeapi, "app", "split")["metadata"]["generation"] == 2
    canary = spread(http, url)[(200, "app/canary")]
    assert 160 <= canary <= 240  # mean 200, sd 10

    api.patch_namespaced_custom_object(
        GROUP,
        V,
        "app",
        "httproutes",
        "split",
        {
            "spec": {
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "stable", "port": 80, "weight": 0},
                            {"name": "canary", "port": 80, "weight": 3},
                        ]
                    }
                ]
            }
        },
    )
    route_settled(kubeapi, "app", "split")
    assert spread(http, url, 50) == Counter({(200, "app/canary"): 50})  # weight 0: never

    api.patch_namespaced_custom_object(
        GROUP,
        V,
        "app",
        "httproutes",
        "split",
        {
            "spec": {
                "rules": [
                    {
                        "backendRefs": [
                            {"name": "stable", "port": 80, "weight": 0},
                            {"name": "canary", "port": 80, "weight": 0},
                        ]
                    }
                ]
            }
        },
    )
    route_settled(kubeapi, "app", "split")
    assert spread(http, url, 10) == Counter({(500, None): 10})  # every weight 0: 500


def test_route_conditions_cross_namespace_and_reference_grant(kubeapi, http):
    setup_services(kubeapi, "infra", "edge")
    setup_services(kubeapi, "team", "api", ns_labels={"gateway-access": "yes"})
    api = crd_api(kubeapi)
    addr = make_gateway(
        kubeapi,
        "infra",
        listeners=[
            {"name": "same", "port": GW_PORT, "protocol": "HTTP", "hostname": "same.example"},
            {
                "name": "shared",
                "port": GW_PORT,
                "protocol": "HTTP",
                "hostname": "*.shared.example",
                "allowedRoutes": {
                    "namespaces": {"from": "Selector", "selector": {"matchLabels": {"gateway-access": "yes"}}}
                },
            },
            {"name": "tls", "port": 18443, "protocol": "HTTPS"},
        ],
    )
    gw_ref = {"name": "gw", "namespace": "infra"}

    # a route from "team" to the listener that only takes routes from the Gateway's namespace
    api.create_namespaced_custom_object(
        GROUP,
        V,
        "team",
        "httproutes",
        route("denied", [("api", 1)], parent={**gw_ref, "sectionName": "same"}),
    )
    conds = conditions(route_settled(kubeapi, "team", "denied"))
    assert (conds["Accepted"]["status"], conds["Accepted"]["reason"]) == ("False", "NotAllowedByListeners")
    api.create_namespaced_custom_object(
        GROUP,
        V,
        "team",
        "httproutes",
        route("nosuch", [("api", 1)], parent={**gw_ref, "sectionName": "nope"}),
    )
    assert conditions(route_settled(kubeapi, "team", "nosuch"))["Accepted"]["reason"] == "NoMatchingParent"

    # the Selector listener admits "team" (namespace label); hostname narrows to the listener's wildcard
    api.create_namespaced_custom_object(
        GROUP,
        V,
        "team",
        "httproutes",
        route(
            "allowed",
            [("api", 1)],
            parent={**gw_ref, "sectionName": "shared"},
            hostnames=["api.shared.example"],
        ),
    )
    conds = conditions(route_settled(kubeapi, "team", "allowed"))
    assert (conds["Accepted"]["status"], conds["ResolvedRefs"]["status"]) == ("True", "True")
    r = http.get(f"http://{addr}:{GW_PORT}/", headers={"Host": "api.shared.example"})
    assert (r.status_code, r.headers[BACKEND_HEADER]) == (200, "team/api")
    assert http.get(f"http://{addr}:{GW_PORT}/", headers={"Host": "other.shared.example"}).status_code == 404
    assert http.get(f"http://{addr}:{GW_PORT}/", headers={"Host": "same.example"}).status_code == 404

    # backends: missing Service, another namespace without / with a ReferenceGrant, a kind that is no Service
    api.create_namespaced_custom_object(
        GROUP,
        V,
        "infra",
        "httproutes",
        route(
            "missing",
            [("ghost", 1)],
            parent={"name": "gw", "sectionName": "same"},
            hostnames=["same.example"],
            rules=[
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/ghost"}}],
                    "backendRefs": [{"name": "ghost", "port": 80}],
                }
            ],
        ),
    )
    conds = conditions(route_settled(kubeapi, "infra", "missing"))
    assert (conds["Accepted"]["status"], conds["ResolvedRefs"]["status"]) == ("True", "False")
    assert (
        conds["ResolvedRefs"]["reason"] == "BackendNotFound"
        and "infra/ghost" in conds["ResolvedRefs"]["message"]
    )
    r = http.get(f"http://{addr}:{GW_PORT}/ghost", headers={"Host": "same.example"})
    assert (r.status_code, r.headers[BACKEND_HEADER]) == (500, "infra/ghost")

    cross = route(
        "cross",
        [],
        parent={"name": "gw", "sectionName": "same"},
        hostnames=["same.example"],
        rules=[{"backendRefs": [{"name": "api", "namespace": "team", "port": 80}]}],
    )
    api.create_namespaced_custom_object(GROUP, V, "infra", "httproutes", cross)
    conds = conditions(route_settled(kubeapi, "infra", "cross"))
    assert (conds["ResolvedRefs"]["status"], conds["ResolvedRefs"]["reason"]) == ("False", "RefNotPermitted")
    assert http.get(f"http://{addr}:{GW_PORT}/x", headers={"Host": "same.example"}).status_code == 500
    api.create_namespaced_custom_object(
        GROUP,
        "v1beta1",
        "team",
        "referencegrants",
        {
            "apiVersion": f"{GROUP}/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": "from-infra"},
            "spec": {
                "from": [{"group": GROUP, "kind": "HTTPRoute", "namespace": "infra"}],
                "to": [{"group": "", "kind": "Service", "name": "api"}],
            },
        },
    )
    wait_for(
        lambda: (
            conditions(api.get_namespaced_custom_object(GROUP, V, "infra", "httproutes", "cross"))[
                "ResolvedRefs"
            ]["status"]
            == "True"
        ),
        what="ResolvedRefs after the ReferenceGrant",
    )
    kubeapi.ctl.traffic.wait_synced()
    r = http.get(f"http://{addr}:{GW_PORT}/x", headers={"Host": "same.example"})
    assert (r.status_code, r.headers[BACKEND_HEADER]) == (200, "team/api")

    api.create_namespaced_custom_object(
        GROUP,
        V,
        "infra",
        "httproutes",
        route(
            "badkind", [], rules=[{"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]}]
        ),
    )
    assert conditions(route_settled(kubeapi, "infra", "badkind"))["ResolvedRefs"]["reason"] == "InvalidKind"

    gw = api.get_namespaced_custom_object(GROUP, V, "infra", "gateways", "gw")
    listeners = {entry["name"]: entry for entry in gw["status"]["listeners"]}
    assert listeners["shared"]["attachedRoutes"] == 1
    tls = {c["type"]: (c["status"], c["reason"]) for c in listeners["tls"]["conditions"]}
    assert tls["Accepted"] == ("False", "UnsupportedProtocol")
    # someone else's parent entry survives our status writes
    obj = api.get_namespaced_custom_object(GROUP, V, "team", "httproutes", "allowed")
    other = {
        "parentRef": {"name": "elsewhere"},
        "controllerName": "example.com/other",
        "conditions": [
            {
                "type": "Accepted",
                "status": "True",
                "reason": "Accepted",
                "message": "",
                "observedGeneration": 1,
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
    }
    api.patch_namespaced_custom_object_status(
        GROUP, V, "team", "httproutes", "allowed", {"status": {"parents": [*obj["status"]["parents"], other]}}
    )
    api.patch_namespaced_custom_object(
        GROUP,
        V,
        "team",
        "httproutes",
        "allowed",
        {"metadata": {"labels": {"a": "b"}}, "spec": {"hostnames": ["x.shared.example"]}},
    )
    obj = route_settled(kubeapi, "team", "allowed")
    assert other in obj["status"]["parents"] and len(obj["status"]["parents"]) == 2


def test_matching_precedence_and_404(kubeapi, http):
    setup_services(kubeapi, "m", "root", "v1", "exact", "hdr")
    addr = make_gateway(kubeapi, "m")
    api = crd_api(kubeapi)

    def rule(svc: str, **match) -> dict:
        return {"matches": [match], "backendRefs": [{"name": svc, "port": 80}]}

    api.create_namespaced_custom_object(
        GROUP,
        V,
        "m",
        "httproutes",
        route(
            "r",
            [],
            hostnames=["*.example.com"],
            rules=[
                rule("root", path={"type": "PathPrefix", "value": "/"}),
                rule("v1", path={"type": "PathPrefix", "value": "/v1/chat/"}),
                rule("exact", path={"type": "Exact", "value": "/v1/models"}),
                rule(
                    "hdr",
                    path={"type": "PathPrefix", "value": "/v1"},
                    headers=[{"name": "x-canary", "value": "yes"}],
                ),
            ],
        ),
    )
    route_settled(kubeapi, "m", "r")

    def where(path: str, **headers) -> tuple[int, str | None]:
        r = http.get(f"http://{addr}:{GW_PORT}{path}", headers={"Host": "a.example.com", **headers})
        return r.status_code, r.headers.get(BACKEND_HEADER)

    canary = {"x-canary": "yes"}
    assert where("/v1/models") == where("/v1/models", **canary) == (200, "m/exact")  # Exact beats any prefix
    assert where("/v1/chat/completions") == (200, "m/v1")  # longest prefix
    assert where("/v1/chat") == (200, "m/v1")  # "/v1/chat/" matches by path element...
    assert where("/v1/chatty") == (200, "m/root")  # ... so not "/v1/chatty"
    assert where("/v1/chat/completions", **canary) == (200, "m/v1")  # a longer prefix beats header matches
    assert where("/v1/embeddings", **canary) == (200, "m/hdr")
    assert where("/v1/embeddings", **{"x-canary": "no"}) == (200, "m/root")
    r = http.get(f"http://{addr}:{GW_PORT}/v1/chat", headers={"Host": "example.org"})
    assert (r.status_code, r.headers.get(BACKEND_HEADER)) == (404, None)  # no hostname matches


def test_streaming_is_incremental_and_in_flight_requests_keep_their_backend(kubeapi, http):
    setup_services(kubeapi, "s", "stable", "canary")
    addr = make_gateway(kubeapi, "s")
    api = crd_api(kubeapi)
    api.create_namespaced_custom_object(
        GROUP, V, "s", "httproutes", route("r", [("stable", 1), ("canary", 0)])
    )
    route_settled(kubeapi, "s", "r")
    url = f"http://{addr}:{GW_PORT}/stream"
    with http.stream("POST", url, json={"stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers[BACKEND_HEADER] == "s/stable"
        chunks = r.iter_raw()
        first = next(chunks)  # arrives while the backend still holds the rest (read timeout 5 s)
        assert first.startswith(b"data: stable 0")
        api.patch_namespaced_custom_object(
            GROUP,
            V,
            "s",
            "httproutes",
            "r",
            {
                "spec": {
                    "rules": [
                        {
                            "backendRefs": [
                                {"name": "stable", "port": 80, "weight": 0},
                                {"name": "canary", "port": 80, "weight": 1},
                            ]
                        }
                    ]
                }
            },
        )
        route_settled(kubeapi, "s", "r")
        assert http.get(f"http://{addr}:{GW_PORT}/v1/models").headers[BACKEND_HEADER] == "s/canary"
        kubeapi.backends.release()
        rest = b"".join(chunks)
    assert (first + rest).decode() == "data: stable 0\n\ndata: stable 1\n\ndata: [DONE]\n\n"


def test_deleting_the_gateway_stops_its_proxy(kubeapi, http):
    setup_services(kubeapi, "d", "web")
    addr = make_gateway(kubeapi, "d")
    api = crd_api(kubeapi)
    api.create_namespaced_custom_object(GROUP, V, "d", "httproutes", route("r", [("web", 1)]))
    route_settled(kubeapi, "d", "r")
    assert http.get(f"http://{addr}:{GW_PORT}/").headers[BACKEND_HEADER] == "d/web"
    api.delete_namespaced_custom_object(GROUP, V, "d", "gateways", "gw")
    wait_for(lambda: kubeapi.ctl.traffic.gateway_address("d", "gw") is None, what="proxy stopped")
    with pytest.raises(httpx.ConnectError):
        http.get(f"http://{addr}:{GW_PORT}/")
    wait_for(
        lambda: not conditions(api.get_namespaced_custom_object(GROUP, V, "d", "httproutes", "r")),
        what="our parent status removed",
    )


# ---------------------------------------------------------------------------------------------- ingress-nginx
def _ingress(
    name: str,
    svc: str,
    *,
    host: str = "llm.example",
    path: str = "/",
    canary: dict | None = None,
    cls: str | None = "nginx",
) -> dict:
    ann = (
        {
            "nginx.ingress.kubernetes.io/canary": "true",
            **{f"nginx.ingress.kubernetes.io/{k}": v for k, v in canary.items()},
        }
        if canary is not None
        else {}
    )
    spec: dict = {
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": path,
                            "pathType": "Prefix",
                            "backend": {"service": {"name": svc, "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    }
    if cls:
        spec["ingressClassName"] = cls
    return {"metadata": {"name": name, "annotations": ann}, "spec": spec}


def test_ingress_nginx_canary_weight_and_header(kubeapi, http):
    setup_services(kubeapi, "prod", "stable")
    setup_services(kubeapi, "canary-ns", "canary")
    net = client.NetworkingV1Api(kubeapi.api_client())
    net.create_ingress_class(
        {
            "metadata": {
                "name": "nginx",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
            },
            "spec": {"controller": NGINX_CONTROLLER},
        }
    )
    addr = wait_for(lambda: kubeapi.ctl.traffic.ingress_address("nginx"), what="ingress-nginx address")
    net.create_namespaced_ingress("prod", _ingress("main", "stable", cls=None))  # default class
    net.create_namespaced_ingress(
        "canary-ns", _ingress("main-canary", "canary", canary={"canary-weight": "0"})
    )
    for ns, name in (("prod", "main"), ("canary-ns", "main-canary")):
        ing = wait_for(
            lambda ns=ns, name=name: (
                (net.read_namespaced_ingress(name, ns).to_dict().get("status") or {}).get("load_balancer")
                or {}
            ).get("ingress"),
            what="ingress status",
        )
        assert [e["ip"] for e in ing] == [addr]
    kubeapi.ctl.traffic.wait_synced()
    url = f"http://{addr}:{NGINX_PORT}/v1/models"
    host = {"Host": "llm.example"}
    assert spread(http, url, 50, headers=host) == Counter({(200, "prod/stable"): 50})  # weight 0

    def weight(w: str, **more: str) -> None:
        net.patch_namespaced_ingress(
            "main-canary",
            "canary-ns",
            {
                "metadata": {
                    "annotations": {
                        "nginx.ingress.kubernetes.io/canary-weight": w,
                        **{f"nginx.ingress.kubernetes.io/{k}": v for k, v in more.items()},
                    }
                }
            },
        )
        kubeapi.ctl.traffic.wait_synced()

    weight("30")
    counts = spread(http, url, headers=host)
    assert counts[(200, "prod/stable")] + counts[(200, "canary-ns/canary")] == REQUESTS
    assert 90 <= counts[(200, "canary-ns/canary")] <= 150, counts  # mean 120, sd 9.2
    weight("100")
    assert spread(http, url, 50, headers=host) == Counter({(200, "canary-ns/canary"): 50})

    weight("0", **{"canary-by-header": "x-canary"})
    assert spread(http, url, 20, headers={**host, "x-canary": "always"}) == Counter(
        {(200, "canary-ns/canary"): 20}
    )
    weight("100")
    assert spread(http, url, 20, headers={**host, "x-canary": "never"}) == Counter({(200, "prod/stable"): 20})
    assert spread(http, url, 20, headers={**host, "x-canary": "other"}) == Counter(
        {(200, "canary-ns/canary"): 20}
    )
    weight("0", **{"canary-by-header-value": "v2"})
    assert spread(http, url, 10, headers={**host, "x-canary": "v2"}) == Counter(
        {(200, "canary-ns/canary"): 10}
    )
    assert spread(http, url, 10, headers={**host, "x-canary": "always"}) == Counter(
        {(200, "prod/stable"): 10}
    )

    assert http.get(url, headers={"Host": "elsewhere.example"}).status_code == 404  # no such host
    net.delete_namespaced_ingress("main", "prod")
    kubeapi.ctl.traffic.wait_synced()
    assert (
        http.get(url, headers={**host, "x-canary": "v2"}).status_code == 404
    )  # a canary alone serves nothing


# ---------------------------------------------------------------------------------------------- kubectl
HTTPROUTE_YAML = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: k}
spec:
  parentRefs: [{name: gw}]
  hostnames: [web.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: web, port: 80, weight: 1}]
"""


def test_kubectl_apply_and_get_httproutes(kubeapi, http):
    kubectl = Tool(require_binary("kubectl"), kubeapi.env)
    setup_services(kubeapi, "k", "web")
    addr = make_gateway(kubeapi, "k")
    assert "created" in kubectl("apply", "-f", "-", stdin=HTTPROUTE_YAML).out
    route_settled(kubeapi, "k", "web")
    listing = kubectl("get", "httproutes", "-n", "k").out
    assert "web" in listing and "HOSTNAMES" in listing and "web.example" in listing
    gateways = kubectl("get", "gtw", "-n", "k").out
    assert addr in gateways and "PROGRAMMED" in gateways
    assert "httproute.gateway.networking.k8s.io/web" in kubectl("get", "gateway-api", "-n", "k").out
    kubectl(
        "wait",
        "--for=jsonpath={.status.parents[0].conditions[0].status}=True",
        "httproute/web",
        "-n",
        "k",
        "--timeout=20s",
    )
    r = http.get(f"http://{addr}:{GW_PORT}/", headers={"Host": "web.example"})
    assert (r.status_code, r.headers[BACKEND_HEADER]) == (200, "k/web")
    assert (
        "configured"
        in kubectl("apply", "-f", "-", stdin=HTTPROUTE_YAML.replace("weight: 1", "weight: 0")).out
    )
    route_settled(kubeapi, "k", "web")
    assert http.get(f"http://{addr}:{GW_PORT}/", headers={"Host": "web.example"}).status_code == 500
