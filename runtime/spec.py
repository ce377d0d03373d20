"""The deployment spec: one strict, frozen pydantic model for every target, and its YAML loader.

Why strict: a deploy tool's worst failure is doing something expensive (a GPU node pool, an EKS
cluster) from a spec that does not say what the user meant. So every problem is found before any
side effect, all at once, each as a ``SpecIssue``: the dotted path as the user wrote it, the problem
in plain words and a concrete fix. Unknown fields are errors (with a did-you-mean), YAML numbers are
never turned into strings behind the user's back, and secrets may only be *referenced* (a Prefect
Secret block or an environment variable), never written inline; an inline secret is never echoed.

Validation runs in three layers so that one pass reports as much as it can: field types and formats;
rules inside one section (``_issues()`` of each model, which still run when a sibling section is
broken); rules across sections (``_cross_issues``, once every section is valid by itself).
Pure: stdlib, pydantic and yaml; the only I/O is reading the file in ``load_spec``.
Targets and the strict base model live in runtime/spec_targets.py.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from runtime import naming
from runtime.errors import SpecError, SpecIssue
from runtime.spec_targets import (
    TARGET_CLASSES,
    TARGET_KINDS,
    AksTarget,
    DnsLabel,
    EcsTarget,
    EksTarget,
    GkeTarget,
    GpuSpec,
    Issue,
    KubeTarget,
    LocalTarget,
    NodePool,
    NonBlank,
    ProviderHints,
    StrictModel,
    Taint,
    Target,
    at,
    issue,
    matching,
    node_pools,
)

__all__ = [
    "API_VERSION", "BUILTIN_MODEL", "DEFAULT_DYNAMO_VERSION", "DEFAULT_IMAGE", "TARGET_KINDS",
    "AksTarget", "AutoscalingSpec", "CanarySpec", "Component", "DeploymentSpec", "EcsTarget", "EksTarget", "GkeTarget",
    "GpuSpec", "KubeTarget", "LocalTarget", "ModelCache", "ModelSpec", "NodePool", "PlatformSpec",
    "ProviderHints", "SecretRef", "ServingSpec", "SlaSpec", "SmokeSpec", "Taint", "TeardownSpec",
    "WorkerSpec", "load_spec", "parse_quantity", "parse_spec",
]  # fmt: skip

API_VERSION = "dynadeploy.io/v1"
BUILTIN_MODEL = "dynadeploy/tiny-mock"  # tokenizer-only model shipped with dynadeploy; no download
DEFAULT_DYNAMO_VERSION = "1.6.1"
DEFAULT_IMAGE = f"nvcr.io/nvidia/ai-dynamo/vllm-runtime:{DEFAULT_DYNAMO_VERSION}"
ROOT = "spec"  # the path of issues about the whole document (syntax, empty file, not a mapping)

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# Hugging Face access tokens, matched anywhere so that one pasted into env or args is refused.
_HF_TOKEN = re.compile(r"hf_[A-Za-z0-9]{20,}")
# Words of an env var name (split on '_') that mark it as a secret; TOKENIZERS_PARALLELISM is not.
_SECRET_WORDS = {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "APIKEY", "CREDENTIALS"}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip
_IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+(?=/))?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$"
)
# Flags dynadeploy derives from the spec; repeating them in engine_args would fight the renderer.
_RESERVED_ARGS = {"--model", "--model-path", "--served-model-name", "--disaggregation-mode",
                  "--is-prefill-worker", "--is-decode-worker", "--discovery-backend",
                  "--store-kv"}  # fmt: skip
_SECRET_FIX = (
    "keep it out of the spec: store it in a Prefect Secret block and write {secret_block: <block-name>}, "
    "or {env: <VAR>} to read it from the worker's environment"
)


def parse_quantity(text: str) -> int:
    """Bytes in a Kubernetes quantity of the forms the spec accepts ("20Gi", "500M", "1.5Ti")."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def _semver(value: str) -> str:
    if not _SEMVER.match(value):
        raise issue(f"{value!r} is not a semantic version", 'set {path} to a quoted version like "1.6.1"')
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise issue(f"{value!r} is not a Kubernetes quantity", 'set {path} to a size like "20Gi" or "500Gi"')
    if parse_quantity(value) < 2**30:
        raise issue(
            f"{value!r} is smaller than 1Gi; a model cache needs gigabytes",
            'set {path} to "1Gi" or more, e.g. "20Gi" (a bare number means bytes)',
        )
    return value


def _image(value: str) -> str:
    match = _IMAGE.match(value)
    if not match:
        raise issue(f"{value!r} is not a container image reference", f"set {{path}} to e.g. {DEFAULT_IMAGE}")
    if "@sha256:" not in value and match.group("tag") in (None, "latest"):
        raise issue(
            f"image {value!r} is not pinned (no tag, or :latest), so a rollback could not restore it",
            f"pin a version tag or a digest, e.g. {DEFAULT_IMAGE}",
        )
    return value


