"""The local target's stages, each idempotent: run twice, change nothing the second time.

provision -> detect_gpus -> install_platform (frontend) -> cache_model -> roll_out -> (smoke) -> teardown

A redeploy starts the new revision's workers beside the old ones, waits until the frontend has
discovered them and they serve, then stops the old ones with SIGTERM (Dynamo drains in-flight
requests on SIGTERM), so a redeploy under load fails no request.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime.domain import naming
from runtime.domain.revisions import Revision, current, next_number, now_iso
from runtime.errors import PreflightError, RolloutFailed
from runtime.gateways import gpu as gpulib
from runtime.gateways import probe as probes
from runtime.host import ports as hostports
from runtime.render.local_plan import (
    LocalContext,
    Program,
    cpu_vllm,
    discovery_programs,
    frontend_program,
    worker_port_names,
    worker_program_names,
    worker_programs,
    worker_slots,
)
from runtime.targets.base import (
    Accelerators,
    PlatformEndpoint,
    Provisioned,
    RevisionRow,
    Rollout,
    Status,
    TeardownReport,
)
from runtime.targets.local import inventory, model_cache, monitoring, vllm_cpu, workers
from runtime.targets.local import ports as portlib
from runtime.targets.local.ledger import FileLedger
from runtime.targets.local.paths import DeploymentPaths
from runtime.targets.local.supervisor import RUNNING_STATES, Supervisor
from runtime.targets.local.workers import is_worker

READY_TIMEOUT_S = 120.0
VLLM_READY_TIMEOUT_S = (
    600.0  # a CPU vLLM worker needs ~40 s alone on 2 cores; two at once on a loaded machine, >5 min
)


class LocalBackend:
    kind = "local"

    def __init__(self, spec) -> None:
        self.spec = spec
        self.target = spec.target
        self.host = self.target.host
        self.paths = DeploymentPaths.for_deployment(spec.name, self.target.state_dir)
        self.supervisor = Supervisor(self.paths)
        self.ledger = FileLedger(self.paths.revisions)

    # -- 1. provision -----------------------------------------------------------------------
    def provision(self) -> Provisioned:
        self.detect_gpus()  # read-only: a spec this host cannot serve fails before anything is created
        self.paths.make()
        # supervisord gone (killed, host rebooted) but its programs still running: those orphans hold
        # the endpoint's port and would be duplicated by the programs a new supervisord starts. Stop
        # them (only processes carrying this deployment's identity) so the endpoint keeps its port.
        # A supervisord that is alive but slow to answer its socket (a loaded host) is not gone: its
        # programs are not orphans, and killing them would take a healthy deployment down.
        gone = not self.supervisor.is_running() and self.supervisor.pid() is None
        stopped_orphans = inventory.kill_marked(self.paths) if gone else []
        names = ["frontend"] + (["etcd", "etcd-peer", "nats"] if self.target.discovery == "etcd" else [])
        running = set(self.supervisor.processes()) if self.supervisor.is_running() else set()
        ours = {n for n in names if n in running or (n == "etcd-peer" and "etcd" in running)}
        pinned = {"frontend": self.target.frontend_port} if self.target.frontend_port else {}
        ports = portlib.allocate(
            self.paths.ports_file, names, host=self.host, pinned=pinned, in_use_by_us=ours
        )
        started = self.supervisor.ensure_started()
        if self.target.discovery == "etcd":
            ctx = self.context(engine="mocker", model_path="")
            self.supervisor.apply(discovery_programs(self.spec, ctx))
            probes.ready_within(
                lambda: (
                    hostports.port_is_listening(ports["etcd"], self.host)
                    and hostports.port_is_listening(ports["nats"], self.host)
                ),
                30,
                describe=lambda: "etcd/NATS not listening: " + self.supervisor.tail("etcd", 300),
            )
        return Provisioned(
            where=str(self.paths.root),
            details={
                "state_dir": str(self.paths.root),
                "ports": ports,
                "supervisor_started": started,
                "orphans_stopped": stopped_orphans,
            },
        )

    def context(self, *, engine: str, model_path: str) -> LocalContext:
        ports = portlib.load(self.paths.ports_file)
        return LocalContext(
            paths=self.paths,
            python=sys.executable,
            host=self.host,
            frontend_port=ports["frontend"],
            model_path=model_path,
            engine=engine,
            discovery=self.target.discovery,
            etcd_port=ports.get("etcd"),
            etcd_peer_port=ports.get("etcd-peer"),
            nats_port=ports.get("nats"),
            etcd_binary=shutil.which("etcd") or "etcd",
            nats_binary=shutil.which("nats-server") or str(_venv_bin("nats-server")),
            vllm_python=vllm_cpu.find().python if engine == "vllm" and cpu_vllm(self.spec) else None,
        )

    # -- 2. gpu ------------------------------------------------------------------------------
    def detect_gpus(self) -> Accelerators:
        info = gpulib.detect() if self.target.gpus != "none" else gpulib.GpuInfo(0)
        engine = self.spec.serving.engine
        if engine == "auto":
            engine = "vllm" if info.present else "mocker"
        if engine == "vllm" and cpu_vllm(self.spec):
            runtime = vllm_cpu.find()  # a PreflightError naming `make vllm-cpu` when absent
            return Accelerators(
                gpus=info.count,
                engine=engine,
                details={
                    "models": info.names,
                    "device": "cpu",
                    "runtime": str(runtime.root),
                    "versions": runtime.versions,
                },
            )
        if engine == "vllm":
            if not info.present:
                raise PreflightError(
                    "serving.engine is vllm but this host has no NVIDIA GPU (nvidia-smi found none)",
                    hint="set serving.engine to auto or mocker, or run on a GPU host",
                )
            needed = sum(s[2].gpus for s in worker_slots(self.spec))
            if needed > info.count:
                raise PreflightError(
                    f"the workers ask for {needed} GPUs but this host has {info.count}",
                    hint="lower the replicas or gpus per worker in serving",
                )
            if importlib.util.find_spec("vllm") is None:
                raise PreflightError(
                    "serving.engine is vllm but vLLM is not installed",
                    hint="install the GPU extra: uv sync --extra vllm",
                )
        return Accelerators(gpus=info.count, engine=engine, details={"models": info.names})

    # -- 3. platform (the frontend) ---------------------------------------------------------
    def install_platform(self) -> PlatformEndpoint:
        program = frontend_program(self.spec, self.context(engine="mocker", model_path=""))
        changes = self.supervisor.apply([program])
        probes.ready_within(
            lambda: probes.frontend_live(self.host, program.probe_port()),
            60,
            describe=lambda: "frontend /live not answering; log tail:\n" + self.supervisor.tail("frontend"),
        )
        return PlatformEndpoint(
            endpoint=self.endpoint(), changed=bool(changes["added"] or changes["changed"])
        )

    def endpoint(self) -> str:
        return f"http://{self.host}:{portlib.load(self.paths.ports_file)['frontend']}"

    @contextmanager
    def reach(self) -> Iterator[str]:
        """The endpoint itself: the frontend listens on this host."""
        yield self.endpoint()

    # -- 4. model cache ----------------------------------------------------------------------
    def cache_model(self, engine: str, token: str | None = None) -> model_cache.CachedModel:
        m = self.spec.model
        return model_cache.ensure_model(
            self.paths.model_cache, m.id, m.revision, weights=engine == "vllm", token=token
        )

    # -- 5. rollout --------------------------------------------------------------------------
    def roll_out(
        self,
        engine: str,
        model: model_cache.CachedModel,
        *,
        reason: str = "deploy",
        started_by: str = "dynadeploy",
    ) -> Rollout:
        t0 = time.monotonic()
        revisions = self.ledger.all()
        serving = current(revisions)
        frontend_port = self._frontend_port()
        self._retire_half_done(revisions, serving, frontend_port)
        running = self.supervisor.processes()
        ctx = self.context(engine=engine, model_path=str(model.path))
        probe = worker_programs(self.spec, ctx, 0, workers.zero_ports(self.spec, 0))
        fingerprint = [p.fingerprint() for p in probe]
        if (
            serving
            and serving.rendered == fingerprint
            and all(
                running.get(n) and running[n].state in RUNNING_STATES
                for n in worker_program_names(self.spec, serving.number)
            )
        ):
            # Nothing to change, but the workers may have just been (re)started by a new supervisord
            # after a crash: the smoke test that follows must not run before they have registered.
            names = worker_program_names(self.spec, serving.number)
            live = worker_programs(self.spec, ctx, serving.number, portlib.load(self.paths.ports_file))
            self._wait_ready(live, frontend_port, expected=len(names))
            self.ensure_monitoring()
            return Rollout(serving.number, changed=False, details={"programs": names, "retired": []})

        # Reuse a pending/failed record of this exact rollout (a crashed earlier run) instead of a new number.
        latest = revisions[-1] if revisions else None
        number = (
            latest.number
            if latest and latest.status in ("pending", "failed") and latest.rendered == fingerprint
            else next_number(revisions)
        )
        names = worker_program_names(self.spec, number)
        port_names = worker_port_names(self.spec, number, engine)
        ports = portlib.allocate(
            self.paths.ports_file,
            port_names,
            host=self.host,
            pinned={},
            in_use_by_us={n for n in port_names if n.removesuffix("-kv-events") in running},
            low=True,
        )
        programs = worker_programs(
            self.spec, self.context(engine=engine, model_path=str(model.path)), number, ports
        )
        revision = Revision(
            number=number,
            spec_hash=naming.spec_hash(self.spec),
            spec=self.spec_dict(),
            created_at=now_iso(),
            reason=reason,
            started_by=started_by,
            status="pending",
            model={"id": model.model_id, "revision": model.revision},
            versions=workers.versions(engine, self.spec),
            rendered=fingerprint,
        )
        self.ledger.put(revision)

        old = sorted(n for n in running if is_worker(n) and n not in names)
        before = probes.generate_instances(self.host, frontend_port) if old else set()
        self.supervisor.apply(programs)
        try:
            # Old and new serve side by side until the frontend has discovered every new worker.
            self._wait_ready(programs, frontend_port, expected=len(before) + len(programs), engine=engine)
        except RolloutFailed:
            self.supervisor.apply([], retire=set(names))
            portlib.forget(self.paths.ports_file, names)
            revision.status = "failed"
            self.ledger.put(revision)
            raise
        self.supervisor.apply([], retire=set(old))
        portlib.forget(self.paths.ports_file, old)
        probes.ready_within(
            lambda: len(probes.generate_instances(self.host, frontend_port)) <= len(programs),
            30,
            describe=lambda: "retired workers still registered with the frontend",
        )
        for rev in revisions:
            if rev.status == "serving" and rev.number != number:
                rev.status = "superseded"
                self.ledger.put(rev)
        revision.status = "serving"
        self.ledger.put(revision)
        self.ensure_monitoring()
        return Rollout(
            number, changed=True, seconds=time.monotonic() - t0, details={"programs": names, "retired": old}
        )

    # -- monitoring: Prometheus + Alertmanager + alert receiver (runtime/targets/local/monitoring.py) --------
    def ensure_monitoring(self) -> dict:
        """Start, update (new scrape targets, new rules) or stop the deployment's monitoring programs."""
        return monitoring.ensure(self)

    def _frontend_port(self) -> int:
        return portlib.load(self.paths.ports_file)["frontend"]

    def _retire_half_done(
        self, revisions: list[Revision], serving: Revision | None, frontend_port: int
    ) -> None:
        """Stop the workers of a rollout that never finished (the deploy CLI was killed mid-flow).

        They are neither the serving revision nor the one about to start; left running they would
        be counted as old workers and as new ones at once ("frontend sees 3 of 5 instances"). The
        rerun starts its revision's workers afresh, so it converges whatever stage the crash hit.
        """
        if not self.supervisor.is_running():
            return
        keep = f"-r{serving.number}-" if serving else None
        half_done = {
            n
            for n in self.supervisor.processes()
            if is_worker(n) and not n.startswith("canary") and (keep is None or keep not in n)
        }
        if not half_done:
            return
        self.supervisor.apply([], retire=half_done)
        portlib.forget(self.paths.ports_file, half_done)
        for rev in revisions:
            if rev.status == "pending":
                rev.status = "failed"
                self.ledger.put(rev)
        remaining = sum(1 for n in self.supervisor.processes() if is_worker(n))
        # Their registrations leave the frontend when they stop (bounded: a SIGKILLed one can
        # linger in file discovery for up to ~15 s, which the readiness count then tolerates).
        try:
            probes.ready_within(
                lambda: len(probes.generate_instances(self.host, frontend_port)) <= remaining, 20
            )
        except RolloutFailed:
            pass

    def _wait_ready(
        self, programs: list[Program], frontend_port: int, expected: int, engine: str = "mocker"
    ) -> None:
        served = self.spec.model.served()
        spawns: dict[str, set[float]] = {p.name: set() for p in programs}

        def crash_loop() -> str | None:
            """A worker that exits during start-up and is restarted again and again never becomes
            ready: fail now with its own log, not after READY_TIMEOUT_S."""
            for name, st in self.supervisor.processes().items():
                if name not in spawns:
                    continue
                if st.state == "FATAL":
                    return name
                if st.start:
                    spawns[name].add(st.start)
                # Every spawn has its own start time: a third one means it died at start twice,
                # a loop rather than a hiccup (a slow start never respawns).
                if len(spawns[name]) >= 3 or (st.state == "BACKOFF" and len(spawns[name]) >= 2):
                    return name
            return None

        def ready() -> bool:
            looping = crash_loop()
            if looping:
                st = self.supervisor.processes().get(looping)
                # vLLM buries its own message (e.g. a ValidationError about an engine argument) under
                # a traceback and health-probe noise: surface the message itself.
                said = (
                    workers.engine_error(self.supervisor.tail(looping, 400_000))
                    if engine == "vllm"
                    else self.supervisor.tail(looping, 1500)
                )
                raise RolloutFailed(
                    f"{looping} crashes at start (state {st.state if st else 'absent'}, exit status "
                    f"{st.exitstatus if st else '?'}); its last log lines:\n" + said
                )
            return (
                all(probes.worker_ready(self.host, p.probe_port()) for p in programs)
                and len(probes.generate_instances(self.host, frontend_port)) >= expected
                and served in probes.served_models(self.host, frontend_port)
            )

        def stuck() -> str:
            states = self.supervisor.processes()
            bad = [p for p in programs if not probes.worker_ready(self.host, p.probe_port())]
            if not bad:
                return (
                    f"workers serve but the frontend sees {len(probes.generate_instances(self.host, frontend_port))}"
                    f" of {expected} instances, models {probes.served_models(self.host, frontend_port)}"
                )
            p = bad[0]
            st = states.get(p.name)
            return (
                f"{p.name} not ready (state {st.state if st else 'absent'}); log tail:\n"
                + self.supervisor.tail(p.name, 800)
            )

        timeout = VLLM_READY_TIMEOUT_S if engine == "vllm" else READY_TIMEOUT_S
        probes.ready_within(ready, timeout, interval_s=0.1 if engine != "vllm" else 0.5, describe=stuck)

    def record_smoke(self, number: int, smoke: dict) -> None:
        rev = self.ledger.get(number)
        if rev is not None:
            rev.smoke = smoke
            self.ledger.put(rev)

    def revisions(self) -> list[Revision]:
        return self.ledger.all()

    def spec_dict(self) -> dict:
        return self.spec.model_dump(mode="json")

    # -- status / teardown -------------------------------------------------------------------
    def status(self) -> Status:
        processes = self.supervisor.processes()
        ports = portlib.load(self.paths.ports_file)
        fe = ports.get("frontend")
        supervised = self.supervisor.is_running()
        sup_pid = self.supervisor.pid()
        orphans = inventory.orphans(self.paths, {sup_pid} if sup_pid else set())
        problems = []
        if not supervised and (
            orphans or (self.paths.programs.exists() and any(self.paths.programs.glob("*.conf")))
        ):
            problems.append(
                "supervision gone: supervisord is not running, so nothing restarts a crashed process"
                " (redeploy to restart it; teardown to remove everything)"
            )
        if orphans:
            problems.append(
                f"{len(orphans)} unsupervised process(es) of this deployment still running: pids "
                + ", ".join(map(str, orphans))
            )
        return Status(
            target="local",
            name=self.spec.name,
            endpoint=f"http://{self.host}:{fe}" if fe else None,
            problems=problems,
            processes={
                n: {"state": p.state, "pid": p.pid, "uptime_s": round(p.uptime_s, 1)}
                for n, p in processes.items()
            },
            models=probes.served_models(self.host, fe) if fe else [],
            workers_discovered=len(probes.generate_instances(self.host, fe)) if fe else 0,
            revisions=[RevisionRow.of(r) for r in self.ledger.all()],
            slo=self._slo_status(ports).get("slo"),
            details={"state_dir": str(self.paths.root), "supervisor": supervised, "orphans": orphans},
        )

    def _slo_status(self, ports: dict[str, int]) -> dict:
        return monitoring.slo_status(self, ports)

    def teardown(self, *, keep_model_cache: bool = True) -> TeardownReport:
        ports = portlib.load(self.paths.ports_file)
        self.supervisor.shutdown()
        strays = inventory.kill_marked(self.paths)
        shutil.rmtree(self.paths.root, ignore_errors=True)
        self.paths.socket.unlink(missing_ok=True)
        if not keep_model_cache:
            shutil.rmtree(self.paths.model_cache, ignore_errors=True)
        left = self.inventory(ports)
        return TeardownReport(leftovers=left, model_cache_kept=keep_model_cache, stopped_strays=strays)

    def inventory(self, ports: dict[str, int] | None = None) -> list[str]:
        return inventory.leftovers(self.paths, self.host, ports)


def _venv_bin(name: str) -> Path:
    return Path(sys.executable).parent / name
