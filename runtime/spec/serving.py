"""The spec's serving section: the graph's topology, engine, image, worker roles, and how clients reach it.

Pure: stdlib, pydantic, runtime.domain. Each model checks the rules among its own fields in ``_issues()``;
rules that need another section too (the target, the model) are in runtime/spec/rules.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple

from pydantic import Field, model_validator

from runtime.domain import naming
from runtime.spec.base import AGG, DEFAULT_IMAGE, ROUTER, DnsLabel, Image, Issue, NonBlank, StrictModel, at
from runtime.spec.secret_refs import HF_TOKEN, SECRET_FIX, EnvMap, SecretRef, env_issues

__all__ = [
    "AutoscalingSpec",
    "Component",
    "FrontendSpec",
    "GatewayRoute",
    "IngressRoute",
    "MockerSpec",
    "RouteSpec",
    "RouterMode",
    "ServingSpec",
    "Topology",
    "VllmSpec",
    "WorkerSpec",
]

Topology = Literal["agg", "agg_router", "disagg", "disagg_router"]
RouterMode = Literal["round-robin", "random", "kv"]
Engine = Literal["vllm", "mocker"]  # the engine that runs: serving.engine with "auto" resolved
# Flags dynadeploy derives from the spec; repeating them in engine_args would fight the renderer.
_RESERVED_ARGS = {"--model", "--model-path", "--served-model-name", "--disaggregation-mode",
                  "--is-prefill-worker", "--is-decode-worker", "--discovery-backend",
                  "--store-kv"}  # fmt: skip
_ENV = "Environment variables: a literal string, or a secret reference {secret_block: ...} / {env: ...}."


class AutoscalingSpec(StrictModel):
    """An HPA for one worker role (Kubernetes targets), through the Dynamo operator's scaling adapter."""

    min_replicas: int = Field(default=1, ge=1, le=256, description="Fewest replicas the HPA keeps.")
    max_replicas: int = Field(ge=1, le=256, examples=[4], description="Most replicas the HPA adds.")
    target_cpu_percent: int = Field(
        default=80, ge=1, le=100, description="Average CPU use (%) the HPA aims for."
    )

    def _issues(self) -> Iterator[Issue]:
        if self.min_replicas > self.max_replicas:
            yield at(
                "max_replicas",
                f"max_replicas {self.max_replicas} is less than min_replicas {self.min_replicas}",
                f"set max_replicas to {self.min_replicas} or more",
            )


class WorkerSpec(StrictModel):
    """One worker role: the aggregated workers, prefill or decode."""

    replicas: int = Field(default=1, ge=1, le=256, description="Worker processes (pods) of this role.")
    gpus: int = Field(
        default=1, ge=0, le=64, description="GPUs per replica (0: none, the mocker or a CPU vLLM)."
    )
    engine_args: list[str] = Field(
        default_factory=list,
        description=(
            "Extra engine command-line flags, e.g. [--max-model-len, '4096']; not the flags derived from the spec."
        ),
    )
    env: EnvMap = Field(default_factory=dict, description=_ENV + " Overlays serving.env.")
    autoscaling: AutoscalingSpec | None = Field(
        None, description=("An HPA for this role (Kubernetes targets). Unset: replicas stay as set.")
    )

    def _issues(self) -> Iterator[Issue]:
        yield from env_issues(self.env, "env")
        for i, arg in enumerate(self.engine_args):
            flag = arg.split("=", 1)[0]
            if flag in _RESERVED_ARGS:
                yield at(
                    f"engine_args[{i}]",
                    f"{flag} is set by dynadeploy from the spec",
                    f"remove {flag} from engine_args; set model.id, model.served_name or serving.topology",
                )
            elif HF_TOKEN.search(arg):
                yield at(
                    f"engine_args[{i}]",
                    "an engine argument holds an inline access token (not shown here)",
                    f"remove it and use model.token; {SECRET_FIX}",
                )


class FrontendSpec(StrictModel):
    """The OpenAI-compatible HTTP frontend."""

    replicas: int = Field(
        default=1, ge=1, le=64, description="Frontend replicas (the local target runs exactly 1)."
    )


class MockerSpec(StrictModel):
    """Dynamo's mocker engine: simulated inference, no GPU and no weights."""

    speedup_ratio: float = Field(
        default=10.0,
        gt=0,
        le=10000,
        description=("How much faster than real time the mocker runs (>1: faster)."),
    )


class VllmSpec(StrictModel):
    """vLLM settings. device cpu: a CPU vLLM (the separate runtime `make vllm-cpu` builds) on a host
    without a GPU, asked for explicitly; the fields below are its defaults, each overridable here or by
    the same flag in a role's engine_args (which wins). They are not applied on a GPU."""

    device: Literal["gpu", "cpu"] = Field(
        "gpu", description=("gpu, or cpu: a CPU vLLM on the local target (needs engine: vllm and gpus: 0).")
    )
    # bf16 adds ~20 s to a CPU first request
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="CPU: --dtype.")
    # torch.compile adds ~25 s to a CPU start
    enforce_eager: bool = Field(True, description="CPU: --enforce-eager (no torch.compile: a faster start).")
    max_model_len: int = Field(
        default=512, ge=16, le=1_048_576, description="CPU: --max-model-len, in tokens."
    )
    kv_cache_gib: int = Field(
        default=1, ge=1, le=1024, description="CPU: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."
    )

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

    name: DnsLabel = Field(description="The Gateway's name.")
    namespace: DnsLabel | None = Field(
        None, description="The Gateway's namespace. Unset: the graph's namespace."
    )
    section_name: DnsLabel | None = Field(
        None, description=("One listener of the Gateway. Unset: every listener that allows the route.")
    )
    hostnames: list[NonBlank] = Field(
        default_factory=list,
        description=("Host names the route answers. Empty: every host the listener accepts."),
    )


