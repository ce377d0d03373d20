"""The user's deployment spec: strict pydantic models, their rules, and loading a spec from YAML.

Callers import from here: ``from runtime.spec import DeploymentSpec, load_spec``. What each module holds,
and the order they build on each other, is in runtime/spec/models.py's docstring; every field's meaning is
in docs/spec-reference.md, generated from the models (``python -m runtime.spec.reference``).

Above domain/ only: the spec validates with domain's vocabulary, and nothing here renders, calls out or
knows a target's mechanics (no render, gateways, host, providers or targets).
"""

from runtime.spec.base import (
    API_VERSION,
    BUILTIN_LLM,
    BUILTIN_MODEL,
    DEFAULT_DYNAMO_VERSION,
    DEFAULT_IMAGE,
    parse_quantity,
)
from runtime.spec.cloud import CREDENTIALS_BLOCK_TYPES, CredentialsRef, GpuSpec, NodePool, Taint
from runtime.spec.loading import load_spec, load_spec_data
from runtime.spec.models import DeploymentSpec, parse_spec
from runtime.spec.monitoring import BurnAlert, MonitoringSpec, SloSpec, duration_s
from runtime.spec.secret_refs import SecretRef
from runtime.spec.sections import (
    CanarySpec,
    GpuOperatorSpec,
    ModelCache,
    ModelSpec,
    PlatformSpec,
    SlaSpec,
    SmokeSpec,
    TeardownSpec,
)
from runtime.spec.serving import (
    AutoscalingSpec,
    Component,
    FrontendSpec,
    GatewayRoute,
    IngressRoute,
    MockerSpec,
    RouteSpec,
    ServingSpec,
    VllmSpec,
    WorkerSpec,
)
from runtime.spec.targets import (
    MIN_K8S_MINOR,
    TARGET_KINDS,
    AksTarget,
    EcsTarget,
    EksTarget,
    GkeTarget,
    KubeTarget,
    LocalTarget,
    ProviderHints,
    Target,
    node_pools,
)

__all__ = [
    "API_VERSION", "BUILTIN_LLM", "BUILTIN_MODEL", "CREDENTIALS_BLOCK_TYPES", "DEFAULT_DYNAMO_VERSION",
    "DEFAULT_IMAGE", "MIN_K8S_MINOR", "TARGET_KINDS",
    "AksTarget", "AutoscalingSpec", "BurnAlert", "CanarySpec", "Component", "CredentialsRef", "DeploymentSpec",
    "EcsTarget", "EksTarget", "FrontendSpec", "GatewayRoute", "GkeTarget", "GpuOperatorSpec", "GpuSpec",
    "IngressRoute", "KubeTarget", "LocalTarget", "MockerSpec", "ModelCache", "ModelSpec", "MonitoringSpec",
    "NodePool", "PlatformSpec", "ProviderHints", "RouteSpec", "SecretRef", "ServingSpec", "SlaSpec", "SloSpec",
    "SmokeSpec", "Taint", "Target", "TeardownSpec", "VllmSpec", "WorkerSpec",
    "duration_s", "load_spec", "load_spec_data", "node_pools", "parse_quantity", "parse_spec",
]  # fmt: skip