def _env_scalars(value: Any) -> Any:
    """YAML reads `DYN_LOG: 1` or `FLAG: true` as numbers/booleans; env values are strings."""
    if not isinstance(value, Mapping):
        return value

    def text(v: Any) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int | float) else v

    return {k: text(v) for k, v in value.items()}


SemVer = Annotated[str, AfterValidator(_semver)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class SecretRef(StrictModel):
    """A reference to a secret: a Prefect Secret block, or an environment variable of the worker."""

    secret_block: (
        Annotated[str, matching(r"^[a-z0-9][a-z0-9-]{0,254}$", "a Prefect block name", "hf-token")] | None
    ) = None
    env: Annotated[str, matching(r"^[A-Za-z_]\w*$", "an environment variable name", "HF_TOKEN")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_value(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and {"value", "token", "secret", "password"} & set(data):
            raise issue("a secret value is written inline (not shown here)", _SECRET_FIX)
        return data

    def _issues(self) -> Iterator[Issue]:
        if (self.secret_block is None) == (self.env is None):
            yield at("", "a secret reference needs exactly one of secret_block or env", _SECRET_FIX)


# Env values are literal strings or secret references; the callable discriminator keeps pydantic
# from reporting a failed dict as "not a string" too.
EnvValue = Annotated[
    Annotated[str, Tag("literal")] | Annotated[SecretRef, Tag("ref")],
    Discriminator(lambda v: "ref" if isinstance(v, Mapping | SecretRef) else "literal"),
]
EnvMap = Annotated[dict[EnvName, EnvValue], BeforeValidator(_env_scalars)]


def _env_issues(env: Mapping[str, Any], where: str) -> Iterator[Issue]:
    for key, value in env.items():
        if (
            isinstance(value, str)
            and value
            and (_HF_TOKEN.search(value) or _SECRET_WORDS & set(key.upper().split("_")))
        ):
            yield at(
                f"{where}.{key}",
                f"{key} looks like a secret and has an inline value (not shown here)",
                f"{_SECRET_FIX}, e.g. {key}: {{secret_block: my-secret}}",
            )


# --- platform -----------------------------------------------------------------------------------------


class GpuOperatorSpec(StrictModel):
    enabled: bool = True
    version: Annotated[str, matching(r"^v\d+\.\d+\.\d+$", "a GPU operator release", "v25.10.1")] = "v25.10.1"
    driver: Literal["auto", "install", "preinstalled"] = "auto"


class PlatformSpec(StrictModel):
    """The Dynamo platform of Kubernetes targets (local and ecs ignore it)."""

    dynamo_version: SemVer = DEFAULT_DYNAMO_VERSION
    chart_version: SemVer | None = None  # None: the same as dynamo_version
    operator_mode: Literal["cluster", "namespace"] = "cluster"
    discovery_backend: Literal["kubernetes", "etcd"] = "kubernetes"
    nats: bool = False
    etcd: bool = False
    grove: bool = False
    kai_scheduler: bool = False
    gpu_operator: GpuOperatorSpec = GpuOperatorSpec()

    def chart(self) -> str:
        """The effective platform chart version."""
        return self.chart_version or self.dynamo_version

    def _issues(self) -> Iterator[Issue]:
        major = int(self.dynamo_version.split(".")[0])
        if major < 1:
            yield at(
                "dynamo_version",
                f"Dynamo {self.dynamo_version} is older than 1.0; dynadeploy renders the v1beta1 graphs "
                "and the single platform chart of Dynamo 1.x",
                f'set platform.dynamo_version to "{DEFAULT_DYNAMO_VERSION}"',
            )
        elif self.chart_version and int(self.chart_version.split(".")[0]) != major:
            yield at(
                "chart_version",
                f"chart {self.chart_version} is from another major release than Dynamo "
                f"{self.dynamo_version}; its operator would not match the graphs dynadeploy renders",
                "remove platform.chart_version (it follows dynamo_version), or use the same major version",
            )
        if self.discovery_backend == "etcd" and not self.etcd:
            yield at(
                "etcd",
                "discovery_backend is etcd but platform.etcd is false, so no etcd would be installed",
                "set platform.etcd: true, or discovery_backend: kubernetes",
            )


# --- model --------------------------------------------------------------------------------------------


class ModelCache(StrictModel):
    size: Annotated[str, AfterValidator(_quantity)] = "20Gi"
    storage_class: DnsLabel | None = None  # None: the cluster's default StorageClass
    access_mode: Literal["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"] = "ReadWriteMany"


class ModelSpec(StrictModel):
    id: str = BUILTIN_MODEL
    revision: NonBlank | None = None
    served_name: Annotated[str, matching(r"^\S{1,256}$", "a model name without spaces", "qwen3")] | None = (
        None
    )
    cache: ModelCache = ModelCache()
    token: SecretRef | None = None

    def is_builtin(self) -> bool:
        return self.id == BUILTIN_MODEL

    def served(self) -> str:
        """The model name clients send (the OpenAI `model` field): served_name, else the id."""
        return self.served_name or self.id

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value != BUILTIN_MODEL and not _HF_ID.match(value):
            raise issue(
                f"{value!r} is neither the built-in model nor a Hugging Face id 'org/name'",
                f"set {{path}} to {BUILTIN_MODEL} or an id like Qwen/Qwen3-0.6B",
            )
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, str | bytes | int | float):
            raise issue("model.token is an inline secret value (not shown here)", _SECRET_FIX)
        return value

    def _issues(self) -> Iterator[Issue]:
        if self.is_builtin() and self.revision is not None:
            yield at("revision", "the built-in model has no revisions", "remove model.revision")
        if not self.is_builtin() and self.revision is None:
            yield at(
                "revision",
                f"Hugging Face model {self.id} has no pinned revision, so two runs could serve "
                "different weights",
                "set model.revision to the model's 40-hex commit sha "
                f"(https://huggingface.co/{self.id}/commits/main)",
            )


# --- serving ------------------------------------------------------------------------------------------

Topology = Literal["agg", "agg_router", "disagg", "disagg_router"]
RouterMode = Literal["round-robin", "random", "kv"]
AGG = ("agg", "agg_router")
ROUTER = ("agg_router", "disagg_router")


class AutoscalingSpec(StrictModel):
    """An HPA for one worker role (Kubernetes targets), through the Dynamo operator's scaling adapter."""

    min_replicas: int = Field(default=1, ge=1, le=256)
    max_replicas: int = Field(ge=1, le=256, examples=[4])
    target_cpu_percent: int = Field(default=80, ge=1, le=100)

    def _issues(self) -> Iterator[Issue]:
        if self.min_replicas > self.max_replicas:
            yield at(
                "max_replicas",
                f"max_replicas {self.max_replicas} is less than min_replicas {self.min_replicas}",
                f"set max_replicas to {self.min_replicas} or more",
            )


class WorkerSpec(StrictModel):
    """One worker role: the aggregated workers, prefill or decode."""

    replicas: int = Field(default=1, ge=1, le=256)
    gpus: int = Field(default=1, ge=0, le=64)  # per replica
    engine_args: list[str] = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    autoscaling: AutoscalingSpec | None = None  # None: replicas stay as set

    def _issues(self) -> Iterator[Issue]:
        yield from _env_issues(self.env, "env")
        for i, arg in enumerate(self.engine_args):
            flag = arg.split("=", 1)[0]
            if flag in _RESERVED_ARGS:
                yield at(
                    f"engine_args[{i}]",
                    f"{flag} is set by dynadeploy from the spec",
                    f"remove {flag} from engine_args; set model.id, model.served_name or serving.topology",
                )
            elif _HF_TOKEN.search(arg):
                yield at(
                    f"engine_args[{i}]",
                    "an engine argument holds an inline access token (not shown here)",
                    f"remove it and use model.token; {_SECRET_FIX}",
                )


class FrontendSpec(StrictModel):
    replicas: int = Field(default=1, ge=1, le=64)


class MockerSpec(StrictModel):
    speedup_ratio: float = Field(default=10.0, gt=0, le=10000)  # >1: the mocker runs faster than real time


class Component(NamedTuple):
    """One role of the graph as renderers need it; env is serving.env overlaid by the role's env."""

    role: Literal["frontend", "worker", "prefill", "decode"]
    replicas: int
    gpus: int
    engine_args: list[str]
    env: dict[str, str | SecretRef]


class ServingSpec(StrictModel):
    topology: Topology = "agg"
    engine: Literal["auto", "vllm", "mocker"] = "auto"  # auto: vllm if GPUs, else mocker (at run time)
    image: Annotated[str, AfterValidator(_image)] = DEFAULT_IMAGE  # k8s and ecs targets
    router_mode: RouterMode | None = None  # None: kv for *_router topologies, else round-robin
    frontend: FrontendSpec = FrontendSpec()
    workers: WorkerSpec | None = None  # agg topologies (defaulted there)
    prefill: WorkerSpec | None = None  # disagg topologies, required there
    decode: WorkerSpec | None = None  # disagg topologies, required there
    mocker: MockerSpec = MockerSpec()
    env: EnvMap = Field(default_factory=dict)  # for every component

    @model_validator(mode="before")
    @classmethod
    def _default_workers(cls, data: Any) -> Any:
        # An aggregated graph gets a default worker role, so `workers:` may be left out. Disagg roles
        # get no default: how to split prefill from decode is the user's call.
        if isinstance(data, Mapping) and data.get("topology", "agg") in AGG and data.get("workers") is None:
            return {**data, "workers": {}}
        return data

    def router(self) -> RouterMode:
        """The effective router mode."""
        return self.router_mode or ("kv" if self.topology in ROUTER else "round-robin")

    def roles(self) -> list[tuple[Literal["worker", "prefill", "decode"], WorkerSpec]]:
        """The worker roles of the topology, in start order."""
        if self.topology in AGG:
            return [("worker", self.workers or WorkerSpec())]
        return [("prefill", self.prefill or WorkerSpec()), ("decode", self.decode or WorkerSpec())]

    def _issues(self) -> Iterator[Issue]:
        yield from _env_issues(self.env, "env")
        agg, router, topology = self.topology in AGG, self.topology in ROUTER, self.topology
        for role in ("prefill", "decode") if agg else ("workers",):
            if getattr(self, role) is not None:
                yield at(
                    role,
                    f"serving.{role} is set but topology {topology} does not use it",
                    f"remove serving.{role} (topology {topology} uses "
                    f"{'serving.workers' if agg else 'serving.prefill and serving.decode'}), "
                    "or change serving.topology",
                )
        for role in () if agg else ("prefill", "decode"):
            if getattr(self, role) is None:
                yield at(
                    role,
                    f"topology {topology} needs serving.{role}, which is missing",
                    f"add serving.{role}: {{replicas: 1, gpus: 1}}, or use topology agg",
                )
        # A KV router needs a choice: agg_router counts workers, disagg_router counts decode workers.
        role, counted = ("workers", self.workers) if agg else ("decode", self.decode)
        if router and counted is not None and counted.replicas < 2:
            kind = "worker" if agg else "decode worker"
            yield at(
                f"{role}.replicas",
                f"topology {topology} has {counted.replicas} {kind}; a KV router needs at least 2 "
                "to choose between",
                f"set serving.{role}.replicas to 2 or more, or use topology "
                f"{topology.removesuffix('_router')}",
            )
        if self.router_mode == "kv" and not router:
            yield at(
                "router_mode",
                f"router_mode kv needs a router topology, not {topology}",
                f"use topology {topology}_router, or remove router_mode",
            )
        elif self.router_mode not in (None, "kv") and router:
            yield at(
                "router_mode",
                f"topology {topology} routes by KV cache, but router_mode is {self.router_mode}",
                f"remove router_mode (it is kv), or use topology {topology.removesuffix('_router')}",
            )
        for role, spec in (("workers", self.workers), ("prefill", self.prefill), ("decode", self.decode)):
            if self.engine == "vllm" and spec is not None and spec.gpus == 0:
                yield at(
                    f"{role}.gpus",
                    "engine vllm needs at least 1 GPU per worker, got 0",
                    f"set serving.{role}.gpus to 1 or more, or serving.engine to mocker",
                )


# --- smoke test, canary, teardown ---------------------------------------------------------------------

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class SlaSpec(StrictModel):
    ttft_p90_ms: float = Field(default=2000, gt=0)
    itl_p90_ms: float = Field(default=200, gt=0)
    e2e_p99_ms: float = Field(default=10000, gt=0)
    max_error_rate: Ratio = 0.0
    min_goodput_ratio: Ratio = 0.95  # fraction of requests meeting both the TTFT and the ITL target


class SmokeSpec(StrictModel):
    requests: int = Field(default=40, ge=1, le=10000)
    concurrency: int = Field(default=8, ge=1, le=512)
    max_tokens: int = Field(default=32, ge=1, le=8192)
    prompt: NonBlank = "Hello from dynadeploy"
    timeout_s: float = Field(default=60, gt=0, le=3600)
    sla: SlaSpec = SlaSpec()

    def _issues(self) -> Iterator[Issue]:
        if self.concurrency > self.requests:
            yield at(
                "concurrency",
                f"concurrency {self.concurrency} is more than the {self.requests} requests to send",
                f"set smoke.concurrency to {self.requests} or less, or raise smoke.requests",
            )


class CanarySpec(StrictModel):
    analysis_interval_s: int = Field(default=30, ge=1, le=3600)
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(default=[10, 50, 100], min_length=1)
    requests_per_step: int = Field(default=40, ge=1, le=10000)
    max_ttft_regression: float = Field(default=0.2, ge=0, le=10)  # candidate p90 / baseline p90 - 1
    max_itl_regression: float = Field(default=0.2, ge=0, le=10)
    max_error_rate: Ratio = 0.0
    min_samples: int = Field(default=20, ge=1)

    def _issues(self) -> Iterator[Issue]:
        steps = self.steps
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                yield at(
                    f"steps[{i}]",
                    f"canary steps must strictly increase, but {steps[i]} follows {steps[i - 1]}",
                    "list traffic percents in increasing order, e.g. [10, 50, 100]",
                )
        if steps[-1] != 100:
            yield at(
                f"steps[{len(steps) - 1}]",
                f"the last canary step is {steps[-1]}%, so the candidate would never take all traffic",
                "end canary.steps with 100",
            )
        if self.min_samples > self.requests_per_step:
            yield at(
                "min_samples",
                f"min_samples {self.min_samples} can never be reached with {self.requests_per_step} "
                "requests per step",
                f"set canary.min_samples to {self.requests_per_step} or less, or raise "
                "canary.requests_per_step",
            )


class TeardownSpec(StrictModel):
    on_failure: bool = False  # tear everything down when a deploy fails
    keep_model_cache: bool = True
    keep_namespace: bool = False


# --- the spec -----------------------------------------------------------------------------------------


class DeploymentSpec(StrictModel):
    # model_dump() says apiVersion like the YAML does, so any dump of a spec loads back; the Python
    # name api_version is accepted on input too, for the same reason.
    model_config = StrictModel.model_config | ConfigDict(serialize_by_alias=True, validate_by_name=True)

    api_version: Literal["dynadeploy.io/v1"] = Field(alias="apiVersion", examples=[API_VERSION])
    name: str = Field(examples=["my-demo"])
    target: Target = LocalTarget()
    platform: PlatformSpec = PlatformSpec()
    model: ModelSpec = ModelSpec()
    serving: ServingSpec = ServingSpec()
    smoke: SmokeSpec = SmokeSpec()
    canary: CanarySpec = CanarySpec()
    teardown: TeardownSpec = TeardownSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, naming.NAME_MAX)
        if problem:
            raise issue(
                f"name {value!r} is not a valid DNS-1123 label: {problem}",
                f"set name to lowercase letters, digits and '-' (at most {naming.NAME_MAX} characters), "
                f"e.g. {naming.suggest_dns1123_label(value, naming.NAME_MAX)!r}",
            )
        return value

    def router_mode(self) -> RouterMode:
        """The effective router mode (kv for *_router topologies unless set)."""
        return self.serving.router()

    def namespace(self) -> str | None:
        """The graph's Kubernetes namespace (default: the name); None for local and ecs."""
        if not self.target.runs_on_kubernetes:
            return None
        return getattr(self.target, "namespace", None) or self.name

    def components(self) -> list[Component]:
        """frontend, then worker (agg) or prefill and decode (disagg), with replicas, GPUs, args, env."""
        out = [Component("frontend", self.serving.frontend.replicas, 0, [], dict(self.serving.env))]
        for role, worker in self.serving.roles():
            env = {**self.serving.env, **worker.env}
            out.append(Component(role, worker.replicas, worker.gpus, list(worker.engine_args), env))
        return out

    def engine(self, gpus_available: bool) -> Literal["vllm", "mocker"]:
        """The engine to run. `auto` means vLLM when the host/cluster has GPUs, every worker role asks
        for some, and the model has weights (the built-in model is tokenizer-only); else the mocker."""
        serving = self.serving
        if serving.engine != "auto":
            return serving.engine
        wants_gpus = all(w.gpus > 0 for _, w in serving.roles())
        return "vllm" if gpus_available and wants_gpus and not self.model.is_builtin() else "mocker"

    def total_gpus(self) -> int:
        """GPUs the whole graph asks for (replicas x GPUs per replica, over all roles)."""
        return sum(c.replicas * c.gpus for c in self.components())

    def canonical_dict(self) -> dict[str, Any]:
        """Every field, defaults included, in JSON types, keyed as the YAML spells them."""
        return self.model_dump(mode="json", by_alias=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.canonical_dict(), sort_keys=False)

    def with_changes(self, changes: Mapping[str, Any], source: str | None = None) -> DeploymentSpec:
        """A new spec with ``changes`` deep-merged in, validated like a loaded one (model_copy is not)."""
        return parse_spec(_merge(self.canonical_dict(), changes), source)

    def _issues(self) -> Iterator[Issue]:
        return _cross_issues(self)


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def _cross_issues(spec: DeploymentSpec) -> Iterator[Issue]:
    """Rules that need two sections at once."""
    target, serving, model, platform = spec.target, spec.serving, spec.model, spec.platform
    if target.kind != "local" and not model.is_builtin() and not _SHA.match(model.revision or ""):
        yield at(
            "model.revision",
            f"revision {model.revision!r} is not a commit sha; on target {target.kind} every replica and "
            "every rollback must load the exact same weights",
            "set model.revision to the model's full 40-hex commit sha, not a branch or tag",
        )
    if isinstance(target, LocalTarget) and target.gpus == "none" and serving.engine == "vllm":
        yield at(
            "serving.engine",
            "engine vllm needs a GPU but target.gpus is none",
            "set serving.engine to mocker or auto, or target.gpus to auto on a host with an NVIDIA GPU",
        )
    if model.is_builtin() and serving.engine == "vllm":
        yield at(
            "serving.engine",
            f"engine vllm cannot serve the built-in model {BUILTIN_MODEL}: it has a tokenizer but no weights",
            "set serving.engine to auto or mocker, or model.id to a Hugging Face model with a revision",
        )
    pools = node_pools(target)
    asking = [(r, w) for r, w in serving.roles() if w.gpus > 0]
    if pools is not None and asking:
        yield from _gpu_capacity_issues(target.kind, pools, asking)
    if target.runs_on_kubernetes:
        tag = _IMAGE.match(serving.image).group("tag") or ""  # type: ignore[union-attr]
        release = re.match(r"^(\d+)\.(\d+)\.\d+", tag)
        if release and list(release.groups()) != platform.dynamo_version.split(".")[:2]:
            yield at(
                "serving.image",
                f"runtime image tag {tag} does not match platform.dynamo_version {platform.dynamo_version}; "
                "workers and operator must come from the same release",
                f"use nvcr.io/nvidia/ai-dynamo/vllm-runtime:{platform.dynamo_version}, or change "
                "platform.dynamo_version",
            )
    hints = getattr(target, "provider_hints", None)
    if hints and hints.gpu_driver == "preinstalled" and platform.gpu_operator.driver == "install":
        yield at(
            "platform.gpu_operator.driver",
            "the GPU operator is told to install drivers, but target.provider_hints.gpu_driver says they "
            "are preinstalled; two drivers on one node break it",
            "set platform.gpu_operator.driver to auto or preinstalled",
        )


def _gpu_capacity_issues(kind: str, pools: list[NodePool], asking: list[tuple[str, Any]]) -> Iterator[Issue]:
    biggest = max(pools, key=lambda p: p.gpu.count)
    for role_name, worker in asking:
        role = "workers" if role_name == "worker" else role_name  # the spec field of that role
        if biggest.gpu.count == 0:
            yield at(
                f"serving.{role}.gpus",
                f"each {role_name} replica asks for {worker.gpus} GPU(s) but no node pool of target "
                f"{kind} has GPUs",
                f"add a GPU node pool (gpu.count >= {worker.gpus}) to target.node_pools, or set "
                f"serving.{role}.gpus to 0 and serving.engine to mocker",
            )
        elif worker.gpus > biggest.gpu.count:
            yield at(
                f"serving.{role}.gpus",
                f"each {role_name} replica asks for {worker.gpus} GPUs but the largest node pool "
                f"({biggest.name}) has {biggest.gpu.count} per node",
                f"set serving.{role}.gpus to {biggest.gpu.count} or less, or use an instance type with "
                f"{worker.gpus} GPUs",
            )
    wanted = sum(w.replicas * w.gpus for _, w in asking)
    capacity = sum(p.max * p.gpu.count for p in pools)
    if 0 < capacity < wanted and all(w.gpus <= biggest.gpu.count for _, w in asking):
        yield at(
            "target.node_pools",
            f"the graph needs {wanted} GPUs but the node pools hold at most {capacity} "
            "(max nodes x GPUs per node)",
            "raise max of a GPU node pool, or lower serving replicas or gpus",
        )


# --- loading --------------------------------------------------------------------------------------------


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and validate a YAML spec file; any problem raises one SpecError listing every issue."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SpecError(
            [
                SpecIssue(
                    ROOT, f"cannot read the spec file: {reason}", "check the path; examples: infra/targets/"
                )
            ],
            source=source,
        ) from None
    data, lines = _load_yaml(text, source)
    return _parse(data, source, lines)


