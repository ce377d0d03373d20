"""serving.route rendered (runtime/render/route.py) and judged (runtime/targets/kube/route.route_problems): the
HTTPRoute / Ingresses with canary weights, what a withdrawal deletes, and when a route counts as taken."""

from __future__ import annotations

import pytest

from runtime.errors import SpecError
from runtime.render import route as rr
from runtime.spec import API_VERSION, parse_spec
from runtime.targets.kube import route as kube_route


def spec(route: dict | None, kind: str = "kube"):
    target = {"kind": kind, "namespace": "llm"} if kind == "kube" else {"kind": kind}
    serving = {"route": route} if route is not None else {}
    return parse_spec({"apiVersion": API_VERSION, "name": "demo", "target": target, "serving": serving})


GW = {
    "gateway": {
        "name": "edge",
        "namespace": "infra",
        "section_name": "http",
        "hostnames": ["llm.example.com"],
    }
}


def backends(objs: list[dict]) -> list[tuple[str, int]]:
    (route,) = objs
    return [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]


def test_httproute_stable_only_then_weighted_with_the_candidate():
    s = spec(GW)
    (route,) = rr.render_route(s)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    assert route["metadata"]["name"] == "demo" and route["metadata"]["namespace"] == "llm"
    assert route["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dynadeploy"
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "edge",
            "namespace": "infra",
            "sectionName": "http",
        }
    ]
    assert route["spec"]["hostnames"] == ["llm.example.com"]
    assert route["spec"]["rules"][0]["timeouts"] == {"request": rr.REQUEST_TIMEOUT}
    assert backends([route]) == [("demo-frontend", 100)]
    assert backends(rr.render_route(s, 0)) == [("demo-frontend", 100), ("demo-canary-frontend", 0)]
    assert backends(rr.render_route(s, 25)) == [("demo-frontend", 75), ("demo-canary-frontend", 25)]
    assert rr.canary_percent_of(rr.render_route(s, 25), s) == 25
    assert rr.canary_percent_of(rr.render_route(s), s) is None
    assert rr.route_objects(s) == [("gateway.networking.k8s.io/v1", "HTTPRoute", "demo")]
    with pytest.raises(ValueError, match=r"0..100"):
        rr.render_route(s, 101)


def test_gateway_defaults_leave_optional_fields_out():
    (route,) = rr.render_route(spec({"gateway": {"name": "edge"}}))
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}
    ]
    assert "hostnames" not in route["spec"]


def test_ingress_nginx_stable_and_canary_ingress():
    s = spec({"ingress": {"host": "llm.example.com"}})
    (stable,) = rr.render_route(s)
    assert stable["kind"] == "Ingress" and stable["spec"]["ingressClassName"] == "nginx"
    assert stable["spec"]["rules"][0]["host"] == "llm.example.com"
    path = stable["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"]["service"] == {"name": "demo-frontend", "port": {"number": 8000}}
    ann = stable["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # SSE streams through
    assert rr.CANARY_ANNOTATION not in ann
    main, canary = rr.render_route(s, 30)
    assert main == stable
    assert canary["metadata"]["name"] == "demo-canary"
    assert canary["metadata"]["annotations"][rr.CANARY_ANNOTATION] == "true"
    assert canary["metadata"]["annotations"][rr.CANARY_WEIGHT_ANNOTATION] == "30"
    assert (
        canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "demo-canary-frontend"
    )
    assert rr.canary_percent_of([main, canary], s) == 30
    assert [o[2] for o in rr.route_objects(s)] == ["demo", "demo-canary"]


def test_no_route_renders_nothing():
    s = spec(None)
    assert rr.render_route(s) == [] and rr.route_objects(s) == []


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ({}, "serving.route"),
        ({"gateway": {"name": "edge"}, "ingress": {}}, "serving.route"),
        ({"gateway": {"name": "edge", "hostnames": ["Not A Host"]}}, "serving.route.gateway.hostnames[0]"),
        ({"ingress": {"port": 0}}, "serving.route.ingress.port"),
    ],
)
def test_bad_routes_name_the_field(route, path):
    with pytest.raises(SpecError) as err:
        spec(route)
    assert path in [i.path for i in err.value.issues]


def test_a_route_needs_a_kubernetes_target():
    with pytest.raises(SpecError) as err:
        spec({"gateway": {"name": "edge"}}, kind="local")
    (issue,) = err.value.issues
    assert issue.path == "serving.route" and "kube, eks, gke or aks" in issue.fix


def status_route(
    conditions: dict[str, str], generation: int = 2, observed: int = 2, ns: str = "infra"
) -> dict:
    return {
        "kind": "HTTPRoute",
        "metadata": {"name": "demo", "namespace": "llm", "generation": generation},
        "status": {
            "parents": [
                {
                    "parentRef": {"name": "edge", "namespace": ns},
                    "controllerName": "x",
                    "conditions": [
                        {
                            "type": t,
                            "status": v,
                            "reason": f"R{t}",
                            "message": "m",
                            "observedGeneration": observed,
                        }
                        for t, v in conditions.items()
                    ],
                }
            ]
        },
    }


def test_route_taken_only_when_accepted_and_resolved_for_its_generation():
    s = spec(GW)
    assert kube_route.route_problems(status_route({"Accepted": "True", "ResolvedRefs": "True"}), s) == []
    stale = kube_route.route_problems(
        status_route({"Accepted": "True", "ResolvedRefs": "True"}, observed=1), s
    )
    assert len(stale) == 2 and all("generation 2" in p for p in stale)
    (rejected,) = kube_route.route_problems(status_route({"Accepted": "False", "ResolvedRefs": "True"}), s)
    assert rejected.startswith("not accepted by Gateway edge: RAccepted")
    (unresolved,) = kube_route.route_problems(status_route({"Accepted": "True", "ResolvedRefs": "False"}), s)
    assert unresolved.startswith("unresolved")
    other_gateway = status_route({"Accepted": "True", "ResolvedRefs": "True"}, ns="elsewhere")
    assert kube_route.route_problems(other_gateway, s) == ["Gateway edge has not reported on the route yet"]


def test_ingress_taken_once_it_has_an_address():
    s = spec({"ingress": {}})
    assert kube_route.route_problems({"kind": "Ingress", "status": {}}, s)
    assert (
        kube_route.route_problems(
            {"kind": "Ingress", "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}, s
        )
        == []
    )


def test_an_unset_route_leaves_the_spec_hash_as_before_the_field_existed():
    """Specs written before serving.route keep their hash (else every deployment would roll out again)."""
    from runtime.domain import naming

    plain = spec(None)
    assert "route" not in plain.canonical_dict()["serving"]
    assert naming.spec_hash(plain) != naming.spec_hash(spec({"gateway": {"name": "edge"}}))
    assert (
        spec({"gateway": {"name": "edge"}}).canonical_dict()["serving"]["route"]["gateway"]["name"] == "edge"
    )
