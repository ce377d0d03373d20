"""A small stateful fake of the GKE REST API (container.googleapis.com/v1) for the real
google-cloud-container client (transport="rest", api_endpoint=fake.url, AnonymousCredentials).

Serves: clusters (create / get / list / delete), node pools (create / get / list / delete) and
operations (get) under /v1/projects/P/locations/L/...; errors in Google's JSON shape ({"error": {code,
message, status}}), which google-api-core turns into NotFound, AlreadyExists, FailedPrecondition...

Models: long-running operations that finish ``op_seconds`` after they start (checked on every request,
so a client that stops polling still finds them done later); cluster status PROVISIONING -> RUNNING,
RECONCILING while a node pool operation runs, STOPPING while deleting; one operation at a time per
cluster (a second one gets 400 FAILED_PRECONDITION, as GKE answers); 404 for absent objects, 409 for
duplicates; injected faults from tests.harness.fake_cloud (429/503 with Retry-After, kill_after).

Does NOT model: nodes, GPUs or their drivers (accelerator settings are stored, never acted on),
autoscaling, release channels and versions (the requested version is echoed), IAM, quotas,
networks/subnetworks, the Compute Engine objects GKE creates, or real Kubernetes: a cluster's
endpoint is ``kube_server`` (e.g. the Kubernetes API simulator's URL) and its CA ``ca_data``.

    fake = FakeGke(kube_server=sim.url).start()
    os.environ["DYNADEPLOY_GKE_ENDPOINT"] = fake.url

Service accounts (for credentials from a gcp-credentials block): ``fake.service_account(email)`` makes an
RSA key and returns the key file's JSON with ``token_uri`` = ``fake.url + "/token"``, where the fake plays
Google's OAuth token endpoint: it verifies the JWT assertion's signature against that account's public
key and audience, and issues an access token (``fake.issued``: token -> email). google-auth would also
look up the account's regional access boundary at iamcredentials.googleapis.com after a refresh;
``keep_google_auth_local(monkeypatch)`` turns that lookup off for the test. ``fake.require_tokens()`` then
refuses (401 UNAUTHENTICATED) every API request whose bearer is neither a token it issued nor a JWT
self-signed by a service account it made (what google-cloud-container sends: always_use_jwt_access);
``fake.identity(header)`` says whose it is.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.harness.fake_cloud import FakeServer

_STATUS = {
    401: "UNAUTHENTICATED",
    400: "FAILED_PRECONDITION",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_BASE = r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_ROUTES = [
    ("GET", _BASE + r"/operations/(?P<op>[^/:]+)$", "get_operation"),
    ("GET", _BASE + r"/clusters$", "list_clusters"),
    ("POST", _BASE + r"/clusters$", "create_cluster"),
    ("GET", _BASE + r"/clusters/(?P<cluster>[^/:]+)$", "get_cluster"),
    ("DELETE", _BASE + r"/clusters/(?P<cluster>[^/:]+)$", "delete_cluster"),
    ("GET", _BASE + r"/clusters/(?P<cluster>[^/:]+)/nodePools$", "list_node_pools"),
    ("POST", _BASE + r"/clusters/(?P<cluster>[^/:]+)/nodePools$", "create_node_pool"),
    ("GET", _BASE + r"/clusters/(?P<cluster>[^/:]+)/nodePools/(?P<pool>[^/:]+)$", "get_node_pool"),
    ("DELETE", _BASE + r"/clusters/(?P<cluster>[^/:]+)/nodePools/(?P<pool>[^/:]+)$", "delete_node_pool"),
]
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nfake-gke-ca\n-----END CERTIFICATE-----\n").decode()


def keep_google_auth_local(monkeypatch: Any) -> None:
    """No regional-access-boundary lookup (an https call to iamcredentials.googleapis.com) after a token
    refresh: tests reach loopback only."""
    from google.auth import credentials

    monkeypatch.setattr(
        credentials.CredentialsWithRegionalAccessBoundary,
        "_is_regional_access_boundary_lookup_required",
        lambda self: False,
        raising=False,
    )


class FakeGke(FakeServer):
    def __init__(
        self, *, kube_server: str | None = None, ca_data: str | None = FAKE_CA, op_seconds: float = 0.02
    ):
        super().__init__()
        self.kube_server, self.ca_data, self.op_seconds = kube_server, ca_data, op_seconds
        self.clusters: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self._pending: list[tuple[float, str]] = []
        self._ids = itertools.count(1)
        self.public_keys: dict[str, str] = {}  # service account email -> PEM public key
        self.issued: dict[str, str] = {}  # access token -> service account email

    # --- service accounts and the OAuth token endpoint ----------------------------------------------

    def service_account(self, email: str, project: str = "dynadeploy-test") -> dict[str, Any]:
        """A new service account's key file (JSON as a dict) whose tokens this fake issues."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_keys[email] = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": secrets.token_hex(8),
            "private_key": private,
            "client_email": email,
            "client_id": str(next(self._ids)),
            "token_uri": f"{self.url}/token",
        }

    def identity(self, header: str) -> str | None:
        """The service account an Authorization header proves, or None."""
        from google.auth import jwt

        token = header.removeprefix("Bearer ")
        if not header.startswith("Bearer ") or not token:
            return None
        if token in self.issued:
            return self.issued[token]
        try:  # a self-signed JWT (scope claim, no audience check here)
            email = jwt.decode(token, verify=False)["iss"]
            jwt.decode(token, certs=self.public_keys[email], audience=None)
            return email
        except (KeyError, ValueError):
            return None

    def require_tokens(self) -> None:
        """From now on, answer 401 to API requests that prove no service account this fake made."""
        self.authorize = lambda header: self.identity(header) is not None

    def respond(
        self, method: str, target: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict]:
        if method == "POST" and urlsplit(target).path == "/token":
            self.requests.append((method, "/token"))
            return self._token(raw)
        return super().respond(method, target, raw, headers)

    def _token(self, raw: bytes) -> tuple[int, bytes, dict]:
        """OAuth 2.0 JWT bearer grant (what google-auth's service account credentials send)."""
        from google.auth import jwt

        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        try:
            email = jwt.decode(form["assertion"], verify=False)["iss"]
            # google-auth addresses the grant to Google's token endpoint whatever token_uri says
            jwt.decode(
                form["assertion"],
                certs=self.public_keys[email],
                audience=[f"{self.url}/token", "https://oauth2.googleapis.com/token"],
            )
        except (KeyError, ValueError) as exc:
            body = {"error": "invalid_grant", "error_description": f"invalid JWT: {type(exc).__name__}"}
            return 400, json.dumps(body).encode(), {}
        token = f"ya29.fake-{secrets.token_hex(12)}"
        with self.lock:
            self.issued[token] = email
        return (
            200,
            json.dumps({"access_token": token, "expires_in": 3600, "token_type": "Bearer"}).encode(),
            {},
        )

    # --- plumbing -----------------------------------------------------------------------------------

    def fault_body(self, status: int, killed: bool) -> dict[str, Any]:
        message = "KilledByTest: the test stopped this run" if killed else "injected fault"
        return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}

    def _error(self, status: int, message: str):
        return status, {"error": {"code": status, "message": message, "status": _STATUS[status]}}, {}

    def handle(self, method: str, path: str, query: str, body: Any, headers: dict[str, str]):
        self._advance()
        for verb, pattern, name in _ROUTES:
            match = re.match(pattern, path)
            if verb == method and match:
                return getattr(self, "_" + name)(body or {}, **match.groupdict())
        return self._error(404, f"no route {method} {path}")

    def _advance(self) -> None:
        """Finish every operation whose time has come (a clock, not the client's polling, drives them)."""
        now = time.monotonic()
        for due, op_id in [p for p in self._pending if p[0] <= now]:
            self._pending.remove((due, op_id))
            op = self.operations[op_id]
            op["status"] = "DONE"
            op["endTime"] = _now()
            op.pop("_effect")()

    def _start_op(self, project: str, location: str, kind: str, target: str, effect) -> dict[str, Any]:
        op_id = f"operation-{next(self._ids)}"
        op = {
            "name": op_id,
            "zone": location,
            "operationType": kind,
            "status": "RUNNING",
            "selfLink": f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/operations/{op_id}",
            "targetLink": target,
            "startTime": _now(),
            "_effect": effect,
        }
        self.operations[op_id] = op
        self._pending.append((time.monotonic() + self.op_seconds, op_id))
        return self._public(op)

    def _public(self, op: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def _busy(self, cluster: dict[str, Any]) -> bool:
        return cluster["status"] != "RUNNING"

    # --- routes -------------------------------------------------------------------------------------

    def _get_operation(self, _body, project, location, op):
        found = self.operations.get(op)
        return (200, self._public(found), {}) if found else self._error(404, f"operation {op} not found")

    def _list_clusters(self, _body, project, location):
        found = [c for (p, loc, _), c in self.clusters.items() if p == project and loc in (location, "-")]
        return 200, {"clusters": found}, {}

    def _create_cluster(self, body, project, location):
        spec = dict(body.get("cluster") or {})
        name = spec.get("name", "")
        key = (project, location, name)
        if key in self.clusters:
            return self._error(
                409, f"Already exists: projects/{project}/locations/{location}/clusters/{name}"
            )
        link = f"https://container.googleapis.com/v1/projects/{project}/locations/{location}/clusters/{name}"
        pools = [
            {**p, "status": "PROVISIONING", "selfLink": f"{link}/nodePools/{p['name']}"}
            for p in spec.get("nodePools", [])
        ]
        cluster = {
            **spec,
            "nodePools": pools,
            "status": "PROVISIONING",
            "selfLink": link,
            "location": location,
            "endpoint": self.kube_server or f"34.0.0.{len(self.clusters) + 1}",
            "masterAuth": {"clusterCaCertificate": self.ca_data or ""},
            "currentMasterVersion": spec.get("initialClusterVersion") or "1.33.5-gke.1000",
            "createTime": _now(),
        }
        self.clusters[key] = cluster

        def done() -> None:
            cluster["status"] = "RUNNING"
            for pool in cluster["nodePools"]:
                pool["status"] = "RUNNING"

        return 200, self._start_op(project, location, "CREATE_CLUSTER", link, done), {}

    def _get_cluster(self, _body, project, location, cluster):
        found = self.clusters.get((project, location, cluster))
        return (200, found, {}) if found else self._error(404, f"Not found: cluster {cluster}")

    def _delete_cluster(self, _body, project, location, cluster):
        key = (project, location, cluster)
        found = self.clusters.get(key)
        if not found:
            return self._error(404, f"Not found: cluster {cluster}")
        if self._busy(found):
            return self._error(400, f"Cluster {cluster} is running an operation; please wait and try again")
        found["status"] = "STOPPING"
        return (
            200,
            self._start_op(
                project, location, "DELETE_CLUSTER", found["selfLink"], lambda: self.clusters.pop(key, None)
            ),
            {},
        )

    def _list_node_pools(self, _body, project, location, cluster):
        found = self.clusters.get((project, location, cluster))
        return (
            (200, {"nodePools": found["nodePools"]}, {})
            if found
            else self._error(404, f"Not found: {cluster}")
        )

    def _create_node_pool(self, body, project, location, cluster):
        found = self.clusters.get((project, location, cluster))
        if not found:
            return self._error(404, f"Not found: cluster {cluster}")
        spec = dict(body.get("nodePool") or {})
        if any(p["name"] == spec.get("name") for p in found["nodePools"]):
            return self._error(409, f"Already exists: node pool {spec.get('name')}")
        if self._busy(found):
            return self._error(400, f"Cluster {cluster} is running an operation; please wait and try again")
        pool = {
            **spec,
            "status": "PROVISIONING",
            "selfLink": f"{found['selfLink']}/nodePools/{spec.get('name')}",
        }
        found["nodePools"].append(pool)
        found["status"] = "RECONCILING"

        def done() -> None:
            pool["status"] = "RUNNING"
            found["status"] = "RUNNING"

        return 200, self._start_op(project, location, "CREATE_NODE_POOL", pool["selfLink"], done), {}

    def _get_node_pool(self, _body, project, location, cluster, pool):
        found = self.clusters.get((project, location, cluster))
        for item in (found or {}).get("nodePools", []):
            if item["name"] == pool:
                return 200, item, {}
        return self._error(404, f"Not found: node pool {pool}")

    def _delete_node_pool(self, _body, project, location, cluster, pool):
        found = self.clusters.get((project, location, cluster))
        item = next((p for p in (found or {}).get("nodePools", []) if p["name"] == pool), None)
        if item is None:
            return self._error(404, f"Not found: node pool {pool}")
        if self._busy(found):
            return self._error(400, f"Cluster {cluster} is running an operation; please wait and try again")
        item["status"], found["status"] = "STOPPING", "RECONCILING"

        def done() -> None:
            found["nodePools"].remove(item)
            found["status"] = "RUNNING"

        return 200, self._start_op(project, location, "DELETE_NODE_POOL", item["selfLink"], done), {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
