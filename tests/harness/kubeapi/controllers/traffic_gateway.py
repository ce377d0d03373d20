"""The Gateway API half of the traffic controller (traffic.py): status and proxies per sync.

``GatewayApi.sync`` reads GatewayClasses, Gateways and HTTPRoutes, starts/stops the Gateways' proxies,
hands every proxy its new ``GatewayTable`` and then writes the statuses, so a status that reports a
route's generation means the proxy already routes by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..store import Store
from . import base
from .base import set_condition
from .traffic_proxy import Backend, Listener, ProxyLoop
from .traffic_routes import GatewayTable, Match, Snapshot, compile_route, intersect_hostnames

GROUP = "gateway.networking.k8s.io"
API = f"{GROUP}/v1"
GRANT_API = f"{GROUP}/v1beta1"
GATEWAY_CONTROLLER = "kubeapi-sim.io/gateway-controller"
HTTPROUTE_KIND = {"group": GROUP, "kind": "HTTPRoute"}


@dataclass
class _Lst:
    name: str
    port: int
    protocol: str
    hostname: str | None
    allowed: dict
    kinds: list[dict] = field(default_factory=list)
    bad_kinds: bool = False
    problem: tuple[str, str] | None = None  # (reason, message): not served
    routes: dict[tuple, list[Match]] = field(default_factory=dict)


@dataclass
class _Served:
    address: str
    servers: dict[int, Listener] = field(default_factory=dict)


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _listeners(gw: dict) -> list[_Lst]:
    out = []
    for raw in (gw.get("spec") or {}).get("listeners") or []:
        lst = _Lst(
            raw.get("name", ""),
            _int(raw.get("port"), 0),
            raw.get("protocol", "HTTP"),
            raw.get("hostname"),
            raw.get("allowedRoutes") or {},
        )
        kinds = lst.allowed.get("kinds")
        if kinds:
            lst.kinds = [
                {"group": GROUP, "kind": "HTTPRoute"}
                for k in kinds
                if (k.get("group") or GROUP) == GROUP and k.get("kind") == "HTTPRoute"
            ][:1]
            lst.bad_kinds = any(
                (k.get("group") or GROUP) != GROUP or k.get("kind") != "HTTPRoute" for k in kinds
            )
        else:
            lst.kinds = [dict(HTTPROUTE_KIND)]
        if lst.protocol != "HTTP":
            lst.problem = ("UnsupportedProtocol", f"protocol {lst.protocol} is not simulated (HTTP only)")
            lst.kinds = []
        elif not 0 < lst.port < 65536:
            lst.problem = ("UnsupportedValue", f"invalid port {lst.port}")
        out.append(lst)
    return out


class GatewayApi:
    def __init__(self, proxy: ProxyLoop, allocate: Callable[[list[int]], str | None], manager: str) -> None:
        self.proxy = proxy
        self.allocate = allocate
        self.manager = manager
        self.served: dict[tuple[str, str], _Served] = {}

    def address(self, namespace: str, name: str) -> str | None:
        served = self.served.get((namespace, name))
        return served.address if served else None

    def stop(self) -> None:
        for served in self.served.values():
            for lis in served.servers.values():
                self.proxy.close(lis)
        self.served.clear()

    # ------------------------------------------------------------------ one sync
    def sync(self, store: Store, snap: Snapshot) -> None:
        classes = {
            gc["metadata"]["name"]: gc
            for gc in store.list(API, "GatewayClass")
            if (gc.get("spec") or {}).get("controllerName") == GATEWAY_CONTROLLER
        }
        gateways = {
            (gw["metadata"]["namespace"], gw["metadata"]["name"]): (gw, _listeners(gw))
            for gw in store.list(API, "Gateway")
            if (gw.get("spec") or {}).get("gatewayClassName") in classes and not base.terminating(gw)
        }
        for key in [k for k in self.served if k not in gateways]:
            for lis in self.served[key].servers.values():
                self.proxy.close(lis)
            del self.served[key]
        for key, (_, lsts) in gateways.items():
            self._serve(key, lsts)
        routes = []
        for route in store.list(API, "HTTPRoute"):
            if base.terminating(route):
                continue
            backends, problems = self._backends(route, snap)
            entries = []
            for pref in (route.get("spec") or {}).get("parentRefs") or []:
                if (pref.get("group") or GROUP) != GROUP or (pref.get("kind") or "Gateway") != "Gateway":
                    continue
                gw = gateways.get((pref.get("namespace") or route["metadata"]["namespace"], pref.get("name")))
                if gw is None:
                    continue
                ok, reason, message, hosted = self._attach(route, pref, gw[0], gw[1], snap)
                rkey = (route["metadata"]["namespace"], route["metadata"]["name"])
                for lst, hosts in hosted:
                    lst.routes.setdefault(rkey, compile_route(route, hosts, backends))
                entries.append((pref, ok, reason, message))
            routes.append((route, entries, problems))
        for key, (_, lsts) in gateways.items():  # data plane first, then status
            for port, lis in self.served.get(key, _Served("")).servers.items():
                lis.table = GatewayTable(
                    tuple(
                        (lst.hostname, tuple(m for ms in lst.routes.values() for m in ms))
                        for lst in lsts
                        if lst.port == port and lst.problem is None
                    )
                )
        for gc in classes.values():
            gen = gc["metadata"].get("generation", 1)
            conds = set_condition(
                (gc.get("status") or {}).get("conditions"),
                "Accepted",
                "True",
                "Accepted",
                "Handled by the kubeapi simulator's gateway controller",
                observedGeneration=gen,
            )
            base.write_status(store, gc, {**(gc.get("status") or {}), "conditions": conds}, self.manager)
        for key, (gw, lsts) in gateways.items():
            self._gateway_status(store, gw, lsts, self.served.get(key))
        for route, entries, problems in routes:
            self._route_status(store, route, entries, problems)

    def _serve(self, key: tuple[str, str], lsts: list[_Lst]) -> None:
        ports = sorted({lst.port for lst in lsts if lst.problem is None})
        served = self.served.get(key)
        if served is None:
            if not ports:
                return
            address = self.allocate(ports)
            if address is None:
                for lst in lsts:
                    lst.problem = lst.problem or (
                        "PortUnavailable",
                        "no free loopback address for these ports",
                    )
                return
            served = self.served[key] = _Served(address)
        for port in [p for p in served.servers if p not in ports]:
            self.proxy.close(served.servers.pop(port))
        for port in ports:
            if port not in served.servers:
                try:
                    served.servers[port] = self.proxy.listen(
                        served.address, port, GatewayTable(), connect_error=503
                    )
                except OSError as exc:
                    for lst in lsts:
                        if lst.port == port:
                            lst.problem = (
                                "PortUnavailable",
                                f"{served.address}:{port}: {exc.strerror or exc}",
                            )

    @staticmethod
    def _backends(
        route: dict, snap: Snapshot
    ) -> tuple[list[tuple[tuple[Backend, int], ...]], list[tuple[str, str]]]:
        ns = route["metadata"]["namespace"]
        rules, problems = [], []
        for ri, rule in enumerate((route.get("spec") or {}).get("rules") or [{}]):
            refs = []
            for bi, ref in enumerate(rule.get("backendRefs") or []):
                name, to_ns = ref.get("name", ""), ref.get("namespace") or ns
                group, kind = ref.get("group") or "", ref.get("kind") or "Service"
                if group != "" or kind != "Service":
                    backend, reason, why = (
                        Backend(to_ns, name, error=500),
                        "InvalidKind",
                        f"{kind}.{group} is not supported",
                    )
                elif to_ns != ns and not snap.granted(GROUP, "HTTPRoute", ns, to_ns, "Service", name):
                    backend, reason = Backend(to_ns, name, error=500), "RefNotPermitted"
                    why = (
                        f"no ReferenceGrant in namespace {to_ns} allows HTTPRoutes from {ns} "
                        f"to Service {name}"
                    )
                else:
                    (backend, why), reason = (
                        snap.backend(to_ns, name, ref.get("port"), missing=500),
                        "BackendNotFound",
                    )
                if why:
                    problems.append((reason, f"spec.rules[{ri}].backendRefs[{bi}]: {why}"))
                refs.append((backend, _int(ref.get("weight", 1), 1)))
            rules.append(tuple(refs))
        return rules, problems

    @staticmethod
    def _attach(
        route: dict, pref: dict, gw: dict, lsts: list[_Lst], snap: Snapshot
    ) -> tuple[bool, str, str, list[tuple[_Lst, tuple[str, ...]]]]:
        section, port = pref.get("sectionName"), pref.get("port")
        gname = f"{gw['metadata']['namespace']}/{gw['metadata']['name']}"
        cands = [lst for lst in lsts if section in (None, lst.name) and port in (None, lst.port)]
        if not cands:
            what = " ".join(filter(None, [section and f"named {section}", port and f"on port {port}"]))
            return False, "NoMatchingParent", f"Gateway {gname} has no listener {what}", []
        allowed = [
            lst
            for lst in cands
            if lst.problem is None
            and lst.kinds
            and snap.namespace_allowed(
                lst.allowed, gw["metadata"]["namespace"], route["metadata"]["namespace"]
            )
        ]
        if not allowed:
            return (
                False,
                "NotAllowedByListeners",
                (
                    f"no listener of Gateway {gname} allows HTTPRoutes from "
                    f"namespace {route['metadata']['namespace']}"
                ),
                [],
            )
        hostnames = list((route.get("spec") or {}).get("hostnames") or [])
        hosted = [
            (lst, h) for lst in allowed if (h := intersect_hostnames(lst.hostname, hostnames)) is not None
        ]
        if not hosted:
            return (
                False,
                "NoMatchingListenerHostname",
                f"no listener of Gateway {gname} matches the hostnames",
                [],
            )
        return True, "Accepted", "Route is accepted", hosted

    def _gateway_status(self, store: Store, gw: dict, lsts: list[_Lst], served: _Served | None) -> None:
        gen = gw["metadata"].get("generation", 1)
        old = gw.get("status") or {}
        valid = [lst for lst in lsts if lst.problem is None]
        status = dict(old)
        conds = set_condition(
            old.get("conditions"),
            "Accepted",
            "True" if valid else "False",
            "Accepted" if valid else "ListenersNotValid",
            "Gateway is accepted" if valid else "no listener can be served",
            observedGeneration=gen,
        )
        programmed = served is not None and bool(valid)
        conds = set_condition(
            conds,
            "Programmed",
            "True" if programmed else "False",
            "Programmed" if programmed else ("AddressNotAssigned" if served is None else "Invalid"),
            f"proxy listening on {served.address}" if programmed else "not serving",
            observedGeneration=gen,
        )
        status["conditions"] = conds
        status["addresses"] = [{"type": "IPAddress", "value": served.address}] if served else []
        old_l = {entry.get("name"): entry for entry in old.get("listeners") or []}
        listeners = []
        for lst in lsts:
            c = old_l.get(lst.name, {}).get("conditions")
            reason, msg = lst.problem or ("Accepted", "Listener is accepted")
            c = set_condition(
                c, "Accepted", "False" if lst.problem else "True", reason, msg, observedGeneration=gen
            )
            c = set_condition(
                c,
                "Programmed",
                "False" if lst.problem else "True",
                "Invalid" if lst.problem else "Programmed",
                msg if lst.problem else "Listener is programmed",
                observedGeneration=gen,
            )
            c = set_condition(
                c,
                "ResolvedRefs",
                "False" if lst.bad_kinds else "True",
                "InvalidRouteKinds" if lst.bad_kinds else "ResolvedRefs",
                "only HTTPRoute is supported" if lst.bad_kinds else "Resolved all references",
                observedGeneration=gen,
            )
            c = set_condition(c, "Conflicted", "False", "NoConflicts", "No conflicts", observedGeneration=gen)
            listeners.append(
                {
                    "name": lst.name,
                    "supportedKinds": lst.kinds,
                    "attachedRoutes": len(lst.routes),
                    "conditions": c,
                }
            )
        status["listeners"] = listeners
        base.write_status(store, gw, status, self.manager)

    def _route_status(
        self, store: Store, route: dict, entries: list, problems: list[tuple[str, str]]
    ) -> None:
        gen = route["metadata"].get("generation", 1)
        old = (route.get("status") or {}).get("parents") or []
        parents = [p for p in old if p.get("controllerName") != GATEWAY_CONTROLLER]
        for pref, ok, reason, message in entries:
            prev = next(
                (
                    p
                    for p in old
                    if p.get("controllerName") == GATEWAY_CONTROLLER and p.get("parentRef") == pref
                ),
                {},
            )
            c = set_condition(
                prev.get("conditions"),
                "Accepted",
                "True" if ok else "False",
                reason,
                message,
                observedGeneration=gen,
            )
            c = set_condition(
                c,
                "ResolvedRefs",
                "False" if problems else "True",
                problems[0][0] if problems else "ResolvedRefs",
                "; ".join(m for _, m in problems) if problems else "Resolved all the Object references",
                observedGeneration=gen,
            )
            parents.append({"parentRef": pref, "controllerName": GATEWAY_CONTROLLER, "conditions": c})
        if parents != old:
            base.write_status(store, route, {**(route.get("status") or {}), "parents": parents}, self.manager)
