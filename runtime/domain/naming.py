"""Names, labels and identities derived from a spec: pure, deterministic, no I/O.

Why one module: every object dynadeploy creates (namespaces, DGDs, PVCs, Jobs, Secrets, ledger
ConfigMaps, ECS task families, local supervisor programs) must be findable again by a later run on
another machine, with nothing but the spec in hand. So names are a function of the spec, never of
time or randomness, and every object carries the same two labels so that teardown and inventory can
select "everything dynadeploy made for this deployment" and nothing else.

Kubernetes name rules (DNS-1123) live here too, because the spec validator and the renderers must
agree on them. This module must not import runtime.spec.models (spec imports it); functions that take a
spec only use its public surface (``name``, ``target``, ``namespace()``, ``canonical_dict()``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover - typing only, avoids an import cycle with runtime.spec.models
    from runtime.spec import DeploymentSpec


class Named(Protocol):
    """What the name-only helpers read of a spec: its name (a ledger Revision has only that in hand)."""

    @property
    def name(self) -> str: ...


# --- labels -------------------------------------------------------------------------------------------

MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "dynadeploy"
DEPLOYMENT_KEY = "dynadeploy.io/deployment"
# Which revision of the ledger an object belongs to (set by the renderers on revisioned objects).
REVISION_KEY = "dynadeploy.io/revision"
# Which role a component plays (frontend / worker / prefill / decode).
ROLE_KEY = "dynadeploy.io/role"

# Deployment names become prefixes of longer object names ("<name>-model-download", "<name>-canary-
# frontend"), and some clouds cap names hard (GKE clusters at 40), so the spec caps them at 40.
NAME_MAX = 40
LABEL_MAX = 63
SUBDOMAIN_MAX = 253

# Helm release names of the shared platform pieces (one per cluster, not per deployment).
PLATFORM_RELEASE = "dynamo-platform"
GPU_OPERATOR_RELEASE = "gpu-operator"
GPU_OPERATOR_NAMESPACE = "gpu-operator"
# The cluster-wide Dynamo operator lives here; a namespace-mode operator lives beside the graph.
PLATFORM_NAMESPACE = "dynamo-system"

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def is_dns1123_label(value: str, max_len: int = LABEL_MAX) -> bool:
    """True for a valid RFC 1123 label: lowercase alphanumerics and '-', alphanumeric at both ends."""
    return isinstance(value, str) and 0 < len(value) <= max_len and bool(_LABEL_RE.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    """True for a valid RFC 1123 subdomain: dot-separated labels, at most 253 characters."""
    if not isinstance(value, str) or not 0 < len(value) <= SUBDOMAIN_MAX:
        return False
    return all(_LABEL_RE.match(part) for part in value.split("."))


def dns1123_label_problem(value: str, max_len: int = LABEL_MAX) -> str | None:
    """Say in plain words why ``value`` is not a DNS-1123 label, or None when it is one."""
    if value == "":
        return "it is empty"
    if len(value) > max_len:
        return f"it is {len(value)} characters long (at most {max_len})"
    if any(c.isupper() for c in value):
        return "it has uppercase letters"
    bad = sorted({c for c in value if not (c.isdigit() or ("a" <= c <= "z") or c == "-")})
    if bad:
        return "it contains " + ", ".join(repr(c) for c in bad)
    if not value[0].isalnum() or not value[-1].isalnum():
        return "it must start and end with a letter or digit"
    return None


def suggest_dns1123_label(value: str, max_len: int = LABEL_MAX) -> str:
    """The nearest valid label to ``value`` (lowercased, invalid runs replaced by '-', trimmed)."""
    text = re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")
    text = text[:max_len].rstrip("-")
    return text or "dynadeploy"


def is_label_key(key: str) -> bool:
    """True for a valid Kubernetes label key: optional DNS subdomain prefix + '/' + a name <= 63."""
    if not isinstance(key, str) or not key:
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        return False
    return len(name) <= LABEL_MAX and bool(_LABEL_NAME_RE.match(name))


def is_label_value(value: str) -> bool:
    """True for a valid Kubernetes label value (may be empty)."""
    return isinstance(value, str) and len(value) <= LABEL_MAX and bool(_LABEL_VALUE_RE.match(value))


def labels(name: str, **extra: str) -> dict[str, str]:
    """The labels every object of deployment ``name`` carries, plus ``extra`` (already valid keys)."""
    return {MANAGED_BY_KEY: MANAGED_BY_VALUE, DEPLOYMENT_KEY: name, **extra}


def selector(name: str) -> str:
    """A label selector string (``kubectl -l`` / list_namespaced_*) for deployment ``name``."""
    return ",".join(f"{k}={v}" for k, v in labels(name).items())


def join_name(*parts: str, max_len: int = LABEL_MAX) -> str:
    """Join parts with '-' into a DNS label; when too long, truncate and add a hash of the full name.

    The hash keeps truncated names unique and stable: the same parts always give the same name.
    """
    full = "-".join(p.strip("-") for p in parts if p)
    if len(full) <= max_len:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: max_len - 9].rstrip('-')}-{digest}"


# --- resource names -----------------------------------------------------------------------------------


def namespace(spec: DeploymentSpec) -> str | None:
    """The Kubernetes namespace of the graph (target.namespace, default the spec name); None off k8s."""
    return spec.namespace()


def platform_namespace(spec: DeploymentSpec) -> str | None:
    """Where the Dynamo operator runs: dynamo-system (cluster mode) or the graph's own namespace."""
    ns = spec.namespace()
    if ns is None:
        return None
    return ns if spec.platform.operator_mode == "namespace" else PLATFORM_NAMESPACE


