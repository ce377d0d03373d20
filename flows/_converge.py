"""The no-op converge: `dynadeploy deploy SPEC` of a deployment that already serves SPEC, healthy.

The deploy flow finds "nothing to change" too (its rollout compares what it would render with the
serving revision), but only after importing Prefect's engine and running six tasks through it: ~7 s
against ~1.3 s for `dynadeploy status` (issue 15). Like `terraform plan` saying "no changes", this
module decides before any of that, from what is cheap to read, and falls back to the full flow as soon
as anything differs or looks unhealthy:

1. the target is local, the spec a regular file, the Prefect server a known URL, and
   ``DYNADEPLOY_CONVERGE`` is not ``full`` (the way to ask for the whole flow, smoke test included);
2. the ledger's latest revision is the serving one and was made from this spec (same spec hash);
3. what the flow would render now is what runs: the workers' fingerprints equal the serving
   revision's (engine and model path as the flow would pick them) and the frontend's program config
   is the one written;
4. the status verdict is ``serving`` (every process running, the model served, no problem, no warning);
5. no run holds the target's slot (a rollback waiting for approval, a canary, another deploy);
6. health: the smoke test at its smallest (``/v1/models``, one non-streaming and one streaming format
   probe, one measured request, the spec's SLA on it).

Then the run is recorded where users look for the full one: a Completed ``deploy`` flow run on the
Prefect server, with the same parameters and tags (``dynadeploy``, ``target:<spec file stem>``, plus
``no-op``) and a message saying what was checked. Nothing is written to the ledger: nothing changed.
Any error on the way is a reason to run the full flow, never a failure of its own.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("dynadeploy.converge")

# the smoke test at its smallest: its format probes, then one measured request
PROBE = {"requests": 1, "concurrency": 1, "rate": None}


def slot_name(spec) -> str:
    """The target's slot (global concurrency limit), named as flows/_lock.py's ``limit_name`` names it
    (that module imports Prefect's engine; tests/integration/local/test_converge.py keeps the two equal)."""
    if spec.target.kind == "local":
        from runtime.targets.local.paths import DeploymentPaths

        identity = DeploymentPaths.for_deployment(spec.name, spec.target.state_dir).identity
        return f"dynadeploy-target-{spec.name}-{identity[:8]}"
    return f"dynadeploy-target-{spec.name}"


def plan(spec_path: str, spec) -> tuple[str | None, dict]:
    """(why the full flow must run, or None when nothing differs), and what was read on the way."""
    from runtime import settings

    if settings.converge_full():
        return "DYNADEPLOY_CONVERGE=full asks for the deploy flow", {}
    if spec.target.kind != "local":
        return "only the local target has a no-op plan", {}
    if not Path(spec_path).is_file():
        return "the spec is not a regular file", {}
    if not os.environ.get("PREFECT_API_URL"):
        return "no Prefect server URL to record the run at", {}
    from flows._status import verdict
    from runtime.domain import naming
    from runtime.domain.revisions import current
    from runtime.targets.registry import backend_for

    backend = backend_for(spec)
    revisions = backend.ledger.all()
    serving = current(revisions)
    if serving is None or revisions[-1].number != serving.number:
        return "no revision serving, or a later one pending", {}
    spec_hash = naming.spec_hash(spec)
    if serving.spec_hash != spec_hash:
        return f"the spec differs from serving revision {serving.number}", {}
    engine = backend.detect_gpus().engine  # as the deploy flow's gpu stage picks it
    reason = _rendered_differs(backend, serving, engine)
    if reason:
        return reason, {}
    status = backend.status()
    judged = verdict(status, spec_hash)
    problems = list(status.problems or [])
    if judged["verdict"] != "serving" or problems or judged["warnings"]:
        return f"not healthy: {'; '.join(problems + judged['reasons'] + judged['warnings'])}", {}
    return None, {"revision": serving.number, "endpoint": status.endpoint, "engine": engine}


def _rendered_differs(backend, serving, engine: str) -> str | None:
    """What the deploy flow's platform and rollout stages would change, read without changing it."""
    from runtime.render.local_plan import frontend_program, worker_program_names, worker_programs
    from runtime.targets.local.supervisor import render_program_conf

    model = backend.cache_model(engine)
    ctx = backend.context(engine=engine, model_path=str(model.path))
    zero_ports = dict.fromkeys(worker_program_names(backend.spec, 0), 0)  # fingerprints ignore ports
    probe = worker_programs(backend.spec, ctx, 0, zero_ports)
    if serving.rendered != [p.fingerprint() for p in probe]:
        return f"the workers' rendered programs differ from serving revision {serving.number}"
    frontend = frontend_program(backend.spec, backend.context(engine="mocker", model_path=""))
    if backend.supervisor.configured().get(frontend.name) != render_program_conf(frontend, backend.paths):
        return "the frontend's program config differs"
    return None


def converge(spec_path: str, spec, *, reason: str = "deploy") -> dict | None:
    """The deploy flow's result for a no-op converge, after recording its run; None when the full
    flow must run (the reason is logged at debug level)."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    try:
        why, facts = plan(spec_path, spec)
        if why is None:
            why, smoke = _healthy(spec, facts["endpoint"])
        if why is None:
            why = _slot_taken(spec)
        if why is not None:
            log.debug("full deploy flow: %s", why)
            return None
        from runtime.gateways import prefect_api

        message = (
            f"no changes: revision {facts['revision']} serves this spec, every process running, "
            f"smoke probe passed ({time.monotonic() - t0:.2f} s)"
        )
        run = prefect_api.record_run(
            os.environ["PREFECT_API_URL"],
            "deploy",
            started=started,
            message=message,
            parameters={
                "spec": os.path.abspath(spec_path),
                "overrides": None,
                "reason": reason,
                "started_by": "dynadeploy",
                "locked": False,
            },
            tags=["dynadeploy", f"target:{Path(spec_path).stem}", "no-op"],
        )
    except Exception as exc:
        log.debug("full deploy flow: no-op check failed: %s", exc)
        return None
    return {
        "target": spec.target.kind,
        "name": spec.name,
        "endpoint": facts["endpoint"],
        "model": spec.model.served(),
        "revision": facts["revision"],
        "changed": False,
        "engine": facts["engine"],
        "smoke": smoke,
        "no_op": True,
        "flow_run": run["name"],
    }


def _healthy(spec, endpoint: str) -> tuple[str | None, dict]:
    from runtime.errors import DynadeployError
    from runtime.gateways import loadgen

    smoke = {**spec.smoke.model_dump(), **PROBE}
    try:
        return None, loadgen.smoke_test(endpoint, spec.model.served(), smoke).as_dict()
    except DynadeployError as exc:
        return f"smoke probe failed: {exc}", {}


def _slot_taken(spec) -> str | None:
    from runtime.gateways import prefect_api

    used = prefect_api.active_slots(os.environ["PREFECT_API_URL"], slot_name(spec))
    return f"the target's slot is taken ({used} in use): another run is working on it" if used else None
