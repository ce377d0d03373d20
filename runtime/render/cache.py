"""spec -> the model cache: its PersistentVolumeClaim and the Job that downloads the pinned revision.

The Job writes ``<HF_HOME>/.dynadeploy/<model-key>@<revision>.done`` as its last step; the effects
layer checks that marker (``cache_marker``) to skip a download the cache already holds, and does
not start a rollout before it exists. The built-in model gets the PVC only (nothing to download).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.domain import naming
from runtime.render import common, templates
from runtime.render.dgd import model_key

if TYPE_CHECKING:  # pragma: no cover
    from runtime.domain.capabilities import Capabilities
    from runtime.spec import DeploymentSpec

MARKER_DIR = ".dynadeploy"


def cache_marker(spec: DeploymentSpec, mount: str = common.DOWNLOAD_MOUNT) -> str | None:
    """Path of the marker the download Job writes once the revision is complete (None: built-in model)."""
    if spec.model.is_builtin():
        return None
    return f"{mount}/{MARKER_DIR}/{model_key(spec.model.id)}@{spec.model.revision}.done"


def storage_class(spec: DeploymentSpec, provider: Capabilities) -> str | None:
    """The cache's StorageClass: the spec's, else the provider's for the access mode (None: default)."""
    cache = spec.model.cache
    return cache.storage_class or provider.storage_class_for(cache.access_mode)


def job_service_account(spec: DeploymentSpec) -> str:
    """The ServiceAccount dynadeploy's own Jobs run as (rendered by render_security)."""
    return naming.join_name(spec.name, "dynadeploy")


def render_model_cache(spec: DeploymentSpec, provider: Capabilities) -> list[dict[str, Any]]:
    """[PVC, download Job] (the PVC alone for the built-in model), in apply order."""
    namespace = common.namespace_of(spec)
    pvc_name = naming.model_cache_pvc_name(spec)
    cache = spec.model.cache
    pvc = templates.fill(
        templates.load("templates/model-cache-pvc.yaml"),
        {
            "name": pvc_name,
            "namespace": namespace,
            "size": cache.size,
            "accessMode": cache.access_mode,
            "storageClass": storage_class(spec, provider),
        },
        "infra/templates/model-cache-pvc.yaml",
    )
    out = [common.with_labels(pvc, common.labels(spec))]
    marker = cache_marker(spec)
    if marker is None:
        return out
    job = templates.fill(
        templates.load("templates/model-download-job.yaml"),
        {
            "name": naming.model_download_job_name(spec),
            "namespace": namespace,
            "podLabels": common.role_labels(spec, "model-download"),
            "pvc": pvc_name,
            "modelId": spec.model.id,
            "revision": spec.model.revision,
            "marker": marker,
            "envFrom": common.token_env_from(spec),
            "serviceAccount": job_service_account(spec),
        },
        "infra/templates/model-download-job.yaml",
    )
    out.append(common.with_labels(job, common.role_labels(spec, "model-download")))
    return out