def parse_spec(data: Any, source: str | None = None) -> DeploymentSpec:
    """Validate an already-loaded mapping (e.g. a flow parameter) into a DeploymentSpec."""
    return _parse(data, source, {})


def _parse(data: Any, source: str | None, lines: dict[str, int]) -> DeploymentSpec:
    if not isinstance(data, Mapping):
        raise SpecError([_not_mapping(data, 1)], source=source)
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as exc:
        issues = [found for err in exc.errors() for found in _translate_safely(err, lines)]
        raise SpecError(list(dict.fromkeys(issues)), source=source) from None


def _not_mapping(data: Any, line: int) -> SpecIssue:
    what = "empty" if data is None else f"a {_type_name(data)}"
    return SpecIssue(
        ROOT,
        f"the top level of the spec is {what}, not a mapping (line {line})",
        f"write the spec as key: value lines, starting with apiVersion: {API_VERSION}",
    )


def _load_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML keeping the node tree, so issues can name their line and duplicate keys are caught."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml when present: 10x faster
    try:
        node = loader.get_single_node()
        if node is None:
            issue_ = SpecIssue(
                ROOT, "the spec file is empty", "write a spec; start from infra/targets/local.yaml"
            )
            raise SpecError([issue_], source=source)
        lines: dict[str, int] = {}
        duplicates = list(_index(node, "", lines))
        if duplicates:
            raise SpecError(duplicates, source=source)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown line"
        # Only the parser's description, never the offending text: that line might hold a secret.
        what = ", ".join(t for t in (getattr(exc, "context", None), getattr(exc, "problem", None)) if t)
        what = what or type(exc).__name__
        fix = f"fix the YAML at {where}: check the indentation, ': ' after keys and matching quotes"
        raise SpecError(
            [SpecIssue(ROOT, f"the file is not valid YAML: {what} ({where})", fix)], source=source
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, Mapping):
        raise SpecError([_not_mapping(data, node.start_mark.line + 1)], source=source)
    return data, lines


