"""spec -> the DynamoGraphDeployment (nvidia.com/v1beta1) of one revision.

The shape lives in infra/templates/dgd (base.yaml + one file per topology); this module only fills
in what depends on the spec and the provider: the engine's command line, replicas, GPU limits,
env (the spec's literals, secret references as secretKeyRefs, provider env), tolerations, the
shell prelude some providers need (GKE's driver paths) and the scaling adapter switch.

The model is loaded from the cache PVC by path, the exact snapshot the download Job fetched
(``<mount>/hub/models--<org>--<name>/snapshots/<revision>``), so every replica and every rollback
loads the same weights without asking the Hub. The built-in model has no download: the kube target
expects a Hugging Face model on real clusters; the built-in one only serves where something has put
its tokenizer files under ``<mount>/dynadeploy/tiny-mock`` (the test simulator does).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Any

from runtime.domain import naming
from runtime.errors import NotSupportedError
from runtime.render import common, kv_events, templates
from runtime.spec import BUILTIN_MODEL, node_pools
from runtime.spec.serving import Engine

if TYPE_CHECKING:  # pragma: no cover
    from runtime.domain.capabilities import Capabilities
    from runtime.spec import Component, DeploymentSpec

API_VERSION = "nvidia.com/v1beta1"
KIND = "DynamoGraphDeployment"
ENGINE_MODULES = {"vllm": "dynamo.vllm", "mocker": "dynamo.mocker"}
_SEMVER_TAG = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


def resolve_engine(spec: DeploymentSpec, engine: Engine | None = None) -> Engine:
    """The engine the graph runs: ``engine`` when given (the caller knows the cluster has no GPUs),
    else the spec's choice, where ``auto`` means vLLM unless a role asks for no GPU or the model is
    the tokenizer-only built-in one."""
    return engine or spec.engine(gpus_available=True)


def model_key(model_id: str) -> str:
    """``Qwen/Qwen3-0.6B`` -> ``Qwen--Qwen3-0.6B`` (as the local cache and the Hub's cache name it)."""
    return model_id.replace("/", "--")


def model_path(spec: DeploymentSpec, mount: str = common.MODEL_MOUNT) -> str:
    """Where a container finds the pinned model snapshot on the cache volume mounted at ``mount``."""
    if spec.model.is_builtin():
        return f"{mount}/{BUILTIN_MODEL}"
    return f"{mount}/hub/models--{model_key(spec.model.id)}/snapshots/{spec.model.revision}"


def worker_gpus(spec: DeploymentSpec, component: Component, engine: Engine | None = None) -> int:
    """GPUs one replica of ``component`` requests: the spec's count for vLLM; the mocker needs none."""
    return component.gpus if resolve_engine(spec, engine) == "vllm" and component.role != "frontend" else 0


def total_gpus(spec: DeploymentSpec, engine: Engine | None = None) -> int:
    """GPUs the rendered graph requests in all (what preflight must find free)."""
    return sum(c.replicas * worker_gpus(spec, c, engine) for c in spec.components())


def render_dgd(
    spec: DeploymentSpec,
    *,
    revision: int,
    image: str | None = None,
    provider: Capabilities,
    name: str | None = None,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """The DGD of ``spec`` at ``revision``; ``name`` overrides the graph name (a canary beside the
    stable graph), ``image`` the runtime image (a revision being restored), ``engine`` the engine."""
    namespace = common.namespace_of(spec)
    if int(spec.platform.dynamo_version.split(".", 1)[0]) < 1:
        raise NotSupportedError(
            f"Dynamo {spec.platform.dynamo_version} operators serve only v1alpha1 graphs; dynadeploy "
            "renders nvidia.com/v1beta1 (Dynamo 1.x)",
            hint="set platform.dynamo_version to 1.x (the 0.x platform charts can still be installed)",
        )
    engine = resolve_engine(spec, engine)
    topology = spec.serving.topology
    source = f"infra/templates/dgd/{topology}.yaml"
    base = templates.load("templates/dgd/base.yaml")
    overlay = templates.load(f"templates/dgd/{topology}.yaml")
    engine_defaults = (overlay.pop("engineArgs", None) or {}).get(engine, {})
    image = image or spec.serving.image

    graph_values = {
        "name": name or naming.dgd_name(spec),
        "namespace": namespace,
        "annotations": {
            common.SPEC_HASH_ANNOTATION: naming.spec_hash(spec),
            common.REVISION_ANNOTATION: str(revision),
        },
    }
    graph = templates.fill(base["graph"], graph_values, "infra/templates/dgd/base.yaml")
    common.with_labels(graph, common.revision_labels(spec, revision))
    graph = templates.merge(graph, {k: v for k, v in overlay.items() if k != "spec"})

    by_role = {c.role: c for c in spec.components()}
    written = overlay.get("spec", {}).get("components") or []
    if sorted(c.get("type", "") for c in written) != sorted(by_role):
        raise NotSupportedError(
            f"{source} lists components of types {[c.get('type') for c in written]}, but topology "
            f"{topology} has roles {list(by_role)}",
            hint=f"list one component per role ({', '.join(by_role)}) in {source}",
        )
    components = []
    for item in written:
        component = by_role[item["type"]]
        kind = "frontend" if component.role == "frontend" else "worker"
        merged = dict(
            item, podTemplate=templates.merge(base[kind]["podTemplate"], item.get("podTemplate", {}))
        )
        components.append(
            _component(spec, merged, component, engine, engine_defaults, image, provider, source)
        )
    graph.setdefault("spec", {})["components"] = components
    return graph


def _component(
    spec: DeploymentSpec,
    item: dict[str, Any],
    component: Component,
    engine: Engine,
    engine_defaults: dict[str, list[str]],
    image: str,
    provider: Capabilities,
    source: str,
) -> dict[str, Any]:
    role = component.role
    gpus = worker_gpus(spec, component, engine)
    worker = next((w for r, w in spec.serving.roles() if r == role), None)
    autoscaling = worker.autoscaling if worker is not None else None
    replicas = component.replicas
    if autoscaling is not None:
        replicas = min(max(replicas, autoscaling.min_replicas), autoscaling.max_replicas)
    command, args = _command(spec, component, engine, engine_defaults.get(role, []))
    values = {
        "replicas": replicas,
        "image": image,
        "command": command,
        "args": args,
        "routerMode": spec.router_mode(),
        "envFrom": common.token_env_from(spec),
        "modelMount": common.MODEL_MOUNT,
        "modelCachePvc": naming.model_cache_pvc_name(spec),
        "podLabels": common.role_labels(spec, role),
    }
    out = templates.fill(item, values, source)
    pod = out["podTemplate"].setdefault("spec", {})
    main = _main_container(pod, source)

    env = list(main.get("env") or [])
    if gpus:
        env = templates.upsert_named(
            env, [{"name": k, "value": v} for k, v in provider.gpu_worker.env.items()]
        )
        if provider.efa is not None:
            env = templates.upsert_named(env, [{"name": k, "value": v} for k, v in provider.efa.env.items()])
    env = templates.upsert_named(env, common.env_entries(spec, component.env))
    if env:
        main["env"] = env

    if gpus:
        resources = main.setdefault("resources", {})
        extra = {"nvidia.com/gpu": str(gpus)}
        if provider.efa is not None:
            efa = {provider.efa.resource: str(provider.efa.per_worker)}
            resources["requests"] = {**(resources.get("requests") or {}), **efa}
            extra.update(efa)
        resources["limits"] = {**(resources.get("limits") or {}), **extra}
        tolerations = _tolerations(spec, provider, pod.get("tolerations") or [])
        if tolerations:
            pod["tolerations"] = tolerations
        if provider.gpu_worker.shell_prelude:
            line = shlex.join([*main.get("command", []), *main.get("args", [])])
            main["command"] = ["/bin/sh", "-c"]
            main["args"] = ["; ".join([*provider.gpu_worker.shell_prelude, f"exec {line}"])]

    if autoscaling is not None:
        # The CRD's scalingAdapter is an empty object: present means on (an `enabled` key is pruned).
        # The adapter owns replicas from the first apply on: none is sent (the operator creates the
        # DGDSA at 1 replica and the HPA takes it from there). A redeploy keeps the live count
        # (KubeBackend._keep_adapter_replicas), so it never changes what the adapter set.
        out["scalingAdapter"] = {}
        out.pop("replicas", None)
    override = _runtime_version_override(spec, image)
    if override:
        out["runtimeVersionOverride"] = override
    return out


def _command(
    spec: DeploymentSpec, component: Component, engine: Engine, defaults: list[str]
) -> tuple[list[str] | None, list[str] | None]:
    """(command, args) of a worker; the frontend's come from the templates (None here)."""
    if component.role == "frontend":
        return None, None
    path, served = model_path(spec), spec.model.served()
    if engine == "vllm":
        args = ["--model", path, "--served-model-name", served]
    else:
        ratio = spec.serving.mocker.speedup_ratio
        args = ["--model-path", path, "--model-name", served, "--speedup-ratio", f"{ratio:g}"]
    if component.role in ("prefill", "decode"):
        args += ["--disaggregation-mode", component.role]
    given = {arg.split("=", 1)[0] for arg in component.engine_args if arg.startswith("--")}
    args += [arg for flag, group in _flag_groups(defaults) if flag not in given for arg in group]
    # What the KV router needs (Dynamo's agg_router / disagg_router examples): pod networks are private,
    # so every pod binds Dynamo's tcp://*:20080.
    args += kv_events.worker_args(spec.router_mode(), engine, component.role, given=component.engine_args)
    args += component.engine_args
    return ["python3", "-m", ENGINE_MODULES[engine]], args


def _flag_groups(args: list[str]) -> list[tuple[str, list[str]]]:
    """``[--a, 1, --b]`` -> ``[(--a, [--a, 1]), (--b, [--b])]``."""
    groups: list[tuple[str, list[str]]] = []
    for arg in args:
        if arg.startswith("--") or not groups:
            groups.append((arg.split("=", 1)[0], [arg]))
        else:
            groups[-1][1].append(arg)
    return groups


def _main_container(pod: dict[str, Any], source: str) -> dict[str, Any]:
    for container in pod.get("containers") or []:
        if container.get("name") == "main":
            return container
    raise NotSupportedError(
        f"a component of {source} has no container named main (the Dynamo operator requires it)",
        hint="name the engine container main in infra/templates/dgd/base.yaml",
    )


def _tolerations(spec: DeploymentSpec, provider: Capabilities, given: list[dict]) -> list[dict[str, Any]]:
    """Tolerations of a GPU worker: the provider's, plus the taints of the spec's GPU node pools."""
    out = list(given) + [dict(t) for t in provider.gpu_worker.tolerations]
    for pool in node_pools(spec.target) or []:
        if pool.gpu.count == 0:
            continue
        for taint in pool.taints:
            toleration = {"key": taint.key, "operator": "Equal" if taint.value else "Exists"}
            if taint.value:
                toleration["value"] = taint.value
            toleration["effect"] = taint.effect
            out.append(toleration)
        if pool.spot and provider.spot_toleration:
            out.append(dict(provider.spot_toleration))
    unique: list[dict[str, Any]] = []
    for toleration in out:
        covered = any(
            t.get("operator") == "Exists" and t.get("key") == toleration.get("key")
            and t.get("effect") in (None, toleration.get("effect"))
            for t in unique
        )  # fmt: skip
        if toleration not in unique and not covered:
            unique.append(toleration)
    return unique


def _runtime_version_override(spec: DeploymentSpec, image: str) -> str | None:
    """Dynamo 1.4+ needs the release spelled out when the image tag is not a semantic version."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return None if _SEMVER_TAG.match(tag) else spec.platform.dynamo_version
