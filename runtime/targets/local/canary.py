"""The local target's canary mechanics: a candidate graph beside stable, and candidate workers
inside the stable graph for real traffic (runtime/targets/base.py CanaryMechanics: plan, stage, shift,
reach, unshift, drop; see runtime/targets/kube/canary.py for the Kubernetes one). ``stable`` and
``candidate`` are LocalBackends of the stable and the candidate spec.

- staged: the candidate runs as its own graph, `<name>-canary` (own frontend, workers and
  discovery store), so identical load can be sent to both without touching stable's capacity; beside
  it a *baseline*, `<name>-baseline`: stable's spec staged afresh the same way at the same time. The
  side-by-side analysis compares candidate with baseline, not with the long-running stable graph
  (Kayenta's baseline): on a loaded machine a freshly started graph answers consistently slower
  than one that has run for hours (bench/README.md, "Canary gate"), a bias no test can tell from a
  regression; two graphs of one age and one start-up cancel it;
- shifted: `canary-<i>` workers running the candidate's engine settings register with the stable
  frontend, which then spreads real traffic over stable and candidate workers;
- abort: canary workers get SIGTERM (Dynamo drains in-flight requests, so none fail) and the
  candidate and baseline graphs are torn down. Promotion is an ordinary rollout of the candidate spec, which
  retires the canary workers together with the old stable ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from runtime.domain import canary as gate
from runtime.gateways import probe
from runtime.render.local_plan import worker_programs
from runtime.targets.base import StagedCandidate, Status, TeardownReport
from runtime.targets.local import ports as portlib
from runtime.targets.local.backend import LocalBackend

CANARY_PREFIX = "canary-"


def candidate_backend(candidate) -> LocalBackend:
    """The candidate graph: the candidate spec under `<name>-canary`, on a port of its own."""
    return _side_graph(candidate, f"{candidate.name}-canary"[:40])


def baseline_backend(spec) -> LocalBackend:
    """The baseline graph: stable's spec under `<name>-baseline` (at most 40 characters, never the
    candidate's name), on a port of its own."""
    return _side_graph(spec, f"{spec.name[:31]}-baseline")


def _side_graph(spec, name: str) -> LocalBackend:
    return LocalBackend(
        spec.model_copy(
            update={"name": name, "target": spec.target.model_copy(update={"frontend_port": None})}
        )
    )


def plan(stable: LocalBackend, status: Status) -> tuple[list[gate.Step], str]:
    """Real traffic is shifted by worker count: candidate workers join the stable frontend's pool."""
    spec = stable.spec
    stable_workers = sum(
        1 for n in status.processes or {} if n.split("-")[0] in ("worker", "prefill", "decode")
    )
    can_shift = spec.serving.topology.startswith("agg")
    how = (
        f"real traffic shifted by candidate workers joining the stable frontend ({stable_workers} stable)"
        if can_shift
        else "side by side only: a disaggregated graph cannot mix prefill/decode versions"
    )
    return gate.traffic_plan(list(spec.canary.steps), stable_workers, can_shift), how


def stage(stable: LocalBackend, candidate: LocalBackend, token: str | None = None) -> StagedCandidate:
    """Baseline and candidate graphs, started one after the other by the same steps (so of one age)."""
    # baseline first: the candidate, the graph under test, is then never the older of the two
    base = _start(baseline_backend(stable.spec), "canary baseline", token)
    cand = _start(candidate_backend(candidate.spec), "canary candidate", token)
    return dataclasses.replace(cand, baseline=base.endpoint)


def _start(backend: LocalBackend, reason: str, token: str | None) -> StagedCandidate:
    backend.provision()
    engine = backend.detect_gpus().engine
    backend.install_platform()
    model = backend.cache_model(engine, token=token)
    rollout = backend.roll_out(engine, model, reason=reason, started_by="canary")
    return StagedCandidate(endpoint=backend.endpoint(), engine=engine, revision=rollout.revision)


def shift(stable: LocalBackend, candidate: LocalBackend, step: gate.Step, staged: StagedCandidate) -> dict:
    """Run exactly ``step.canary_workers`` candidate workers inside the stable graph."""
    count, engine, candidate_spec = step.canary_workers, staged.engine, candidate.spec
    running = stable.supervisor.processes()
    have = sorted(n for n in running if n.startswith(CANARY_PREFIX))
    want = [f"{CANARY_PREFIX}{i}" for i in range(count)]
    model = candidate_backend(candidate_spec).cache_model(engine)
    frontend = stable._frontend_port()
    before = probe.generate_instances(stable.host, frontend)
    ports = portlib.allocate(
        stable.paths.ports_file,
        want,
        host=stable.host,
        pinned={},
        in_use_by_us={n for n in want if n in running},
        low=True,
    )
    ctx = stable.context(engine=engine, model_path=str(model.path))
    template = worker_programs(candidate_spec, ctx, 0, dict.fromkeys(_names(candidate_spec), ports[want[0]]))[
        0
    ]
    programs = [
        dataclasses.replace(
            template, name=name, port=ports[name], env=template.env | {"DYN_SYSTEM_PORT": str(ports[name])}
        )
        for name in want
    ]
    stable.supervisor.apply(programs, retire=set(have) - set(want))
    added = [p for p in programs if p.name not in have]
    if added:
        expected = len(before) + len(added)
        probe.ready_within(
            lambda: (
                all(probe.worker_ready(stable.host, p.probe_port()) for p in added)
                and len(probe.generate_instances(stable.host, frontend)) >= expected
            ),
            120,
            describe=lambda: "candidate workers did not join the stable graph",
        )
    return {"workers": want}


def unshift(stable: LocalBackend) -> list[str]:
    names = sorted(n for n in stable.supervisor.processes() if n.startswith(CANARY_PREFIX))
    if names:
        stable.supervisor.apply([], retire=set(names))
    return names


def drop(stable: LocalBackend, candidate: LocalBackend) -> TeardownReport:
    """The candidate and the baseline graph, both torn down (the model cache stays)."""
    out = candidate_backend(candidate.spec).teardown(keep_model_cache=True)
    base = baseline_backend(stable.spec).teardown(keep_model_cache=True)
    return dataclasses.replace(
        out,
        stopped_strays=(out.stopped_strays or []) + (base.stopped_strays or []),
        leftovers=out.leftovers + base.leftovers,
    )


@contextlib.contextmanager
def reach(stable: LocalBackend, candidate: LocalBackend) -> Iterator[gate.Reach]:
    """Loopback addresses: the frontends (stable's side is the baseline graph while it runs), and the
    stable graph's workers split stable/candidate (the gate reads their own TTFT histograms, since they
    share one frontend)."""
    cand, base = candidate_backend(candidate.spec), baseline_backend(stable.spec)
    side = base.endpoint() if base.supervisor.processes() else stable.endpoint()
    yield gate.Reach(
        stable=side,
        candidate=cand.endpoint(),
        entry=stable.endpoint(),
        entry_host=None,
        groups=worker_endpoints(stable),
        ttft_metrics=gate.WORKER_TTFT,
    )


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
    from runtime.render.local_plan import worker_program_names

    return worker_program_names(candidate, 0)