def _index(node: yaml.Node, path: str, lines: dict[str, int]) -> Iterator[SpecIssue]:
    """Record the line of every path under ``node``; yield an issue per duplicate key."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                continue
            child, line = _join(path, key.value), key.start_mark.line + 1
            if key.value in seen:
                yield SpecIssue(
                    child,
                    f"key {key.value!r} appears twice (lines {seen[key.value]} and {line}); YAML would "
                    "silently keep the last one",
                    "keep only one of them",
                )
            seen[key.value] = lines[child] = line
            yield from _index(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[f"{path}[{i}]"] = item.start_mark.line + 1
            yield from _index(item, f"{path}[{i}]", lines)


# --- translating pydantic errors into SpecIssues ----------------------------------------------------------


def _join(base: str, part: str | int) -> str:
    """Extend a dotted path: `a.b`, `a[0]`, and `a["x.y/z"]` for keys that are not plain words."""
    if isinstance(part, int):
        return f"{base}[{part}]"
    if base and not re.match(r"^[A-Za-z_][\w-]*$", part):
        return f'{base}["{part}"]'
    return f"{base}.{part}" if base else part


def _line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of ``path``, or of its nearest written ancestor (a missing field: its parent)."""
    while path:
        if path in lines:
            return lines[path]
        path = path[: max(path.rfind("."), path.rfind("["), 0)]
    return None


