"""The spec's rules across sections: what no single section can check by itself.

Run by ``DeploymentSpec`` (runtime/spec/models.py) once every section is valid by itself; paths are from
the top of the spec. Rules among the fields of one section live with that section's model. Region and
instance-type names are checked against the clouds' data (infra/clouds.yaml, through
runtime.domain.capabilities). Pure: stdlib, pydantic, runtime.domain.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from runtime.domain import capabilities, secret_shapes
from runtime.spec.base import BUILTIN_LLM, BUILTIN_MODEL, IMAGE, Issue, at
from runtime.spec.cloud import NodePool
from runtime.spec.sections import SHA, ModelSpec, PlatformSpec
from runtime.spec.serving import ServingSpec
from runtime.spec.targets import LocalTarget, Target, node_pools

__all__ = ["cross_issues"]


def cross_issues(
    target: Target, platform: PlatformSpec, model: ModelSpec, serving: ServingSpec
) -> Iterator[Issue]:
    """Rules that need two sections at once; paths are from the top of the spec."""
    # Every target, local included: a branch or tag moves, so a redeploy, a restarted worker or a
    # rollback would load other weights than the revision ledger records. (The built-in model has no
    # revisions; ModelSpec refuses one.)
    if (
        not model.is_builtin()
        and not model.is_builtin_llm()
        and model.revision is not None
        and not SHA.match(model.revision)
    ):
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
    if (
        isinstance(target, LocalTarget)
        and target.gpus == "none"
        and serving.engine == "vllm"
        and not cpu_vllm
    ):
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
        types = (
            [("instance_type", target.instance_type)]
            if target.kind == "ecs"
            else [
                (f"node_pools[{i}].instance_type", p.instance_type) for i, p in enumerate(target.node_pools)
            ]
        )
        yield from _cloud_issues(target.kind, where, getattr(target, where), types)
    pools = node_pools(target)
    asking = [(r, w) for r, w in serving.roles() if w.gpus > 0]
    if pools is not None and asking:
        yield from _gpu_capacity_issues(target.kind, pools, asking)
    if pools is not None:
        yield from _shared_cache_issues(target.kind, pools, model)
    if target.runs_on_kubernetes:
        image = IMAGE.match(serving.image)  # always a match: the serving section validated the image
        tag = (image.group("tag") if image else None) or ""
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


def _gpu_capacity_issues(
    kind: str, pools: list[NodePool], asking: Sequence[tuple[str, Any]]
) -> Iterator[Issue]:
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
