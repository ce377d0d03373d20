"""The local target's canary mechanics: a candidate graph beside stable, and candidate workers
inside the stable graph for real traffic.

- staged: the candidate runs as its own graph, `<name>-canary` (own frontend, workers and
  discovery store), so identical load can be sent to both without touching stable's capacity;
- shifted: `canary-<i>` workers running the candidate's engine settings register with the stable
  frontend, which then spreads real traffic over stable and candidate workers;
- abort: canary workers get SIGTERM (Dynamo drains in-flight requests, so none fail) and the
  candidate graph is torn down. Promotion is an ordinary rollout of the candidate spec, which
  retires the canary workers together with the old stable ones.
"""

from __future__ import annotations

import dataclasses

from runtime.local import health
from runtime.local import ports as portlib
from runtime.local.backend import LocalBackend
from runtime.local.plan import worker_programs

CANARY_PREFIX = "canary-"


def candidate_backend(candidate) -> LocalBackend:
    """The candidate graph: the candidate spec under `<name>-canary`, on a port of its own."""
    spec = candidate.model_copy(update={
        "name": f"{candidate.name}-canary"[:40],
        "target": candidate.target.model_copy(update={"frontend_port": None}),
    })
    return LocalBackend(spec)


def stage(candidate) -> dict:
    backend = candidate_backend(candidate)
    backend.provision()
    engine = backend.detect_gpus()["engine"]
    backend.install_platform()
    model = backend.cache_model(engine)
    rollout = backend.roll_out(engine, model, reason="canary candidate", started_by="canary")
    return {"endpoint": backend.endpoint(), "engine": engine, "revision": rollout.revision}


def shift(stable: LocalBackend, candidate, count: int, engine: str) -> dict:
    """Run exactly ``count`` candidate workers inside the stable graph; returns their worker ids."""
    running = stable.supervisor.processes()
    have = sorted(n for n in running if n.startswith(CANARY_PREFIX))
    want = [f"{CANARY_PREFIX}{i}" for i in range(count)]
    model = candidate_backend(candidate).cache_model(engine)
    frontend = stable._frontend_port()
    before = health.generate_instances(stable.host, frontend)
    ports = portlib.allocate(stable.paths.ports_file, want, host=stable.host, pinned={},
                             in_use_by_us={n for n in want if n in running}, low=True)
    ctx = stable.context(engine=engine, model_path=str(model.path))
    template = worker_programs(candidate, ctx, 0, {n: ports[want[0]] for n in _names(candidate)})[0]
    programs = [dataclasses.replace(template, name=name, port=ports[name],
                                    env=template.env | {"DYN_SYSTEM_PORT": str(ports[name])}) for name in want]
    stable.supervisor.apply(programs, retire=set(have) - set(want))
    added = [p for p in programs if p.name not in have]
    if added:
        expected = len(before) + len(added)
        health.wait_until(lambda: all(health.worker_ready(stable.host, p.port) for p in added)
                          and len(health.generate_instances(stable.host, frontend)) >= expected, 120,
                          describe=lambda: "candidate workers did not join the stable graph")
    return {"workers": want}


def unshift(stable: LocalBackend) -> list[str]:
    names = sorted(n for n in stable.supervisor.processes() if n.startswith(CANARY_PREFIX))
    if names:
        stable.supervisor.apply([], retire=set(names))
    return names


def drop(candidate) -> dict:
    return candidate_backend(candidate).teardown(keep_model_cache=True)


def worker_endpoints(stable: LocalBackend) -> dict[str, list[str]]:
    """The metrics endpoints (system ports) of the stable graph's workers, split stable/candidate."""
    ports = portlib.load(stable.paths.ports_file)
    out: dict[str, list[str]] = {"stable": [], "candidate": []}
    for name in stable.supervisor.processes():
        if name in ports and name.split("-", 1)[0] in ("worker", "prefill", "decode", "canary"):
            side = "candidate" if name.startswith(CANARY_PREFIX) else "stable"
            out[side].append(f"http://{stable.host}:{ports[name]}")
    return out


def _names(candidate) -> list[str]:
    from runtime.local.plan import worker_program_names

    return worker_program_names(candidate, 0)