def _translate_safely(err: Any, lines: dict[str, int]) -> list[SpecIssue]:
    """_translate, falling back to pydantic's own words: a bad spec must never crash the loader."""
    try:
        return _translate(err, lines)
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        path = ".".join(str(p) for p in err.get("loc", ())) or ROOT
        return [SpecIssue(path, str(err.get("msg", "invalid value")), f"correct {path}")]


def _translate(err: Any, lines: dict[str, int]) -> list[SpecIssue]:
    loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # the error is about a mapping key, not its value
    parts, tp, field = _walk(loc[:-1] if is_key else loc)
    path = ""
    for part in parts:
        path = _join(path, part)
    if err["type"] == "dynadeploy_rules":
        found = [(_join_rel(path, rel), problem, fix) for rel, problem, fix in err["ctx"]["issues"]]
    else:
        problem, fix = _explain(err, path, parts, tp, field, is_key)
        where = f"{path}.kind" if err["type"].startswith("union_tag") else path or ROOT
        found = [(where, problem, fix.replace("{path}", path or ROOT))]
    out = []
    for where, problem, fix in found:
        line = _line_of(where, lines)
        out.append(SpecIssue(where, f"{problem} (line {line})" if line else problem, fix))
    return out


def _join_rel(base: str, rel: str) -> str:
    if not rel:
        return base or ROOT
    return f"{base}{rel}" if rel.startswith("[") or not base else f"{base}.{rel}"