class IngressRoute(StrictModel):
    """An Ingress served by ingress-nginx (canaries use its canary-weight annotations)."""

    class_name: DnsLabel = Field("nginx", description="IngressClass name.")
    host: NonBlank | None = Field(None, description="Host name the Ingress answers. Unset: any host.")
    port: int = Field(default=80, ge=1, le=65535, description="Port the ingress controller listens on.")


class RouteSpec(StrictModel):
    """How clients reach the graph through the cluster's own traffic layer (Kubernetes targets).
    A canary shifts real traffic by weight here; without a route it compares side by side only."""

    gateway: GatewayRoute | None = Field(None, description="A Gateway API HTTPRoute (set this or ingress).")
    ingress: IngressRoute | None = Field(None, description="An ingress-nginx Ingress (set this or gateway).")

    def _issues(self) -> Iterator[Issue]:
        if (self.gateway is None) == (self.ingress is None):
            yield at(
                "",
                "serving.route needs exactly one of gateway or ingress",
                "set serving.route.gateway: {name: <your Gateway>} (Gateway API) or serving.route.ingress: "
                "{class_name: nginx} (ingress-nginx)",
            )
        hosts = (
            [(f"gateway.hostnames[{i}]", h) for i, h in enumerate(self.gateway.hostnames)]
            if self.gateway
            else []
        )
        if self.ingress is not None and self.ingress.host is not None:
            hosts.append(("ingress.host", self.ingress.host))
        for path, host in hosts:
            if not naming.is_dns1123_subdomain(host.removeprefix("*.")):
                yield at(
                    path, f"{host!r} is not a host name", "use a lower-case DNS name such as llm.example.com"
                )

    def kind(self) -> Literal["gateway", "ingress"]:
        return "gateway" if self.gateway is not None else "ingress"


class ServingSpec(StrictModel):
    """The inference graph: topology, engine, image and worker roles."""

    topology: Topology = Field(
        "agg",
        description=(
            "agg: one worker role; agg_router: with a KV router (2+ workers); disagg: prefill and decode roles; "
            "disagg_router: with a KV router."
        ),
    )
    engine: Literal["auto", "vllm", "mocker"] = Field(
        "auto",
        description=(
            "auto: vLLM where there are GPUs and model weights, else the mocker (decided at run time)."
        ),
    )
    image: Image = Field(
        DEFAULT_IMAGE,
        description=("Runtime container image, pinned by tag or digest (Kubernetes and ecs targets)."),
    )
    router_mode: RouterMode | None = Field(
        None,
        description=("How the frontend picks a worker. Unset: kv for *_router topologies, else round-robin."),
    )
    frontend: FrontendSpec = Field(FrontendSpec(), description="The HTTP frontend.")
    workers: WorkerSpec | None = Field(
        None, description="The worker role of agg topologies (a default one when unset)."
    )
    prefill: WorkerSpec | None = Field(None, description="The prefill role; required by disagg topologies.")
    decode: WorkerSpec | None = Field(None, description="The decode role; required by disagg topologies.")
    mocker: MockerSpec = Field(MockerSpec(), description="Settings of the mocker engine.")
    vllm: VllmSpec | None = Field(
        None, description="vLLM settings. Unset: vLLM on GPUs with its own defaults."
    )
    env: EnvMap = Field(default_factory=dict, description=_ENV + " For every component.")
    route: RouteSpec | None = Field(
        None, description=("A Gateway API or ingress-nginx entry point (Kubernetes targets). Unset: none.")
    )

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
        yield from env_issues(self.env, "env")
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
                f"set serving.{role}.replicas to 2 or more, or use topology {topology.removesuffix('_router')}",
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
        for role, spec in (
            ("workers", self.workers),
            ("prefill", self.prefill),
            ("decode", self.decode),
        ):
            cpu = self.vllm is not None and self.vllm.device == "cpu"
            if self.engine == "vllm" and spec is not None and spec.gpus == 0 and not cpu:
                yield at(
                    f"{role}.gpus",
                    "engine vllm needs at least 1 GPU per worker, got 0",
                    f"set serving.{role}.gpus to 1 or more, or serving.engine to mocker "
                    "(or serving.vllm.device: cpu for a CPU vLLM on the local target)",
                )
            elif cpu and spec is not None and spec.gpus > 0:
                yield at(
                    f"{role}.gpus",
                    f"serving.vllm.device is cpu but each {role} replica asks for {spec.gpus} GPU(s)",
                    f"set serving.{role}.gpus to 0, or remove serving.vllm.device",
                )
        if self.vllm is not None and self.vllm.device == "cpu":
            if self.engine != "vllm":
                yield at(
                    "vllm.device",
                    f"serving.vllm.device is cpu but serving.engine is {self.engine}",
                    "set serving.engine to vllm (a CPU vLLM is only ever asked for explicitly)",
                )
            if topology.startswith("disagg"):
                yield at(
                    "topology",
                    f"topology {topology} moves KV cache between prefill and decode workers with NIXL, which the "
                    "CPU vLLM runtime (vllm-cpu 0.31.0) does not have",
                    "use topology agg or agg_router with serving.vllm.device: cpu, or run disagg on GPUs",
                )
