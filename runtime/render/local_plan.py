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
    from runtime.spec.serving import WorkerSpec
    from runtime.targets.local.paths import DeploymentPaths

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

    def probe_port(self) -> int:
        """The port its health probe reaches (frontend HTTP, worker system port); etcd and NATS have none."""
        if self.port is None:
            raise ValueError(f"program {self.name} ({self.role}) has no port to probe")
        return self.port

    def fingerprint(self) -> dict:
        """What identifies the program's behaviour, ports excluded (for no-op detection)."""
        skip = {"DYN_SYSTEM_PORT"}
        return {
            "role": self.role,
            "command": list(self.command),
            "env": {k: v for k, v in sorted(self.env.items()) if k not in skip},
        }


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
    vllm_python: str | None = None  # the CPU vLLM runtime's interpreter (serving.vllm.device: cpu)


def worker_slots(spec) -> list[tuple[str, int, WorkerSpec]]:
    """(role, index, role spec) for every worker process the topology asks for."""
    topology = spec.serving.topology
    roles = ("prefill", "decode") if topology.startswith("disagg") else ("worker",)
    slots: list[tuple[str, int, WorkerSpec]] = []
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


def worker_port_names(spec, revision: int, engine: str) -> list[str]:
    """Ports a revision's workers need: their system ports (vLLM's KV events go over IPC, no port)."""
    return worker_program_names(spec, revision)


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
    cmd = [
        ctx.python,
        "-m",
        "dynamo.frontend",
        *_discovery_args(ctx),
        "--http-host",
        ctx.host,
        "--http-port",
        str(ctx.frontend_port),
        "--router-mode",
        spec.router_mode(),
    ]
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
        cpu = cpu_vllm(spec)
        if ctx.engine == "vllm" and cpu:
            env |= cpu_vllm_env(ctx.host, spec.serving.vllm.kv_cache_gib)
            env |= {k: str(v) for k, v in spec.serving.env.items()} | {
                k: str(v) for k, v in role_spec.env.items()
            }
            cmd = [
                ctx.vllm_python or ctx.python,
                "-m",
                "dynamo.vllm",
                "--model",
                ctx.model_path,
                "--served-model-name",
                served,
            ]
        elif ctx.engine == "vllm":
            gpus = max(1, role_spec.gpus)
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(gpu_cursor, gpu_cursor + gpus))
            gpu_cursor += gpus
            cmd = [ctx.python, "-m", "dynamo.vllm", "--model", ctx.model_path, "--served-model-name", served]
        else:
            cmd = [
                ctx.python,
                "-m",
                "dynamo.mocker",
                "--model-path",
                ctx.model_path,
                "--model-name",
                served,
                "--speedup-ratio",
                str(spec.serving.mocker.speedup_ratio),
            ]
        cmd += _discovery_args(ctx)
        if role in ("prefill", "decode"):
            cmd += ["--disaggregation-mode", role]
        # KV events for the KV router (runtime/render/kv_events.py); workers share this host, so each
        # publishes on an ipc socket of its own in the deployment's run dir (unique per state dir).
        cmd += kv_events.worker_args(
            spec.router_mode(),
            ctx.engine,
            role,
            given=role_spec.engine_args,
            endpoint=kv_events_endpoint(ctx.paths.run, name),
        )
        cmd += list(role_spec.engine_args)
        if ctx.engine == "vllm" and cpu:
            cmd += spec.serving.vllm.cpu_engine_args(list(role_spec.engine_args))
        programs.append(
            Program(
                name,
                role,
                tuple(cmd),
                env,
                revision=revision,
                port=ports[name],
                stop_wait_s=VLLM_STOP_WAIT_S if ctx.engine == "vllm" else 20,
            )
        )
    return programs


VLLM_STOP_WAIT_S = 30  # a vLLM worker drains for ~9 s after SIGTERM (2 cores), more under load


def cpu_vllm(spec) -> bool:
    """The spec asks for vLLM on the CPU (serving.vllm.device: cpu)."""
    vllm = spec.serving.vllm
    return spec.serving.engine == "vllm" and vllm is not None and vllm.device == "cpu"


def cpu_vllm_env(host: str, kv_cache_gib: int) -> dict[str, str]:
    """A CPU vLLM worker: offline, on loopback (vLLM otherwise picks the host's external address), no
    usage reports, no GPU; the KV cache size in GiB."""
    return {
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_HOST_IP": host,
        "VLLM_LOOPBACK_IP": host,
        "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
        # No pinning to core 0: two workers (old and new revision during a rollout) share the cores.
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "CUDA_VISIBLE_DEVICES": "",
    }


def kv_events_endpoint(run_dir, name: str) -> str:
    """Where a vLLM worker publishes its KV events: a ZMQ IPC socket in the deployment's run dir. vLLM
    binds only wildcard or IPC endpoints (it connects to tcp://host:port, and so does Dynamo's reader:
    no events), and a wildcard would listen on every interface; IPC keeps them off the network."""
    path = f"{run_dir}/{name}.kv-events"
    if len(path) >= 100:  # AF_UNIX paths stop at 107 bytes: a short, stable one for deep state dirs
        import hashlib

        path = f"/tmp/dynadeploy-{hashlib.sha256(path.encode()).hexdigest()[:16]}.kv-events"
    return f"ipc://{path}"


def discovery_programs(spec, ctx: LocalContext) -> list[Program]:
    """etcd + NATS when the spec asks for that discovery mode (file discovery needs neither)."""
    if ctx.discovery != "etcd":
        return []
    h = ctx.host
    etcd = Program(
        "etcd",
        "etcd",
        (
            ctx.etcd_binary,
            "--name",
            "dynadeploy",
            "--data-dir",
            str(ctx.paths.etcd_data),
            "--listen-client-urls",
            f"http://{h}:{ctx.etcd_port}",
            "--advertise-client-urls",
            f"http://{h}:{ctx.etcd_port}",
            "--listen-peer-urls",
            f"http://{h}:{ctx.etcd_peer_port}",
            "--initial-advertise-peer-urls",
            f"http://{h}:{ctx.etcd_peer_port}",
            "--initial-cluster",
            f"dynadeploy=http://{h}:{ctx.etcd_peer_port}",
        ),
        identity_env(spec, ctx),
        port=ctx.etcd_port,
    )
    nats = Program(
        "nats",
        "nats",
        (
            ctx.nats_binary,
            "-js",
            "-a",
            h,
            "-p",
            str(ctx.nats_port),
            "-sd",
            str(ctx.paths.nats_data),
        ),
        identity_env(spec, ctx),
        port=ctx.nats_port,
    )
    return [etcd, nats]