_TYPES = {
    "string": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "dict": "a mapping (key: value lines)",
    "model": "a mapping (key: value lines)",
    "model_attributes": "a mapping (key: value lines)",
    "list": "a list",
}
_BOUNDS = {  # error type -> (problem phrase, fix phrase before/after the limit)
    "greater_than_equal": ("at least", "to {limit} or more"),
    "greater_than": ("more than", "to more than {limit}"),
    "less_than_equal": ("at most", "to {limit} or less"),
    "less_than": ("less than", "to less than {limit}"),
}


def _explain(err: Any, path: str, parts: list[Any], tp: Any, field: FieldInfo | None, is_key: bool):
    """(problem, fix) for one pydantic error; values at secret-looking paths are never shown."""
    kind, ctx, raw = err["type"], err.get("ctx") or {}, err.get("input")
    name = str(parts[-1]) if parts else ROOT
    if len(parts) > 1 and isinstance(parts[-1], int):
        name = f"{parts[-2]}[{parts[-1]}]"  # a list item: "steps[1]", not "1"
    value = _shown(raw, path)
    if kind == "dynadeploy":
        return ctx["problem"], ctx["fix"]
    if kind == "invalid_key" or (is_key and kind == "string_type"):
        return f"key {raw!r} is not a string", f'quote the key ("{raw}": ...), or remove it'
    if kind == "extra_forbidden":
        parent = _walk(tuple(err["loc"])[:-1])[1]
        allowed = [i.alias or k for k, i in parent.model_fields.items()] if _is_model(parent) else []
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            return f"unknown field {name!r}", f"did you mean {close[0]!r}? rename {name!r} to {close[0]!r}"
        return (
            f"unknown field {name!r}",
            f"remove {name!r}; the fields allowed here are: {', '.join(allowed)}",
        )
    if kind == "missing":
        example = field.examples[0] if field is not None and field.examples else "<value>"
        return f"required field {name!r} is missing", f"add {path}: {example}"
    if kind == "literal_error":
        allowed = [str(a) for a in get_args(tp)] if get_origin(tp) is Literal else [str(ctx.get("expected"))]
        return f"{value} is not one of: {', '.join(allowed)}", f"set {path} to {_one_of(raw, allowed)}"
    if kind == "union_tag_invalid":
        problem = f"unknown target kind {_shown(ctx.get('tag'), path)}"
        return problem, f"set {path}.kind to {_one_of(ctx.get('tag'), list(TARGET_KINDS))}"
    if kind == "union_tag_not_found":
        return f"{path} has no kind", f"add {path}.kind: one of {', '.join(TARGET_KINDS)}"
    if kind.endswith(("_type", "_parsing")) and kind.rsplit("_", 1)[0] in _TYPES:
        want = _TYPES[kind.rsplit("_", 1)[0]]
        quote = (
            " (quote it: YAML reads 1.30 as a number and yes/no as booleans)" if want == "a string" else ""
        )
        if want == "a string" and "env" in parts[:-1]:
            quote = ", or a secret reference {secret_block: <block-name>}"
        return f"expected {want}, got {_type_name(raw)} {value}", f"set {path} to {want}{quote}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        words, fix = _BOUNDS[kind]
        extra = (
            ", or use topology agg" if parts[:2] in (["serving", "prefill"], ["serving", "decode"]) else ""
        )
        return f"{name} must be {words} {limit}, got {value}", f"set {path} {fix.format(limit=limit)}{extra}"
    if kind == "too_short":
        need = ctx.get("min_length")
        return (
            f"{name} needs at least {need} item(s), got {ctx.get('actual_length', 0)}",
            f"add at least {need} item(s) to {path}",
        )
    if kind in ("string_too_long", "too_long"):
        return f"{name} is too long (at most {ctx.get('max_length')})", f"shorten {path}"
    if kind == "string_pattern_mismatch" and is_key:
        good = re.sub(r"\W", "_", name).lstrip("0123456789") or "NAME"
        return (
            f"{name!r} is not a valid key here (letters, digits and '_', not starting with a digit)",
            f"rename {name!r} to e.g. {good!r}",
        )
    if kind == "string_pattern_mismatch":
        return (
            f"{value} is not a valid value for {name}",
            f"set {path} to a value matching {ctx.get('pattern')}",
        )
    return f"{err.get('msg')} (got {value})", f"correct {path or 'the spec'}"


