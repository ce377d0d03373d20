"""Traffic splitting (opt-in): stand-ins for a Gateway API implementation and ingress-nginx, each with
REAL HTTP reverse proxies on loopback, so requests sent to a Gateway's or an IngressClass's address
actually reach the Services' endpoints, split by weight.

Gateway API (gateway.networking.k8s.io; ``install_gateway_api_crds(store)`` or apply ``gateway_api_crds()``):
GatewayClass / Gateway / HTTPRoute v1 (v1beta1 served too) and ReferenceGrant v1beta1, category
``gateway-api``, short names gc / gtw / refgrant.
- GatewayClass with ``spec.controllerName: kubeapi-sim.io/gateway-controller`` (``GATEWAY_CONTROLLER``):
  Accepted=True (observedGeneration).
- Gateway of such a class: a free loopback address ``<address_prefix>.<a>.<b>`` (default 127.77.x.y) where
  all its HTTP listener ports are free; one proxy per listener port there (listeners sharing a port are
  told apart by hostname); status ``addresses [{type: IPAddress, value}]``, Accepted / Programmed, and per
  listener ``supportedKinds``, ``attachedRoutes``, Accepted / Programmed / ResolvedRefs / Conflicted.
  Non-HTTP listeners: Accepted=False UnsupportedProtocol; a taken port: PortUnavailable. Deleting the
  Gateway (or its class) stops its proxies; ``stop()`` stops all (the simulator's stop does it).
- HTTPRoute: per parentRef to one of our Gateways (sectionName / port narrow the listeners) a
  ``status.parents[]`` entry {parentRef, controllerName, conditions} (other controllers' entries kept):
  Accepted True, or False with NoMatchingParent / NotAllowedByListeners (``allowedRoutes.namespaces.from``
  Same (default) / All / Selector on the Namespace's labels; ``allowedRoutes.kinds``) /
  NoMatchingListenerHostname; ResolvedRefs True, or False with BackendNotFound (Service or port missing) /
  RefNotPermitted (another namespace without a ReferenceGrant) / InvalidKind (not a core Service); every
  condition with ``observedGeneration`` = the route's generation. The proxies get the new route table
  before the status is written: a status showing the route's generation means the proxy routes by it.
- Data plane (traffic_routes.py): Host (exact / ``*.`` wildcard, intersected with the listener hostname),
  path Exact / PathPrefix (default ``/``) / RegularExpression, headers and query params, method, ranked
  as the spec says; then a backendRef at random proportional to ``weight`` (default 1; 0 never). No
  match: 404; every weight 0, no backendRefs, or an invalid backendRef's share: 500.
ingress-nginx: an IngressClass with ``spec.controller: k8s.io/ingress-nginx`` (``NGINX_CONTROLLER``) gets one
proxy on its own loopback address and ``ingress_port`` (default 80); its Ingresses (``ingressClassName``,
the ``kubernetes.io/ingress.class`` annotation, or none when the class is annotated
``ingressclass.kubernetes.io/is-default-class: "true"``) get ``status.loadBalancer.ingress [{ip}]``. Rules are
merged by host + path over all namespaces, oldest Ingress first; an Ingress annotated
``nginx.ingress.kubernetes.io/canary: "true"`` takes, for the same host+path, the requests chosen by
``canary-by-header`` (always/never, or ``-value`` / ``-pattern``), else ``canary-weight`` out of
``canary-weight-total`` (default 100); a canary without a main Ingress serves nothing. A missing Service or
no ready endpoint: 503; an unreachable endpoint: 502.
Both: backends resolve Service port -> targetPort -> READY endpoints of the Service's EndpointSlices
(round robin); responses stream back chunk by chunk with ``x-kubeapi-sim-backend: <namespace>/<service>``
(traffic_proxy.py). Tables are rebuilt from the store on every relevant change (HTTPRoute, Gateway,
GatewayClass, ReferenceGrant, Service, EndpointSlice, Namespace, Ingress, IngressClass), never per request;
the proxies run on their own event loop thread. ``wait_synced()`` waits until every change made so far is
in the tables.

Not simulated: TLS and HTTPS/TLS/TCP/UDP listeners, GRPCRoute/TLSRoute/TCPRoute, HTTPRoute filters
(header modifiers, redirects, rewrites, mirrors; they are ignored), timeouts, retries, session
persistence, BackendTLSPolicy, Gateway ``spec.addresses`` and infrastructure, listener conflicts,
ingress-nginx's other annotations (rewrite-target, canary-by-cookie, affinity, ...), ``defaultBackend``,
``use-regex``, the admission webhook, ConfigMap settings.
"""

from __future__ import annotations

import copy
import random
import threading

from ..store import Event, Store
from . import base
from .base import annotations, terminating
from .ports import port_is_free
from .traffic_gateway import API, GATEWAY_CONTROLLER, GRANT_API, GROUP, GatewayApi
from .traffic_proxy import BACKEND_HEADER, Listener, NoRoutes, ProxyLoop
from .traffic_routes import Snapshot, nginx_table

