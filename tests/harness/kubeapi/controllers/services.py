"""Service controller stand-ins: LoadBalancer ingress, Endpoints and EndpointSlices.

- ``type: LoadBalancer``: ``delay`` seconds after it appears, ``status.loadBalancer.ingress`` is
  ``[{ip: <ingress_ip>, ipMode: VIP}]`` (default 127.0.0.1) or ``[{hostname: <ingress_hostname>}]`` (an
  ELB-like name), with EnsuringLoadBalancer / EnsuredLoadBalancer Events. The annotation
  ``kubeapi-sim/loadbalancer-ip`` picks the address per Service (the process runtime uses it to point a
  DGD's frontend Service at the loopback address its frontend listens on; such an ingress is left alone
  whatever the type). Changing the type away from LoadBalancer clears the ingress.
- With ``endpoints``: for every Service with a selector, an Endpoints object and an EndpointSlice
  (``<svc>-<5 chars>``, label ``kubernetes.io/service-name``) listing the matching pods' IPs, ready or not
  (terminating pods are not-ready/terminating), with the Service's ports.

Not simulated: traffic (nothing listens on the addresses unless the process runtime runs a process
there), node ports, session affinity, ExternalName, topology hints, dual stack.
"""

from __future__ import annotations

import time

from ..store import Event, Store
from . import base
from .base import annotations, owner_ref, pod_ready, terminating

LB_IP_ANNOTATION = "kubeapi-sim/loadbalancer-ip"


class Services(base.Reconciler):
    name = "services"
    manager = "kubeapi-sim-services"

    def __init__(
        self,
        *,
        ingress_ip: str = "127.0.0.1",
        ingress_hostname: str | None = None,
        delay: float = 0.0,
        endpoints: bool = True,
        events: bool = True,
        enabled: bool = True,
    ) -> None:
        super().__init__(enabled=enabled)
        self.ingress_ip = ingress_ip
        self.ingress_hostname = ingress_hostname
        self.delay = delay
        self.endpoints = endpoints
        self.events.enabled = events
        self._seen: dict[str, float] = {}

    def observe(self, store: Store, event: Event) -> None:
        if event.group != "":
            return
        if event.kind == "Service" and event.type != "DELETED":
            self.enqueue(("Service", event.namespace, event.name))
            if self.endpoints:
                self.enqueue(("Endpoints", event.namespace))
        elif event.kind == "Pod" and self.endpoints:
            self.enqueue(("Endpoints", event.namespace))

    def reconcile(self, store: Store, key: tuple) -> float | None:
        if key[0] == "Endpoints":
            for svc in store.list("v1", "Service", key[1]):
                if (svc.get("spec") or {}).get("selector") and not terminating(svc):
                    self._endpoints(store, svc)
            return None
        _, ns, name = key
        svc = store.try_get("v1", "Service", name, ns)
        if svc is None or terminating(svc):
            return None
        status = dict(svc.get("status") or {})
        ip = annotations(svc).get(LB_IP_ANNOTATION)
        if svc["spec"].get("type") != "LoadBalancer":
            if (status.get("loadBalancer") or {}).get("ingress") and not ip:
                status["loadBalancer"] = {}
                base.write_status(store, svc, status, self.manager)
            return None
        seen = self._seen.setdefault(svc["metadata"]["uid"], time.monotonic())
        left = seen + self.delay - time.monotonic()
        ingress = (
            [{"ip": ip, "ipMode": "VIP"}]
            if ip
            else [{"hostname": self.ingress_hostname}]
            if self.ingress_hostname
            else [{"ip": self.ingress_ip, "ipMode": "VIP"}]
        )
        if (status.get("loadBalancer") or {}).get("ingress") == ingress:
            return None
        if left > 0:
            self.events.record(
                store, svc, "EnsuringLoadBalancer", "Ensuring load balancer", component="service-controller"
            )
            return left
        status["loadBalancer"] = {"ingress": ingress}
        base.write_status(store, svc, status, self.manager)
        self.events.record(
            store, svc, "EnsuredLoadBalancer", "Ensured load balancer", component="service-controller"
        )
        return None

    def _endpoints(self, store: Store, svc: dict) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = svc["spec"]["selector"]
        pods = [
            p
            for p in store.list("v1", "Pod", ns, label_selector=selector)
            if (p.get("status") or {}).get("podIP")
            and p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        ports = [
            {
                k: v
                for k, v in (
                    ("name", p.get("name")),
                    ("port", _target(p)),
                    ("protocol", p.get("protocol", "TCP")),
                )
                if v is not None
            }
            for p in svc["spec"].get("ports") or []
        ]

        def addr(p: dict) -> dict:
            return {
                "ip": p["status"]["podIP"],
                "nodeName": p["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "name": p["metadata"]["name"],
                    "namespace": ns,
                    "uid": p["metadata"]["uid"],
                },
            }

        ready = [addr(p) for p in pods if pod_ready(p) and not terminating(p)]
        not_ready = [addr(p) for p in pods if not (pod_ready(p) and not terminating(p))]
        subset = {
            k: v for k, v in (("addresses", ready), ("notReadyAddresses", not_ready), ("ports", ports)) if v
        }
        ep = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": dict(svc["metadata"].get("labels") or {})},
            "subsets": [subset] if ready or not_ready else [],
        }
        self._put(store, ep, ("subsets",))
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-{base.safe_hash(svc['metadata']['uid'], 5)}",
                "namespace": ns,
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [owner_ref(svc)],
            },
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": [
                {
                    "addresses": [p["status"]["podIP"]],
                    "conditions": {
                        "ready": pod_ready(p) and not terminating(p),
                        "serving": pod_ready(p),
                        "terminating": terminating(p),
                    },
                    "nodeName": p["spec"].get("nodeName"),
                    "targetRef": {
                        "kind": "Pod",
                        "name": p["metadata"]["name"],
                        "namespace": ns,
                        "uid": p["metadata"]["uid"],
                    },
                }
                for p in pods
            ],
        }
        self._put(store, slice_, ("endpoints", "ports", "addressType"))

    def _put(self, store: Store, obj: dict, fields: tuple[str, ...]) -> None:
        m = obj["metadata"]
        live = store.try_get(obj["apiVersion"], obj["kind"], m["name"], m["namespace"])
        if live is None:
            store.create(obj, field_manager=self.manager)
        elif any(live.get(f) != obj.get(f) for f in fields):
            live.update({f: obj[f] for f in fields})
            store.update(live, field_manager=self.manager)


def _target(port: dict) -> int | None:
    t = port.get("targetPort", port.get("port"))
    return t if isinstance(t, int) else port.get("port")
