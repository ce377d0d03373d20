"""Pure rendering: a DeploymentSpec -> Kubernetes manifests, Helm charts + values, ledger records.

No I/O except reading the packaged data under infra/ (templates, values, providers.yaml); the
effects layer (kube gateway, Helm gateway, stage tasks) applies what these functions return.

    render_dgd(spec, revision=, image=, provider=, name=, engine=)  the DynamoGraphDeployment
    render_model_cache(spec, provider)                             [PVC, download Job]
    render_token_secret_ref(spec)                                  the HF token Secret's name
    render_security(spec, provider, name=)                         Namespace, RBAC, NetworkPolicies,
                                                                   PDB, HPAs
    render_route(spec, canary_percent=)                            HTTPRoute / Ingress(es) of serving.route
    platform_charts(spec) / render_platform_values(spec, provider) Dynamo charts and values
    gpu_operator_chart(spec) / render_gpu_operator_values(...)     NVIDIA GPU operator
    render_revision_record(revision, ns) / parse_revision_record   the ledger ConfigMap

Modules: templates (the ${placeholder} language of infra/), dgd, cache, security, route, platform, ledger;
and the monitoring rules and dashboards, the local process plan, the cloud plans, the ECS task definitions.
A sibling of gateways/: render imports no gateway, host, provider or target, and no SDK or HTTP client.
"""

from runtime.render.cache import cache_marker, job_service_account, render_model_cache, storage_class
from runtime.render.common import (
    FRONTEND_PORT,
    HF_TOKEN_KEY,
    MODEL_MOUNT,
    REVISION_ANNOTATION,
    SPEC_HASH_ANNOTATION,
    SYSTEM_PORT,
    env_secret_name,
    env_secret_refs,
    render_token_secret_ref,
)
from runtime.render.dgd import model_key, model_path, render_dgd, resolve_engine, total_gpus
from runtime.render.ledger import parse_revision_record, record_name, render_revision_record
from runtime.render.platform import (
    ChartRef,
    gpu_driver_installed_by_operator,
    gpu_operator_chart,
    platform_charts,
    render_crds_values,
    render_gpu_operator_values,
    render_platform_values,
)
from runtime.render.route import render_route, route_objects
from runtime.render.security import render_namespace, render_security

__all__ = [
    "FRONTEND_PORT", "HF_TOKEN_KEY", "MODEL_MOUNT", "REVISION_ANNOTATION", "SPEC_HASH_ANNOTATION",
    "SYSTEM_PORT", "ChartRef", "cache_marker", "env_secret_name", "env_secret_refs",
    "gpu_driver_installed_by_operator", "gpu_operator_chart", "job_service_account", "model_key",
    "model_path", "parse_revision_record", "platform_charts", "record_name", "render_crds_values",
    "render_dgd", "render_gpu_operator_values", "render_model_cache", "render_namespace",
    "render_platform_values", "render_revision_record", "render_route", "render_security",
    "render_token_secret_ref", "resolve_engine", "route_objects", "storage_class", "total_gpus",
]  # fmt: skip