def dgd_name(spec: DeploymentSpec, *, canary: bool = False) -> str:
    """Name of the DynamoGraphDeployment (stable) or of the candidate staged beside it (canary)."""
    return join_name(spec.name, "canary") if canary else spec.name


def frontend_service_name(dgd: str) -> str:
    """The Service the Dynamo operator creates for a graph's frontend (port 8000, named http)."""
    return f"{dgd}-frontend"


def model_cache_pvc_name(spec: DeploymentSpec) -> str:
    return join_name(spec.name, "model-cache")


def model_download_job_name(spec: DeploymentSpec) -> str:
    return join_name(spec.name, "model-download")


def hf_token_secret_name(spec: DeploymentSpec) -> str:
    """The Kubernetes Secret (key HF_TOKEN) that carries the resolved model.token into the cluster."""
    return join_name(spec.name, "hf-token")


def ledger_name(spec: Named, revision: int) -> str:
    """Name of the ledger object (ConfigMap/Secret, or local file stem) for one recorded revision."""
    return join_name(spec.name, "rev", str(revision))


def component_name(spec: DeploymentSpec, role: str, *, canary: bool = False) -> str:
    """Name of one component of the graph: DGD component, ECS task family/service, local program."""
    return join_name(dgd_name(spec, canary=canary), role)


def local_program_name(spec: DeploymentSpec, role: str, index: int) -> str:
    """Supervisor program name of replica ``index`` of ``role`` on the local target."""
    return join_name(spec.name, role, str(index))


# --- identities ---------------------------------------------------------------------------------------


def canonical_json(spec: DeploymentSpec) -> str:
    """The spec as canonical JSON: defaults filled in, keys sorted, no whitespace."""
    return _canonical(spec.canonical_dict())


def spec_hash(spec: DeploymentSpec) -> str:
    """sha256 (hex) of the canonical JSON: equal for equal effective specs, whatever the YAML layout.
    Which credentials block deploys it (target.credentials) is not part of what is deployed."""
    data = spec.canonical_dict()
    data.get("target", {}).pop("credentials", None)
    return hashlib.sha256(_canonical(data).encode()).hexdigest()


def deployment_id(spec: DeploymentSpec) -> str:
    """A stable id for *where* a deployment lives, not *what* it runs: ``<name>-<10 hex>``.

    The hash covers the target's scope (kind + account/region/cluster, see ``Target.scope()``), the
    namespace and the name, so editing replicas, model revision or thresholds keeps the id (that is
    a new revision of the same deployment), while the same name on another cluster gets another id.
    Used as the Prefect concurrency key and ledger key.
    """
    identity = _canonical({"scope": spec.target.scope(), "namespace": spec.namespace(), "name": spec.name})
    return f"{spec.name}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
