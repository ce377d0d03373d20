"""What every renderer shares: the Kubernetes-only guard, labels, secret references, mount points."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.domain import naming
from runtime.errors import NotSupportedError

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec, SecretRef

MODEL_MOUNT = "/opt/models"  # where every component mounts the model cache (HF_HOME)
DOWNLOAD_MOUNT = "/model-store"  # where the download Job mounts it (its HF_HOME)
FRONTEND_PORT = 8000  # the operator's frontend Service port (named http)
SYSTEM_PORT = 9090  # a worker's system server (health, metrics)
HF_TOKEN_KEY = "HF_TOKEN"  # the key of the token Secret, as Dynamo's guides create it
SPEC_HASH_ANNOTATION = "dynadeploy.io/spec-hash"
REVISION_ANNOTATION = "dynadeploy.io/revision"


def namespace_of(spec: DeploymentSpec) -> str:
    """The graph's namespace; a NotSupportedError for targets that do not run on Kubernetes."""
    namespace = spec.namespace()
    if namespace is None:
        raise NotSupportedError(
            f"target {spec.target.kind} does not run on Kubernetes, so it has no manifests",
            hint="use a kube, eks, gke or aks target",
        )
    return namespace


def labels(spec: DeploymentSpec, **extra: str) -> dict[str, str]:
    """dynadeploy's labels for an object of this deployment, plus ``extra`` (label key -> value)."""
    return naming.labels(spec.name, **extra)


def revision_labels(spec: DeploymentSpec, revision: int) -> dict[str, str]:
    return labels(spec, **{naming.REVISION_KEY: str(revision)})


def role_labels(spec: DeploymentSpec, role: str) -> dict[str, str]:
    return labels(spec, **{naming.ROLE_KEY: role})


def with_labels(obj: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    """``obj`` with ``extra`` added to metadata.labels (the template's own labels are kept)."""
    metadata = obj.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **extra}
    return obj


def render_token_secret_ref(spec: DeploymentSpec) -> str | None:
    """Name of the Secret (key HF_TOKEN) holding model.token in the cluster; None without a token.

    Only the name: the effects layer creates the Secret from the Prefect Secret block (or the worker's
    environment variable) that model.token references. No renderer ever writes secret data.
    """
    return naming.hf_token_secret_name(spec) if spec.model.token is not None else None


def token_env_from(spec: DeploymentSpec) -> list[dict[str, Any]] | None:
    """envFrom entries that expose HF_TOKEN to a container, or None without a token."""
    name = render_token_secret_ref(spec)
    return [{"secretRef": {"name": name}}] if name else None


def env_secret_name(spec: DeploymentSpec) -> str:
    """The Secret holding the values of env vars the spec gives as secret references (key = var name)."""
    return naming.join_name(spec.name, "env")


def env_secret_refs(spec: DeploymentSpec) -> dict[str, SecretRef]:
    """Every env var of the spec whose value is a secret reference: var name -> reference.

    The effects layer resolves these into the Secret ``env_secret_name(spec)`` before a rollout.
    """
    refs: dict[str, Any] = {}
    for component in spec.components():
        refs.update({k: v for k, v in component.env.items() if not isinstance(v, str)})
    return refs


def env_entries(spec: DeploymentSpec, env: dict[str, Any]) -> list[dict[str, Any]]:
    """Container env entries for spec env: literals as values, secret references as secretKeyRefs."""
    out: list[dict[str, Any]] = []
    for key, value in env.items():
        if isinstance(value, str):
            out.append({"name": key, "value": value})
        else:
            ref = {"name": env_secret_name(spec), "key": key}
            out.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return out
