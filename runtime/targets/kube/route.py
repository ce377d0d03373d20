"""The graph's route in the cluster's traffic layer (serving.route): apply it with weights, wait until the
data plane took it, find its address, check what it needs is there.

Gateway API: dynadeploy owns one HTTPRoute attached to the user's Gateway. A weight change counts as taken
when the route's status has our parent Accepted and ResolvedRefs for the route's current generation (that
is what a Gateway controller writes once it programmed the change). ingress-nginx: dynadeploy owns the
stable Ingress and, during a canary, a canary Ingress; ingress-nginx writes no per-change status, so a
change counts as taken once the Ingress has the controller's address, plus ``SETTLE_S`` for it to reload.

Every function is idempotent: it applies the wanted state (server-side apply, force) and waits for it.
"""

from __future__ import annotations

import time
from typing import Any

from runtime import settings
from runtime.errors import PermanentError, RouteRejected, TransientError
from runtime.gateways.kube import Kube, WaitTimeout, covered
from runtime.render import route as render_route
from runtime.targets.kube import preflight as pf

# ingress-nginx reloads its config after an Ingress changed: a second is ample on a quiet controller.
SETTLE_S = settings.route_settle_s()
GATEWAY_KIND, ROUTE_KIND = "Gateway", "HTTPRoute"
# Condition reasons a Gateway gives for the route's current generation that waiting will not change.
_FINAL = {
    "NotAllowedByListeners",
    "NoMatchingListenerHostname",
    "NoMatchingParent",
    "UnsupportedValue",
    "RefNotPermitted",
    "InvalidKind",
    "BackendNotFound",
    "UnsupportedProtocol",
}


def _timeout() -> float:
    return settings.kube_route_timeout_s()


def preflight_problems(kube: Kube, spec) -> list[pf.Problem]:
    """What the route needs and the cluster lacks (read-only)."""
    route = spec.serving.route
    if route is None:
        return []
    ns = spec.namespace()
    if route.gateway is not None:
        gw = route.gateway
        if not kube.served(render_route.GATEWAY_API, ROUTE_KIND):
            return [
                pf.Problem(
                    "the cluster serves no Gateway API (HTTPRoute in gateway.networking.k8s.io/v1)",
                    "install a Gateway API implementation (its CRDs and controller), or use "
                    "serving.route.ingress, or remove serving.route",
                )
            ]
        gw_ns = gw.namespace or ns
        live = kube.get(render_route.GATEWAY_API, GATEWAY_KIND, gw.name, gw_ns)
        if live is None:
            return [
                pf.Problem(
                    f"Gateway {gw_ns}/{gw.name} does not exist",
                    "set serving.route.gateway.name (and .namespace) to an existing Gateway: "
                    "kubectl get gateways -A",
                )
            ]
        listeners = [li.get("name") for li in (live.get("spec") or {}).get("listeners") or []]
        if gw.section_name and gw.section_name not in listeners:
            return [
                pf.Problem(
                    f"Gateway {gw_ns}/{gw.name} has no listener {gw.section_name!r} "
                    f"(it has {', '.join(map(str, listeners)) or 'none'})",
                    "set serving.route.gateway.section_name to one of those, or remove it",
                )
            ]
        return []
    ing = route.ingress
    if kube.get(render_route.INGRESS_API, "IngressClass", ing.class_name) is None:
        classes = [c["metadata"]["name"] for c in kube.list(render_route.INGRESS_API, "IngressClass")]
        return [
            pf.Problem(
                f"IngressClass {ing.class_name!r} does not exist (the cluster has: "
                f"{', '.join(classes) or 'none'})",
                "install ingress-nginx, or set serving.route.ingress.class_name to its class",
            )
        ]
    return []


def ensure(kube: Kube, spec, canary_percent: int | None = None) -> dict:
    """The route with ``canary_percent`` of the requests for the candidate (None: stable only), applied
    and taken by the traffic layer. Returns {"objects": [...], "canary_percent": ...}."""
    objs = render_route.render_route(spec, canary_percent)
    if not objs:
        return {"objects": [], "canary_percent": None}
    names = set()
    for obj in objs:
        live = kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], spec.namespace())
        if live is None or not covered(live, obj):  # an unchanged route is not written again
            kube.apply(obj, force=True)
        names.add((obj["kind"], obj["metadata"]["name"]))
    for api, kind, name in render_route.route_objects(spec):  # a canary Ingress no longer wanted
        if (kind, name) not in names:
            kube.delete(api, kind, name, spec.namespace())
    _wait_taken(kube, spec, objs)
    return {"objects": sorted(f"{k}/{n}" for k, n in names), "canary_percent": canary_percent}


def remove(kube: Kube, spec) -> int:
    """Delete every route object of the deployment; the number deleted."""
    return sum(
        bool(kube.delete(api, kind, name, spec.namespace()))
        for api, kind, name in render_route.route_objects(spec)
    )


