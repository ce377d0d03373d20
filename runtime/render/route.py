"""spec -> the graph's entry point in the cluster's own traffic layer (serving.route), with canary weights.

    render_route(spec, canary_percent=None)
        Gateway API: one HTTPRoute whose backendRefs are the stable frontend Service (and, with a canary,
        the candidate's) weighted 100-p / p.
        ingress-nginx: the stable Ingress, plus (with a canary) a canary Ingress for the candidate's
        frontend with ``canary-weight: p``.
    route_objects(spec) -> the (apiVersion, kind, name) of every route object a deployment may own.

``canary_percent=None`` means no candidate graph at all (no backend for it); 0 keeps the candidate's
backend listed with weight 0 (staged, no real traffic yet, and the step a withdrawal goes through).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.domain import naming
from runtime.render import common, templates

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

GATEWAY_API = "gateway.networking.k8s.io/v1"
INGRESS_API = "networking.k8s.io/v1"
REQUEST_TIMEOUT = "3600s"
CANARY_ANNOTATION = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT_ANNOTATION = "nginx.ingress.kubernetes.io/canary-weight"
_NGINX_STREAMING = {  # SSE through nginx: no buffering, long reads
    "nginx.ingress.kubernetes.io/proxy-buffering": "off",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
    "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
}


def route_name(spec: DeploymentSpec, *, canary: bool = False) -> str:
    return naming.join_name(spec.name, "canary") if canary else spec.name


def _fill(relpath: str, values: dict[str, Any]) -> dict[str, Any]:
    (doc,) = [templates.fill(d, values, f"infra/{relpath}") for d in templates.load_all(relpath)]
    return doc


def _check_percent(canary_percent: int | None) -> None:
    if canary_percent is not None and not 0 <= canary_percent <= 100:
        raise ValueError(f"canary_percent must be within 0..100, got {canary_percent}")


def render_route(spec: DeploymentSpec, canary_percent: int | None = None) -> list[dict[str, Any]]:
    """The route objects for ``spec`` with ``canary_percent`` of the requests going to the candidate."""
    route = spec.serving.route
    if route is None:
        return []
    _check_percent(canary_percent)
    namespace = common.namespace_of(spec)
    stable_svc = naming.frontend_service_name(naming.dgd_name(spec))
    canary_svc = naming.frontend_service_name(naming.dgd_name(spec, canary=True))
    labels = common.labels(spec)
    if route.gateway is not None:
        gw = route.gateway
        parent = {
            k: v
            for k, v in (
                ("group", "gateway.networking.k8s.io"),
                ("kind", "Gateway"),
                ("name", gw.name),
                ("namespace", gw.namespace),
                ("sectionName", gw.section_name),
            )
            if v is not None
        }
        backends = [{"name": stable_svc, "port": common.FRONTEND_PORT, "weight": 100 - (canary_percent or 0)}]
        if canary_percent is not None:
            backends.append({"name": canary_svc, "port": common.FRONTEND_PORT, "weight": canary_percent})
        doc = _fill(
            "templates/route/httproute.yaml",
            {
                "name": route_name(spec),
                "namespace": namespace,
                "parentRefs": [parent],
                "backendRefs": backends,
                "requestTimeout": REQUEST_TIMEOUT,
            },
        )
        if gw.hostnames:
            doc["spec"]["hostnames"] = list(gw.hostnames)
        return [common.with_labels(doc, labels)]
    ing = route.ingress
    assert ing is not None  # RouteSpec validation: exactly one of gateway / ingress

    def ingress(name: str, service: str, extra: dict[str, str]) -> dict[str, Any]:
        doc = _fill(
            "templates/route/ingress.yaml",
            {
                "name": name,
                "namespace": namespace,
                "className": ing.class_name,
                "annotations": {**_NGINX_STREAMING, **extra},
                "service": service,
                "port": common.FRONTEND_PORT,
            },
        )
        if ing.host:
            doc["spec"]["rules"][0]["host"] = ing.host
        return common.with_labels(doc, labels)

    out = [ingress(route_name(spec), stable_svc, {})]
    if canary_percent is not None:
        out.append(
            ingress(
                route_name(spec, canary=True),
                canary_svc,
                {CANARY_ANNOTATION: "true", CANARY_WEIGHT_ANNOTATION: str(canary_percent)},
            )
        )
    return out


def route_objects(spec: DeploymentSpec) -> list[tuple[str, str, str]]:
    """Every route object this deployment can own: what a withdrawal or a teardown deletes."""
    route = spec.serving.route
    if route is None:
        return []
    if route.gateway is not None:
        return [(GATEWAY_API, "HTTPRoute", route_name(spec))]
    return [
        (INGRESS_API, "Ingress", route_name(spec)),
        (INGRESS_API, "Ingress", route_name(spec, canary=True)),
    ]


def canary_percent_of(objs: list[dict[str, Any]], spec: DeploymentSpec) -> int | None:
    """The candidate's share as the live route objects say (None: no candidate backend)."""
    canary_svc = naming.frontend_service_name(naming.dgd_name(spec, canary=True))
    for obj in objs:
        if obj.get("kind") == "HTTPRoute":
            for rule in (obj.get("spec") or {}).get("rules") or []:
                for ref in rule.get("backendRefs") or []:
                    if ref.get("name") == canary_svc:
                        return int(ref.get("weight", 1))
        elif obj.get("kind") == "Ingress":
            ann = (obj.get("metadata") or {}).get("annotations") or {}
            if ann.get(CANARY_ANNOTATION) == "true":
                return int(ann.get(CANARY_WEIGHT_ANNOTATION, "0"))
    return None
