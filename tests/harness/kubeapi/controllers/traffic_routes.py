"""Routing tables for the traffic proxies (traffic_proxy.py), compiled from the store by traffic.py.

- ``Snapshot``: Services, EndpointSlices, Namespaces and ReferenceGrants read once per sync; resolves a
  Service port to the ready endpoints (Service port -> its name -> the EndpointSlice port of that name, or
  the targetPort -> every address of an endpoint whose ``conditions.ready`` is not false).
- ``GatewayTable``: Gateway API HTTPRoute matching for the listeners sharing one port: the listener with
  the most specific hostname matching the Host header, then among its routes' matches (path Exact /
  PathPrefix / RegularExpression, headers and query params Exact / RegularExpression, method) the one the
  spec ranks first: most specific hostname, Exact path, longest prefix, method, most headers, most query
  params, oldest route, namespace/name, rule and match order. Then a backendRef at random by weight.
- ``NginxTable``: ingress-nginx: the server for the exact host, else the longest matching wildcard host,
  else the default server (rules without host); in it the Exact location, else the longest prefix
  (``Prefix`` by path element, ``ImplementationSpecific`` by string); the canary of that host+path takes
  the request by header (always/never, or ``canary-by-header-value`` / ``-pattern``), else with
  probability weight/total.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass, field

from ..store import Store
from . import base
from .traffic_proxy import Backend, RequestView

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Snapshot:
    def __init__(self, store: Store, grants_api: str | None = None) -> None:
        self.services = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s for s in store.list("v1", "Service")
        }
        self.slices: dict[tuple[str, str], list[dict]] = defaultdict(list)
        if base.kind_available(store, "discovery.k8s.io/v1", "EndpointSlice"):
            for es in store.list("discovery.k8s.io/v1", "EndpointSlice"):
                svc = (es["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL)
                if svc:
                    self.slices[(es["metadata"]["namespace"], svc)].append(es)
        self.namespaces = {
            n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in store.list("v1", "Namespace")
        }
        self.grants = store.list(grants_api, "ReferenceGrant") if grants_api else []

    def backend(self, ns: str, name: str, port: int | str | None, *, missing: int) -> tuple[Backend, str]:
        """The Service's ready endpoints for ``port`` (number or name), or Backend(error=missing) + why."""
        svc = self.services.get((ns, name))
        if svc is None or base.terminating(svc):
            return Backend(ns, name, error=missing), f"Service {ns}/{name} not found"
        if port is None:
            return Backend(ns, name, error=missing), f"a port is required for Service {ns}/{name}"
        sp = next(
            (
                p
                for p in (svc.get("spec") or {}).get("ports") or []
                if p.get("port") == port or (isinstance(port, str) and p.get("name") == port)
            ),
            None,
        )
        if sp is None:
            return Backend(ns, name, error=missing), f"Service {ns}/{name} has no port {port}"
        target = sp.get("targetPort", sp.get("port"))
        endpoints: list[tuple[str, int]] = []
        for es in self.slices.get((ns, name), []):
            ports = es.get("ports")
            if ports:
                num = next(
                    (p.get("port") for p in ports if (p.get("name") or "") == (sp.get("name") or "")), None
                )
            else:
                num = target if isinstance(target, int) else None
            if num is None:
                continue
            for ep in es.get("endpoints") or []:
                if (ep.get("conditions") or {}).get("ready") is not False:
                    endpoints += [(a, int(num)) for a in ep.get("addresses") or []]
        return Backend(ns, name, tuple(sorted(set(endpoints)))), ""

    def granted(
        self, from_group: str, from_kind: str, from_ns: str, to_ns: str, to_kind: str, to_name: str
    ) -> bool:
        """A ReferenceGrant in ``to_ns`` lets ``from_kind`` objects in ``from_ns`` refer to the target."""
        for g in self.grants:
            if g["metadata"]["namespace"] != to_ns:
                continue
            spec = g.get("spec") or {}
            if any(
                f.get("group", "") == from_group
                and f.get("kind") == from_kind
                and f.get("namespace") == from_ns
                for f in spec.get("from") or []
            ) and any(
                (t.get("group") or "") == ""
                and t.get("kind") == to_kind
                and (t.get("name") or to_name) == to_name
                for t in spec.get("to") or []
            ):
                return True
        return False

    def namespace_allowed(self, allowed_routes: dict | None, gateway_ns: str, route_ns: str) -> bool:
        ns = (allowed_routes or {}).get("namespaces") or {}
        frm = ns.get("from", "Same")
        if frm == "All":
            return True
        if frm == "Selector":
            sel = ns.get("selector") or {}
            return not sel or base.matches(self.namespaces.get(route_ns, {}), sel)
        return gateway_ns == route_ns