def _wait_taken(kube: Kube, spec, objs: list[dict]) -> None:
    ns = spec.namespace()
    last: list[str] = []
    for obj in objs:
        kind, name = obj["kind"], obj["metadata"]["name"]

        def taken(found: list[dict], what: str = f"{kind} {ns}/{name}") -> Any:
            nonlocal last
            last = route_problems(found[0], spec) if found else [f"{what} is gone"]
            final = [p for p in last if any(f": {reason}:" in f"{p}:" for reason in _FINAL)]
            if final:
                raise RouteRejected(f"{what} was refused: {'; '.join(final)}", hint=_fix(final, spec))
            return True if not last else None

        try:
            kube.wait(
                obj["apiVersion"],
                kind,
                taken,
                name=name,
                namespace=ns,
                timeout_s=_timeout(),
                tick_s=0.5,
                what=f"{kind} {ns}/{name} to be taken by the traffic layer",
            )
        except WaitTimeout:
            rejected = [p for p in last if "not accepted" in p or "unresolved" in p]
            err = PermanentError if rejected else TransientError
            raise err(
                f"{kind} {ns}/{name} is not in effect after {_timeout():.0f}s: {'; '.join(last)}",
                hint=f"kubectl describe {kind.lower()} {name} -n {ns}",
            ) from None
    if spec.serving.route.ingress is not None:
        time.sleep(SETTLE_S)


def _fix(problems: list[str], spec) -> str:
    gw = spec.serving.route.gateway
    text = " ".join(problems)
    if "NotAllowedByListeners" in text:
        return (
            f"let the Gateway's listener admit routes from namespace {spec.namespace()} "
            "(spec.listeners[].allowedRoutes.namespaces.from: All, or a Selector matching it)"
        )
    if "NoMatchingListenerHostname" in text:
        return "set serving.route.gateway.hostnames to names the Gateway's listeners accept"
    if "NoMatchingParent" in text:
        return f"check serving.route.gateway.section_name against Gateway {gw.name}'s listener names"
    return f"kubectl describe httproute {spec.name} -n {spec.namespace()}"


def route_problems(live: dict, spec) -> list[str]:
    """Why a live route object is not (yet) in effect; [] when it is."""
    if live.get("kind") == "Ingress":
        ingress = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return [] if ingress else ["the ingress controller has not given the Ingress an address yet"]
    generation = (live.get("metadata") or {}).get("generation")
    gw = spec.serving.route.gateway
    parents = [
        p
        for p in (live.get("status") or {}).get("parents") or []
        if (p.get("parentRef") or {}).get("name") == gw.name
        and (p.get("parentRef") or {}).get("namespace", live["metadata"].get("namespace"))
        == (gw.namespace or spec.namespace())
    ]
    if not parents:
        return [f"Gateway {gw.name} has not reported on the route yet"]
    out = []
    for parent in parents:
        conds = {c.get("type"): c for c in parent.get("conditions") or []}
        for kind, word in (("Accepted", "not accepted"), ("ResolvedRefs", "unresolved")):
            c = conds.get(kind)
            if c is None or (generation is not None and c.get("observedGeneration", generation) < generation):
                out.append(f"{kind} not reported for generation {generation} yet")
            elif c.get("status") != "True":
                out.append(
                    f"{word} by Gateway {gw.name}: {c.get('reason')}: {c.get('message', '')}".rstrip(": ")
                )
    return out


def entry(kube: Kube, spec) -> tuple[str, str | None] | None:
    """(base URL, Host header) where clients enter through the route, or None without an address yet."""
    route = spec.serving.route
    ns = spec.namespace()
    if route.gateway is not None:
        gw = route.gateway
        live = kube.get(render_route.GATEWAY_API, GATEWAY_KIND, gw.name, gw.namespace or ns) or {}
        addresses = [
            a.get("value") for a in (live.get("status") or {}).get("addresses") or [] if a.get("value")
        ]
        listeners = [
            li
            for li in (live.get("spec") or {}).get("listeners") or []
            if li.get("protocol") == "HTTP" and (gw.section_name in (None, li.get("name")))
        ]
        if not addresses or not listeners:
            return None
        host = next((h for h in gw.hostnames if not h.startswith("*.")), None)
        if host is None and gw.hostnames:
            host = "dynadeploy." + gw.hostnames[0].removeprefix("*.")
        return f"http://{_host(addresses[0])}:{listeners[0].get('port', 80)}", host
    ing = route.ingress
    live = kube.get(render_route.INGRESS_API, "Ingress", render_route.route_name(spec), ns) or {}
    lb = ((live.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    addr = next((i.get("ip") or i.get("hostname") for i in lb if i.get("ip") or i.get("hostname")), None)
    return (f"http://{_host(addr)}:{ing.port}", ing.host) if addr else None


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