__all__ = [
    "BACKEND_HEADER",
    "GATEWAY_CONTROLLER",
    "NGINX_CONTROLLER",
    "Traffic",
    "gateway_api_crds",
    "install_gateway_api_crds",
]

NGINX_CONTROLLER = "k8s.io/ingress-nginx"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_WATCHED = {
    (GROUP, "GatewayClass"),
    (GROUP, "Gateway"),
    (GROUP, "HTTPRoute"),
    (GROUP, "ReferenceGrant"),
    ("", "Service"),
    ("", "Namespace"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"),
}


# ---------------------------------------------------------------------------------------------- CRDs
def _crd(
    plural: str, kind: str, short: list[str], scope: str, versions: list[str], columns: list[dict]
) -> dict:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "annotations": {
                "gateway.networking.k8s.io/bundle-version": "v1.2.1",
                "gateway.networking.k8s.io/channel": "standard",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short,
                "categories": ["gateway-api"],
            },
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": copy.deepcopy(schema),
                    "subresources": {"status": {}} if kind != "ReferenceGrant" else {},
                    "additionalPrinterColumns": copy.deepcopy(columns),
                }
                for i, v in enumerate(versions)
            ],
        },
    }


def gateway_api_crds() -> list[dict]:
    """GatewayClass (cluster-scoped), Gateway, HTTPRoute (v1 stored, v1beta1 served), ReferenceGrant
    (v1beta1)."""
    age = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

    def cond(t: str) -> dict:
        return {"name": t, "type": "string", "jsonPath": f'.status.conditions[?(@.type=="{t}")].status'}

    return [
        _crd(
            "gatewayclasses",
            "GatewayClass",
            ["gc"],
            "Cluster",
            ["v1", "v1beta1"],
            [
                {"name": "Controller", "type": "string", "jsonPath": ".spec.controllerName"},
                cond("Accepted"),
                age,
                {"name": "Description", "type": "string", "jsonPath": ".spec.description", "priority": 1},
            ],
        ),
        _crd(
            "gateways",
            "Gateway",
            ["gtw"],
            "Namespaced",
            ["v1", "v1beta1"],
            [
                {"name": "Class", "type": "string", "jsonPath": ".spec.gatewayClassName"},
                {"name": "Address", "type": "string", "jsonPath": ".status.addresses[*].value"},
                cond("Programmed"),
                age,
            ],
        ),
        _crd(
            "httproutes",
            "HTTPRoute",
            [],
            "Namespaced",
            ["v1", "v1beta1"],
            [{"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"}, age],
        ),
        _crd("referencegrants", "ReferenceGrant", ["refgrant"], "Namespaced", ["v1beta1"], [age]),
    ]


def _real_httproute(crds: list[dict]) -> list[dict]:
    """The real HTTPRoute CRD (Gateway API v1.6.1 standard channel) from the upstream folder when present;
    GatewayClass, Gateway and ReferenceGrant stay stand-ins (upstream keeps only the HTTPRoute CRDs)."""
    from ... import upstream

    if upstream.upstream_dir() is None:
        return crds
    return [
        upstream.httproute_crd("v1.6.1") if c["spec"]["names"]["kind"] == "HTTPRoute" else c for c in crds
    ]


def install_gateway_api_crds(store: Store, *, real: bool = True) -> None:
    """Create the Gateway API CRDs (or leave them) in ``store``, as applying the standard bundle would
    (``real``: the upstream HTTPRoute CRD when the upstream folder is there; False: all stand-ins)."""
    from ... import upstream

    upstream.install(store, _real_httproute(gateway_api_crds()) if real else gateway_api_crds())