# ---------------------------------------------------------------------------------------------- hosts
def host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def host_score(patterns: tuple[str, ...], host: str) -> tuple[int, int] | None:
    """How specifically ``patterns`` match ``host``: (2, len) exact, (1, len) wildcard, (0, 0) no
    hostnames."""
    if not patterns:
        return (0, 0)
    scores = [(2 if p == host else 1, len(p)) for p in patterns if host_matches(p, host)]
    return max(scores) if scores else None


def intersect_hostnames(listener: str | None, route: list[str]) -> tuple[str, ...] | None:
    """The route hostnames a listener serves (``()`` = any); None when they share none."""
    if not listener:
        return tuple(route)
    if not route:
        return (listener,)
    out = [
        h if host_matches(listener, h) or h == listener else listener
        for h in route
        if h == listener or host_matches(listener, h) or host_matches(h, listener)
    ]
    return tuple(dict.fromkeys(out)) or None


# ---------------------------------------------------------------------------------------------- Gateway API
def _value_ok(kind: str, want: str, got: str | None) -> bool:
    if got is None:
        return False
    return bool(re.fullmatch(want, got)) if kind == "RegularExpression" else got == want


@dataclass(frozen=True)
class Match:
    hostnames: tuple[str, ...]
    path_type: str
    path: str
    method: str | None
    headers: tuple[tuple[str, str, str], ...]  # (type, name, value)
    query: tuple[tuple[str, str, str], ...]
    backends: tuple[tuple[Backend, int], ...]  # (backend, weight)
    order: tuple = ()

    def matches(self, req: RequestView) -> bool:
        if self.method and req.method != self.method:
            return False
        if self.path_type == "Exact":
            ok = req.path == self.path
        elif self.path_type == "RegularExpression":
            ok = bool(re.fullmatch(self.path, req.path))
        else:
            prefix = self.path.rstrip("/")
            ok = not prefix or req.path == prefix or req.path.startswith(prefix + "/")
        return (
            ok
            and all(_value_ok(t, v, req.headers.get(n)) for t, n, v in self.headers)
            and all(_value_ok(t, v, req.query.get(n)) for t, n, v in self.query)
        )

    def rank(self, score: tuple[int, int]) -> tuple:
        kind = {"Exact": 0, "PathPrefix": 1}.get(self.path_type, 2)
        return (
            -score[0],
            -score[1],
            kind,
            -len(self.path) if kind == 1 else 0,
            self.method is None,
            -len(self.headers),
            -len(self.query),
            self.order,
        )


def pick_weighted(
    backends: tuple[tuple[Backend, int], ...], rng: random.Random
) -> tuple[int, Backend | None]:
    total = sum(w for _, w in backends if w > 0)
    if total <= 0:
        return 500, None
    r = rng.randrange(total)
    for b, w in backends:
        if w > 0:
            if r < w:
                return 0, b
            r -= w
    return 500, None  # pragma: no cover - unreachable


@dataclass(frozen=True)
class GatewayTable:
    """The listeners of one Gateway port: (listener hostname or None, its compiled matches)."""

    listeners: tuple[tuple[str | None, tuple[Match, ...]], ...] = ()

    def select(self, req: RequestView, rng: random.Random) -> tuple[int, Backend | None]:
        scored = [(host_score((h,) if h else (), req.host), ms) for h, ms in self.listeners]
        scored = [(s, ms) for s, ms in scored if s is not None]
        if not scored:
            return 404, None
        matches = max(scored, key=lambda x: x[0])[1]
        best: tuple | None = None
        for m in matches:
            s = host_score(m.hostnames, req.host)
            if s is not None and m.matches(req):
                r = m.rank(s)
                if best is None or r < best[0]:
                    best = (r, m)
        if best is None:
            return 404, None
        return pick_weighted(best[1].backends, rng)


def compile_route(
    route: dict, hostnames: tuple[str, ...], rule_backends: list[tuple[tuple[Backend, int], ...]]
) -> list[Match]:
    m = route["metadata"]
    out = []
    for ri, rule in enumerate((route.get("spec") or {}).get("rules") or [{}]):
        for mi, match in enumerate(rule.get("matches") or [{}]):
            path = match.get("path") or {}
            out.append(
                Match(
                    hostnames,
                    path.get("type", "PathPrefix"),
                    path.get("value", "/"),
                    match.get("method"),
                    tuple(
                        (h.get("type", "Exact"), h["name"], h.get("value", ""))
                        for h in match.get("headers") or []
                    ),
                    tuple(
                        (q.get("type", "Exact"), q["name"], q.get("value", ""))
                        for q in match.get("queryParams") or []
                    ),
                    rule_backends[ri],
                    (m.get("creationTimestamp", ""), m["namespace"], m["name"], ri, mi),
                )
            )
    return out


