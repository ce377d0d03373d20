"""Pure: the set of processes a local deployment should run, rendered from the spec.

No I/O here. The caller resolves everything that needs the machine (ports, the cached model path,
the engine chosen after GPU detection, the python executable, the revision number) and passes it in;
this module turns that into `Program`s that the supervisor gateway runs. Worker program names carry
the revision (``worker-r3-0``) so a new revision's workers can serve beside the old ones during a
rollout; the frontend and the discovery services are not per revision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runtime.render import kv_events

if TYPE_CHECKING:  # only the type: plan stays free of anything that touches the machine
    from runtime.local.paths import DeploymentPaths

DEPLOYMENT_ENV = "DYNADEPLOY_DEPLOYMENT"  # the deployment's name, for people reading a process list
IDENTITY_ENV = "DYNADEPLOY_DEPLOYMENT_ID"  # DeploymentPaths.identity: what inventory/teardown match on
WORKER_ROLES = ("worker", "prefill", "decode")


@dataclass(frozen=True)
class Program:
    name: str
    role: str  # frontend | worker | prefill | decode | etcd | nats
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    revision: int | None = None
    port: int | None = None  # HTTP port (frontend) or system/health port (workers)
    stop_wait_s: int = 20

    def fingerprint(self) -> dict:
        """What identifies the program's behaviour, ports excluded (for no-op detection)."""
        skip = {"DYN_SYSTEM_PORT"}
        return {"role": self.role, "command": list(self.command),
                "env": {k: v for k, v in sorted(self.env.items()) if k not in skip}}


@dataclass(frozen=True)
class LocalContext:
    """Machine-dependent inputs, resolved by the effects layer."""

    paths: DeploymentPaths
    python: str
    host: str
    frontend_port: int
    model_path: str
    engine: str  # mocker | vllm
    discovery: str  # file | etcd
    etcd_port: int | None = None
    etcd_peer_port: int | None = None
    nats_port: int | None = None
    etcd_binary: str = "etcd"
    nats_binary: str = "nats-server"


def worker_slots(spec) -> list[tuple[str, int, object]]:
    """(role, index, role spec) for every worker process the topology asks for."""
    topology = spec.serving.topology
    roles = ("prefill", "decode") if topology.startswith("disagg") else ("worker",)
    slots = []
    for role in roles:
        role_spec = getattr(spec.serving, "workers" if role == "worker" else role)
        slots.extend((role, i, role_spec) for i in range(role_spec.replicas))
    return slots


def worker_program_names(spec, revision: int) -> list[str]:
    return [f"{role}-r{revision}-{i}" for role, i, _ in worker_slots(spec)]


def identity_env(spec, ctx: LocalContext) -> dict[str, str]:
    """The markers inventory/teardown match on: the name for people, the id (one deployment in one
    state dir for one user) for anything that signals or reports a process."""
    return {DEPLOYMENT_ENV: spec.name, IDENTITY_ENV: ctx.paths.identity}


def base_env(spec, ctx: LocalContext) -> dict[str, str]:
    env = {
        **identity_env(spec, ctx),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",  # the model is already in the cache; never reach for the hub at serve time
        "DYN_LOG": "info",
        # Advertise loopback only; without these Dynamo advertises the host's external address.
        "DYN_TCP_RPC_HOST": ctx.host,
        "DYN_EVENT_PLANE_HOST": ctx.host,
        "DYN_TCP_RESPONSE_STREAM_HOST": ctx.host,
    }
    if ctx.discovery == "file":
        env["DYN_FILE_KV"] = str(ctx.paths.kv)
    else:
        env["ETCD_ENDPOINTS"] = f"http://{ctx.host}:{ctx.etcd_port}"
        env["NATS_SERVER"] = f"nats://{ctx.host}:{ctx.nats_port}"
    env.update({k: str(v) for k, v in spec.serving.env.items()})
    return env


def _discovery_args(ctx: LocalContext) -> list[str]:
    if ctx.discovery == "file":
        return ["--discovery-backend", "file"]
    return ["--discovery-backend", "etcd", "--request-plane", "nats", "--event-plane", "nats"]


def frontend_program(spec, ctx: LocalContext) -> Program:
    cmd = [ctx.python, "-m", "dynamo.frontend", *_discovery_args(ctx),
           "--http-host", ctx.host, "--http-port", str(ctx.frontend_port),
           "--router-mode", spec.router_mode()]
    return Program("frontend", "frontend", tuple(cmd), base_env(spec, ctx), port=ctx.frontend_port)


def worker_programs(spec, ctx: LocalContext, revision: int, ports: dict[str, int]) -> list[Program]:
    programs = []
    gpu_cursor = 0
    for role, index, role_spec in worker_slots(spec):
        name = f"{role}-r{revision}-{index}"
        env = base_env(spec, ctx) | {k: str(v) for k, v in role_spec.env.items()}
        env |= {
            "DYN_SYSTEM_HOST": ctx.host,
            "DYN_SYSTEM_PORT": str(ports[name]),
            # Worker /health turns 200 only once its generate endpoint serves.
            "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS": json.dumps(["generate"]),
        }
        served = spec.model.served()
        if ctx.engine == "vllm":
            gpus = max(1, role_spec.gpus)
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(gpu_cursor, gpu_cursor + gpus))
            gpu_cursor += gpus
            cmd = [ctx.python, "-m", "dynamo.vllm", "--model", ctx.model_path, "--served-model-name", served]
        else:
            cmd = [ctx.python, "-m", "dynamo.mocker", "--model-path", ctx.model_path, "--model-name", served,
                   "--speedup-ratio", str(spec.serving.mocker.speedup_ratio)]
        cmd += _discovery_args(ctx)
        if role in ("prefill", "decode"):
            cmd += ["--disaggregation-mode", role]
        # KV events for the KV router; workers share this host, so each gets its own ipc endpoint.
        cmd += kv_events.worker_args(spec.router_mode(), ctx.engine, role, given=role_spec.engine_args,
                                     endpoint=kv_events.ipc_endpoint(spec.name, name))
        cmd += list(role_spec.engine_args)
        programs.append(Program(name, role, tuple(cmd), env, revision=revision, port=ports[name]))
    return programs


def discovery_programs(spec, ctx: LocalContext) -> list[Program]:
    """etcd + NATS when the spec asks for that discovery mode (file discovery needs neither)."""
    if ctx.discovery != "etcd":
        return []
    h = ctx.host
    etcd = Program("etcd", "etcd", (
        ctx.etcd_binary, "--name", "dynadeploy", "--data-dir", str(ctx.paths.etcd_data),
        "--listen-client-urls", f"http://{h}:{ctx.etcd_port}", "--advertise-client-urls", f"http://{h}:{ctx.etcd_port}",
        "--listen-peer-urls", f"http://{h}:{ctx.etcd_peer_port}",
        "--initial-advertise-peer-urls", f"http://{h}:{ctx.etcd_peer_port}",
        "--initial-cluster", f"dynadeploy=http://{h}:{ctx.etcd_peer_port}",
    ), identity_env(spec, ctx), port=ctx.etcd_port)
    nats = Program("nats", "nats", (
        ctx.nats_binary, "-js", "-a", h, "-p", str(ctx.nats_port), "-sd", str(ctx.paths.nats_data),
    ), identity_env(spec, ctx), port=ctx.nats_port)
    return [etcd, nats]