# ---------------------------------------------------------------------------------------------- controller
class Traffic(base.Reconciler):
    """Gateway API + ingress-nginx stand-in. ``gateway_address(ns, name)``, ``ingress_address(class)``."""

    name = "traffic"
    manager = "kubeapi-sim-traffic"
    every = 0.05

    def __init__(
        self,
        *,
        gateway_api: bool = True,
        ingress_nginx: bool = True,
        ingress_port: int = 80,
        address_prefix: str = "127.77",
        seed: int | None = None,
        crds: bool | str = True,
        connect_timeout: float = 5.0,
        shutdown_timeout: float = 0.5,
        enabled: bool = True,
    ) -> None:
        super().__init__(enabled=enabled)
        if not address_prefix.startswith("127.") or address_prefix.count(".") != 1:
            raise ValueError("address_prefix must be two octets of 127.0.0.0/8, e.g. '127.77'")
        self.gateway_api = gateway_api
        self.ingress_nginx = ingress_nginx
        self.ingress_port = ingress_port
        self.address_prefix = address_prefix
        self.crds = crds
        self.proxy = ProxyLoop(seed=seed, connect_timeout=connect_timeout, shutdown_timeout=shutdown_timeout)
        self.gateways = GatewayApi(self.proxy, self._allocate, self.manager)
        self.classes: dict[str, tuple[str, Listener | None]] = {}  # IngressClass -> (address, proxy)
        self._taken: set[str] = set()  # every address handed out (never reused)
        self._seen_rv = self._synced_rv = 0
        self._pending = self._syncing = False
        self._store: Store | None = None
        self._cv = threading.Condition()

    # ------------------------------------------------------------------ for tests
    def gateway_address(self, namespace: str, name: str) -> str | None:
        """The loopback address a Gateway's listeners serve on (also its ``status.addresses[0].value``)."""
        return self.gateways.address(namespace, name)

    def ingress_address(self, ingress_class: str) -> str | None:
        """The loopback address an ingress-nginx IngressClass's proxy serves on (port ``ingress_port``)."""
        entry = self.classes.get(ingress_class)
        return entry[0] if entry and entry[1] is not None else None

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Wait until every store change made before this call is in the proxies' tables (and statuses)."""
        if self._store is None:
            return True
        target = self._store.resource_version
        with self._cv:
            return self._cv.wait_for(lambda: self._synced_rv >= target, timeout)

    def stop(self) -> None:
        """Stop every proxy (in-flight requests get ``shutdown_timeout``)."""
        self.gateways.stop()
        self.classes.clear()
        self._taken.clear()
        self.proxy.stop()

    # ------------------------------------------------------------------ controller
    def observe(self, store: Store, event: Event) -> None:
        self._store = store
        if (event.group, event.kind) in _WATCHED:
            self._pending = True
            self.enqueue("sync")
        with self._cv:
            self._seen_rv = max(self._seen_rv, event.resource_version)
            if not self._pending and not self._syncing:
                self._synced_rv = self._seen_rv
                self._cv.notify_all()

    def tick(self, store: Store) -> None:
        self._store = store
        if not self._pending and not self._syncing:
            with self._cv:
                self._synced_rv = max(self._synced_rv, self._seen_rv)
                self._cv.notify_all()

    def reconcile(self, store: Store, key: object) -> float | None:
        self._syncing, self._pending = True, False
        seen = self._seen_rv
        try:
            self._sync(store)
        except BaseException:
            self._pending = True
            raise
        finally:
            self._syncing = False
        with self._cv:
            self._synced_rv = max(self._synced_rv, seen)
            self._cv.notify_all()
        return None

    def _sync(self, store: Store) -> None:
        gw = self.gateway_api and base.kind_available(store, API, "Gateway")
        grants = GRANT_API if gw and base.kind_available(store, GRANT_API, "ReferenceGrant") else None
        snap = Snapshot(store, grants)
        if gw:
            self.gateways.sync(store, snap)
        elif self.gateways.served:
            self.gateways.stop()
        if self.ingress_nginx:
            self._sync_nginx(store, snap)

    def _allocate(self, ports: list[int]) -> str | None:
        for _ in range(500):
            addr = f"{self.address_prefix}.{random.randint(0, 255)}.{random.randint(2, 254)}"
            if addr not in self._taken and all(port_is_free(p, addr) for p in ports):
                self._taken.add(addr)
                return addr
        return None

    # ------------------------------------------------------------------ ingress-nginx
    def _sync_nginx(self, store: Store, snap: Snapshot) -> None:
        classes = {
            c["metadata"]["name"]: c
            for c in store.list("networking.k8s.io/v1", "IngressClass")
            if (c.get("spec") or {}).get("controller") == NGINX_CONTROLLER and not terminating(c)
        }
        for name in [n for n in self.classes if n not in classes]:
            _, lis = self.classes.pop(name)
            if lis is not None:
                self.proxy.close(lis)
        default = next(
            (n for n, c in sorted(classes.items()) if annotations(c).get(DEFAULT_CLASS_ANNOTATION) == "true"),
            None,
        )
        mine: dict[str, list[dict]] = {n: [] for n in classes}
        ingresses = [i for i in store.list("networking.k8s.io/v1", "Ingress") if not terminating(i)]
        for ing in ingresses:
            cls = (
                (ing.get("spec") or {}).get("ingressClassName")
                or annotations(ing).get(CLASS_ANNOTATION)
                or default
            )
            if cls in mine:
                mine[cls].append(ing)
        for name, ings in mine.items():
            address, lis = self.classes.get(name, (None, None))
            if lis is None:
                address = address or self._allocate([self.ingress_port])
                if address is not None:
                    try:
                        lis = self.proxy.listen(address, self.ingress_port, NoRoutes(), connect_error=502)
                    except OSError:
                        lis = None
                    self.classes[name] = (address, lis)
            if lis is not None:
                lis.table = nginx_table(ings, snap)
        addresses = {n: a for n, (a, lis) in self.classes.items() if lis is not None}
        for ing in ingresses:
            cls = (
                (ing.get("spec") or {}).get("ingressClassName")
                or annotations(ing).get(CLASS_ANNOTATION)
                or default
            )
            lb = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            want = [{"ip": addresses[cls]}] if cls in addresses else None
            if want is None and not any(e.get("ip") in self._taken for e in lb):
                continue  # not ours, and never was
            if lb != (want or []):
                base.write_status(
                    store,
                    ing,
                    {**(ing.get("status") or {}), "loadBalancer": {"ingress": want} if want else {}},
                    self.manager,
                )