# ---------------------------------------------------------------------------------------------- ingress-nginx
CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
CANARY_WEIGHT_TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"
CANARY_HEADER = "nginx.ingress.kubernetes.io/canary-by-header"
CANARY_HEADER_VALUE = "nginx.ingress.kubernetes.io/canary-by-header-value"
CANARY_HEADER_PATTERN = "nginx.ingress.kubernetes.io/canary-by-header-pattern"


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Canary:
    backend: Backend
    weight: int = 0
    total: int = 100
    header: str = ""
    header_value: str = ""
    header_pattern: str = ""

    def wants(self, req: RequestView, rng: random.Random) -> bool:
        got = req.headers.get(self.header) if self.header else None
        if got is not None:
            if self.header_value:
                if got == self.header_value:
                    return True
            elif self.header_pattern:
                if re.search(self.header_pattern, got):
                    return True
            elif got == "always":
                return True
            elif got == "never":
                return False
        return self.weight > 0 and rng.randint(1, max(self.total, 1)) <= self.weight


@dataclass(frozen=True)
class Location:
    path: str
    path_type: str
    main: Backend
    canary: Canary | None = None

    def matches(self, path: str) -> bool:
        if self.path_type == "Exact":
            return path == self.path
        if self.path_type == "Prefix":
            prefix = self.path.rstrip("/")
            return not prefix or path == prefix or path.startswith(prefix + "/")
        return path.startswith(self.path)


@dataclass(frozen=True)
class NginxTable:
    servers: dict[str, tuple[Location, ...]] = field(default_factory=dict)  # host ("" = default server)

    def select(self, req: RequestView, rng: random.Random) -> tuple[int, Backend | None]:
        locations = self.servers.get(req.host)
        if locations is None:
            wild = [h for h in self.servers if h.startswith("*.") and host_matches(h, req.host)]
            locations = self.servers[max(wild, key=len)] if wild else self.servers.get("")
        cands = [loc for loc in locations or () if loc.matches(req.path)]
        if not cands:
            return 404, None
        loc = min(cands, key=lambda x: (x.path_type != "Exact", -len(x.path)))
        if loc.canary is not None and loc.canary.wants(req, rng):
            return 0, loc.canary.backend
        return 0, loc.main


def nginx_table(ingresses: list[dict], snap: Snapshot) -> NginxTable:
    """Merge the class's Ingresses by host+path (oldest first), with at most one canary per location."""
    mains: dict[tuple[str, str], tuple[str, Backend]] = {}
    canaries: dict[tuple[str, str], Canary] = {}
    for ing in sorted(
        ingresses,
        key=lambda i: (
            i["metadata"].get("creationTimestamp", ""),
            i["metadata"]["namespace"],
            i["metadata"]["name"],
        ),
    ):
        ns, ann = ing["metadata"]["namespace"], base.annotations(ing)
        for rule in (ing.get("spec") or {}).get("rules") or []:
            for p in (rule.get("http") or {}).get("paths") or []:
                key = (rule.get("host") or "", p.get("path") or "/")
                svc = (p.get("backend") or {}).get("service") or {}
                port = (svc.get("port") or {}).get("number") or (svc.get("port") or {}).get("name")
                backend, _ = snap.backend(ns, svc.get("name", ""), port, missing=503)
                if ann.get(CANARY) == "true":
                    canaries.setdefault(
                        key,
                        Canary(
                            backend,
                            _int(ann.get(CANARY_WEIGHT), 0),
                            _int(ann.get(CANARY_WEIGHT_TOTAL), 100),
                            ann.get(CANARY_HEADER, ""),
                            ann.get(CANARY_HEADER_VALUE, ""),
                            ann.get(CANARY_HEADER_PATTERN, ""),
                        ),
                    )
                else:
                    mains.setdefault(key, (p.get("pathType") or "ImplementationSpecific", backend))
    servers: dict[str, list[Location]] = defaultdict(list)
    for (host, path), (ptype, backend) in mains.items():
        servers[host].append(Location(path, ptype, backend, canaries.get((host, path))))
    return NginxTable({h: tuple(locs) for h, locs in servers.items()})
