"""A small stateful fake of Azure Resource Manager for the real azure-mgmt-containerservice client
(ContainerServiceClient(base_url=fake.url) with the http bearer-policy workaround of _azure.py).

Serves: resource groups (PUT / GET / DELETE, ARM api-version 2021-04-01 shape), managed clusters
(PUT / GET / list by resource group / DELETE / POST listClusterUserCredential) and agent pools
(PUT / GET / list / DELETE) under /subscriptions/S/resourceGroups/RG/providers/
Microsoft.ContainerService/managedClusters/...; errors in ARM's shape ({"error": {code, message}}).

Models: long-running operations as ARM runs them: PUT answers 201 with provisioningState Creating and
an Azure-AsyncOperation URL, DELETE answers 202 with Azure-AsyncOperation and Location; the operation
finishes ``op_seconds`` later (a clock, so a client that stops polling finds it done later), and
its polls say when to look again (retry-after-ms); one operation at a time per cluster (409
OperationNotAllowed otherwise); deleting a resource group deletes its clusters; 404
ResourceNotFound/ResourceGroupNotFound; injected faults from tests.harness.fake_cloud (429/503 with
Retry-After or retry-after-ms, kill_after).

Does NOT model: nodes, VM sizes, GPUs or their drivers (gpuProfile is stored, never acted on),
quotas, RBAC/AAD, networking, the MC_* node resource group, upgrades, or real Kubernetes: the user
kubeconfig points at ``kube_server`` (e.g. the Kubernetes API simulator) with a static token.
"""

from __future__ import annotations

import base64
import itertools
import re
import time
from typing import Any

import yaml

from tests.harness.fake_cloud import FakeServer

_SUB = r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)"
_MC = _SUB + r"/providers/microsoft\.containerservice/managedclusters"
_ROUTES = [
    (
        "GET",
        r"^/subscriptions/(?P<sub>[^/]+)/providers/microsoft\.containerservice/locations/[^/]+/operations/(?P<op>[^/]+)$",
        "operation",
    ),
    ("GET", r"^/subscriptions/(?P<sub>[^/]+)/operationresults/(?P<op>[^/]+)$", "operation_result"),
    ("PUT", _SUB + "$", "put_group"),
    ("GET", _SUB + "$", "get_group"),
    ("DELETE", _SUB + "$", "delete_group"),
    ("GET", _MC + "$", "list_clusters"),
    ("PUT", _MC + r"/(?P<name>[^/]+)$", "put_cluster"),
    ("GET", _MC + r"/(?P<name>[^/]+)$", "get_cluster"),
    ("DELETE", _MC + r"/(?P<name>[^/]+)$", "delete_cluster"),
    ("POST", _MC + r"/(?P<name>[^/]+)/listclusterusercredential$", "credentials"),
    ("GET", _MC + r"/(?P<name>[^/]+)/agentpools$", "list_pools"),
    ("PUT", _MC + r"/(?P<name>[^/]+)/agentpools/(?P<pool>[^/]+)$", "put_pool"),
    ("GET", _MC + r"/(?P<name>[^/]+)/agentpools/(?P<pool>[^/]+)$", "get_pool"),
    ("DELETE", _MC + r"/(?P<name>[^/]+)/agentpools/(?P<pool>[^/]+)$", "delete_pool"),
]
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nfake-aks-ca\n-----END CERTIFICATE-----\n").decode()