def _walk(loc: tuple[Any, ...]) -> tuple[list[Any], Any, FieldInfo | None]:
    """The user's path parts for a pydantic loc (union tags dropped), the type there, and its field."""
    parts: list[Any] = []
    tp: Any = DeploymentSpec
    field: FieldInfo | None = None
    tagged = False
    for item in loc:
        if tagged:  # this element is the tag of a discriminated union: descend into that member
            tp, tagged = _unwrap(_member(tp, item))
            continue
        # A number is a list index only in a list; elsewhere it is a mapping key YAML read as a number.
        parts.append(item if get_origin(tp) is list else str(item))
        field = None
        if _is_model(tp) and isinstance(item, str):
            field = next((i for k, i in tp.model_fields.items() if item in (k, i.alias)), None)
            tp, tagged = _unwrap(field.annotation) if field else (None, False)
            tagged = tagged or bool(field and field.discriminator)
        elif get_origin(tp) is list and isinstance(item, int):
            tp, tagged = _unwrap(get_args(tp)[0])
        elif get_origin(tp) is dict:
            tp, tagged = _unwrap(get_args(tp)[1])
        else:
            tp, tagged = None, False
    return parts, tp, field


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """Strip Annotated and Optional; also say whether what is left is a discriminated union."""
    tagged = False
    while True:
        if get_origin(tp) is Annotated:
            base, *meta = get_args(tp)
            tagged = tagged or any(
                isinstance(m, Discriminator) or getattr(m, "discriminator", None) for m in meta
            )
            tp = base
        elif (
            get_origin(tp) in (Union, UnionType)
            and len(members := [a for a in get_args(tp) if a is not type(None)]) == 1
        ):
            tp = members[0]
        else:
            return tp, tagged


def _member(union: Any, tag: Any) -> Any:
    for member in get_args(union):
        if get_origin(member) is Annotated:
            if any(isinstance(m, Tag) and m.tag == tag for m in get_args(member)[1:]):
                return get_args(member)[0]
        elif member is TARGET_CLASSES.get(tag):
            return member
    return None


def _one_of(raw: Any, allowed: list[str]) -> str:
    """'one of: a, b, c', with a did-you-mean when the bad value is close to one of them."""
    if len(allowed) == 1:
        return allowed[0]
    close = difflib.get_close_matches(str(raw), allowed, n=1, cutoff=0.6)
    return f"one of: {', '.join(allowed)}" + (f" (did you mean {close[0]}?)" if close else "")


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _shown(value: Any, path: str) -> str:
    """The value for a message, unless it sits at a secret-looking path or looks like a token."""
    words = set(re.split(r"[^A-Z]+", path.upper()))
    text = repr(value)
    if _HF_TOKEN.search(text) or words & (_SECRET_WORDS | {"ENV"}):
        return "(value not shown)"
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    names = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