class FakeAks(FakeServer):
    def __init__(
        self, *, kube_server: str | None = None, ca_data: str | None = FAKE_CA, op_seconds: float = 0.02
    ):
        super().__init__()
        self.kube_server, self.ca_data, self.op_seconds = kube_server, ca_data, op_seconds
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.clusters: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self._pending: list[tuple[float, str]] = []
        self._ids = itertools.count(1)

    # --- plumbing -----------------------------------------------------------------------------------

    def fault_body(self, status: int, killed: bool) -> dict[str, Any]:
        code = (
            "KilledByTest"
            if killed
            else {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(status, "Injected")
        )
        return {"error": {"code": code, "message": f"{code}: injected by the test"}}

    def _error(self, status: int, code: str, message: str):
        return status, {"error": {"code": code, "message": message}}, {}

    def handle(self, method: str, path: str, query: str, body: Any, headers: dict[str, str]):
        self._advance()
        lowered = path.lower()
        for verb, pattern, name in _ROUTES:
            match = re.match(pattern, lowered)
            if verb == method and match:
                # keep the caller's spelling of names (ARM matching is case-insensitive)
                args = {k: path[match.start(k) : match.end(k)] for k in match.groupdict()}
                return getattr(self, "_" + name)(body or {}, **args)
        return self._error(404, "NoRoute", f"no route {method} {path}")

    def _advance(self) -> None:
        now = time.monotonic()
        for due, op_id in [p for p in self._pending if p[0] <= now]:
            self._pending.remove((due, op_id))
            op = self.operations[op_id]
            op["status"] = "Succeeded"
            op.pop("_effect")()

    def _start_op(self, sub: str, location: str, effect) -> dict[str, str]:
        op_id = f"op-{next(self._ids)}"
        self.operations[op_id] = {"name": op_id, "status": "InProgress", "_effect": effect}
        self._pending.append((time.monotonic() + self.op_seconds, op_id))
        return {
            "Azure-AsyncOperation": f"{self.url}/subscriptions/{sub}/providers/Microsoft.ContainerService"
            f"/locations/{location}/operations/{op_id}?api-version=2026-08-01",
            "Location": f"{self.url}/subscriptions/{sub}/operationresults/{op_id}?api-version=2026-08-01",
            **self._delay(),
        }

    def _delay(self) -> dict[str, str]:
        # retry-after-ms only: azure-core reads Retry-After (whole seconds) first when both are present.
        return {"retry-after-ms": str(max(10, int(self.op_seconds * 1000)))}

    def _busy(self, cluster: dict[str, Any]) -> bool:
        return cluster["properties"]["provisioningState"] != "Succeeded"

    # --- operations ---------------------------------------------------------------------------------

    def _operation(self, _body, sub, op):
        found = self.operations.get(op)
        if not found:
            return self._error(404, "NotFound", f"operation {op}")
        public = {"name": op, "status": found["status"]}
        return 200, public, (self._delay() if found["status"] == "InProgress" else {})

    def _operation_result(self, _body, sub, op):
        found = self.operations.get(op)
        if not found:
            return self._error(404, "NotFound", f"operation {op}")
        return (202, None, self._delay()) if found["status"] == "InProgress" else (204, None, {})

    # --- resource groups ----------------------------------------------------------------------------

    def _put_group(self, body, sub, rg):
        key = (sub, rg.lower())
        existed = key in self.groups
        group = self.groups.setdefault(key, {"id": f"/subscriptions/{sub}/resourceGroups/{rg}", "name": rg})
        group.update(
            location=body.get("location"),
            tags=body.get("tags") or {},
            properties={"provisioningState": "Succeeded"},
        )
        return (200 if existed else 201), group, {}

    def _get_group(self, _body, sub, rg):
        group = self.groups.get((sub, rg.lower()))
        return (
            (200, group, {})
            if group
            else self._error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        )

    def _delete_group(self, _body, sub, rg):
        key = (sub, rg.lower())
        group = self.groups.get(key)
        if not group:
            return 404, None, {}
        group["properties"]["provisioningState"] = "Deleting"

        def done() -> None:
            self.groups.pop(key, None)
            for ckey in [k for k in self.clusters if k[:2] == key]:
                self.clusters.pop(ckey)

        headers = self._start_op(sub, group.get("location") or "eastus", done)
        return 202, None, {"Location": headers["Location"], **self._delay()}

    # --- managed clusters ---------------------------------------------------------------------------

    def _cluster(self, sub: str, rg: str, name: str) -> dict[str, Any] | None:
        return self.clusters.get((sub, rg.lower(), name.lower()))

    def _list_clusters(self, _body, sub, rg):
        if (sub, rg.lower()) not in self.groups:
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        return 200, {"value": [c for k, c in self.clusters.items() if k[:2] == (sub, rg.lower())]}, {}

    def _put_cluster(self, body, sub, rg, name):
        if (sub, rg.lower()) not in self.groups:
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        existing = self._cluster(sub, rg, name)
        if (
            existing is not None
            and self._busy(existing)
            and existing["properties"]["provisioningState"] != "Failed"
        ):
            return self._error(
                409, "OperationNotAllowed", "Operation is not allowed: another operation is in progress"
            )
        props = dict(body.get("properties") or {})
        rid = (
            f"/subscriptions/{sub}/resourceGroups/{rg}"
            f"/providers/Microsoft.ContainerService/managedClusters/{name}"
        )
        pools = [{**p, "provisioningState": "Creating"} for p in props.get("agentPoolProfiles", [])]
        fqdn = f"{props.get('dnsPrefix', name)}-fake.hcp.{body.get('location')}.azmk8s.io"
        cluster = {
            "id": rid,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "identity": {**(body.get("identity") or {}), "principalId": "p1", "tenantId": "t1"},
            "properties": {
                **props,
                "agentPoolProfiles": pools,
                "provisioningState": "Creating",
                "fqdn": fqdn,
                "currentKubernetesVersion": props.get("kubernetesVersion") or "1.33.3",
                "nodeResourceGroup": f"MC_{rg}_{name}_{body.get('location')}",
            },
        }
        self.clusters[(sub, rg.lower(), name.lower())] = cluster

        def done() -> None:
            cluster["properties"]["provisioningState"] = "Succeeded"
            for pool in cluster["properties"]["agentPoolProfiles"]:
                pool["provisioningState"] = "Succeeded"

        return (
            (200 if existing else 201),
            cluster,
            self._start_op(sub, body.get("location") or "eastus", done),
        )

    def _get_cluster(self, _body, sub, rg, name):
        found = self._cluster(sub, rg, name)
        return (
            (200, found, {})
            if found
            else self._error(404, "ResourceNotFound", f"managedCluster {name} not found")
        )

    def _delete_cluster(self, _body, sub, rg, name):
        found = self._cluster(sub, rg, name)
        if not found:
            return 204, None, {}
        if self._busy(found):
            return self._error(
                409, "OperationNotAllowed", "Operation is not allowed: another operation is in progress"
            )
        found["properties"]["provisioningState"] = "Deleting"
        key = (sub, rg.lower(), name.lower())
        return (
            202,
            None,
            self._start_op(sub, found["location"] or "eastus", lambda: self.clusters.pop(key, None)),
        )

    def _credentials(self, _body, sub, rg, name):
        found = self._cluster(sub, rg, name)
        if not found:
            return self._error(404, "ResourceNotFound", f"managedCluster {name} not found")
        server = self.kube_server or f"https://{found['properties']['fqdn']}:443"
        cluster = {"server": server, **({"certificate-authority-data": self.ca_data} if self.ca_data else {})}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": name,
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": f"clusterUser_{rg}_{name}", "user": {"token": "fake-aks-user-token"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": f"clusterUser_{rg}_{name}"}}],
        }
        value = base64.b64encode(yaml.safe_dump(config).encode()).decode()
        return 200, {"kubeconfigs": [{"name": "clusterUser", "value": value}]}, {}

    # --- agent pools --------------------------------------------------------------------------------

    def _pools(self, cluster: dict[str, Any]) -> list[dict[str, Any]]:
        return cluster["properties"]["agentPoolProfiles"]

    def _pool_view(self, cluster: dict[str, Any], pool: dict[str, Any]) -> dict[str, Any]:
        props = {k: v for k, v in pool.items() if k != "name"}
        return {
            "id": f"{cluster['id']}/agentPools/{pool['name']}",
            "name": pool["name"],
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": props,
        }

    def _list_pools(self, _body, sub, rg, name):
        found = self._cluster(sub, rg, name)
        if not found:
            return self._error(404, "ResourceNotFound", f"managedCluster {name} not found")
        return 200, {"value": [self._pool_view(found, p) for p in self._pools(found)]}, {}

    def _get_pool(self, _body, sub, rg, name, pool):
        found = self._cluster(sub, rg, name)
        item = next((p for p in self._pools(found) if p["name"] == pool), None) if found else None
        return (
            (200, self._pool_view(found, item), {})
            if item
            else self._error(404, "NotFound", f"agentPool {pool}")
        )

    def _put_pool(self, body, sub, rg, name, pool):
        found = self._cluster(sub, rg, name)
        if not found:
            return self._error(404, "ResourceNotFound", f"managedCluster {name} not found")
        if self._busy(found):
            return self._error(
                409, "OperationNotAllowed", "Operation is not allowed: another operation is in progress"
            )
        existing = next((p for p in self._pools(found) if p["name"] == pool), None)
        item = {"name": pool, **(body.get("properties") or {}), "provisioningState": "Creating"}
        if existing is not None:
            self._pools(found).remove(existing)
        self._pools(found).append(item)
        found["properties"]["provisioningState"] = "Updating"

        def done() -> None:
            item["provisioningState"] = "Succeeded"
            found["properties"]["provisioningState"] = "Succeeded"

        return (
            (200 if existing else 201),
            self._pool_view(found, item),
            self._start_op(sub, found["location"], done),
        )

    def _delete_pool(self, _body, sub, rg, name, pool):
        found = self._cluster(sub, rg, name)
        item = next((p for p in self._pools(found) if p["name"] == pool), None) if found else None
        if item is None:
            return 204, None, {}
        if self._busy(found):
            return self._error(
                409, "OperationNotAllowed", "Operation is not allowed: another operation is in progress"
            )
        item["provisioningState"], found["properties"]["provisioningState"] = "Deleting", "Updating"

        def done() -> None:
            self._pools(found).remove(item)
            found["properties"]["provisioningState"] = "Succeeded"

        return 202, None, self._start_op(sub, found["location"], done)
