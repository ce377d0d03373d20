"""deploy: provision -> gpu -> platform -> model cache -> rollout -> smoke, for any target.

Each stage is one idempotent task; running the flow twice changes nothing the second time. When a
stage fails and the spec's teardown policy says so, everything the run created is torn down.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows._lock import target_lock
from flows._progress import side_by_side, stage
from flows._spec import load, redacted_parameters
from tasks import stages
from tasks.smoke import run_smoke_test


@redacted_parameters  # stored run parameters never hold an inline secret (flows/_spec.py)
@flow(name="deploy", log_prints=False)
def deploy(
    spec: str | dict,
    overrides: dict | None = None,
    reason: str = "deploy",
    started_by: str = "dynadeploy",
    locked: bool = False,
) -> dict:
    """Deploy (or converge) the Dynamo graph described by ``spec`` (a path to a YAML spec or a dict).

    Args:
        spec: the deployment's spec: a path to its YAML file (relative to the worker's directory) or the
            spec itself as a dict.
        overrides: spec changes merged in before anything starts, e.g. {"serving": {"workers": {"replicas": 2}}}.
        reason: recorded with the new revision.
        started_by: who started it (recorded with the revision): dynadeploy, canary, rollback.
        locked: for parent flows that already hold the target's slot; leave false.
    """
    s = load(spec, overrides)
    with target_lock(s, held=locked):
        return _deploy(s, reason, started_by)


def _deploy(s, reason: str, started_by: str) -> dict:
    try:
        with stage("provision") as st:
            env = stages.provision(s)
            st.note(env.where)
        with stage("gpu") as st:
            gpus = stages.detect_gpus(s)
            st.note(f"{gpus.gpus} GPU(s), engine {gpus.engine}")
        # The platform install and the model download do not depend on each other: side by side.
        done = side_by_side(
            {
                "platform": stages.install_platform.submit(s),
                "model-cache": stages.cache_model.submit(s, gpus.engine),
            },
            {
                "platform": lambda p: p.note or p.endpoint,
                "model-cache": lambda m: f"{m.model_id}@{m.revision} {'reused' if m.reused else 'stored'}",
            },
        )
        platform, model = done["platform"], done["model-cache"]
        with stage("rollout") as st:
            rollout = stages.roll_out(s, gpus.engine, model, reason=reason, started_by=started_by)
            # e.g. a graph replaced, or (ECS) recorded task definitions reused or registered again
            st.note(
                f"revision {rollout.revision} {'rolled out' if rollout.changed else 'unchanged'}"
                + (f"; {rollout.note}" if rollout.note else "")
            )
        endpoint = rollout.endpoint or platform.endpoint
        with stage("smoke") as st:
            try:
                smoke = run_smoke_test(s, platform.endpoint, rollout.revision)
            except Exception as exc:
                stages.record_smoke(s, rollout.revision, {"passed": False, **getattr(exc, "report", {})})
                raise
            stages.record_smoke(s, rollout.revision, smoke)
            st.note(f"{smoke['requests']} requests, ttft p90 {smoke['ttft_ms']['p90']:.0f} ms")
    except Exception:
        if s.teardown.on_failure:
            with stage("teardown"):
                stages.tear_down(s, keep_model_cache=s.teardown.keep_model_cache)
        raise
    create_table_artifact(
        key=f"revisions-{s.name}"[:60],
        # the verdict first; model and its revision apart (the UI turns id@revision into a mailto link)
        table=[
            {
                "smoke": {True: "pass", False: "FAIL"}.get(r.smoke.get("passed"), "-"),
                "revision": r.number,
                "status": r.status,
                "created": r.created_at[:19],
                "reason": r.reason,
                "started_by": r.started_by,
                "model": r.model.get("id"),
                "model_revision": r.model.get("revision") or "-",
                "spec_hash": r.spec_hash[:12],
            }
            for r in stages.read_ledger(s)
        ],
        description=f"Revision ledger of {s.name}",
    )
    create_table_artifact(
        key=f"deploy-{s.name}"[:60],
        table=[
            {
                "smoke": "pass" if smoke["passed"] else "FAIL",
                "revision": rollout.revision,
                "target": s.target.kind,
                "endpoint": endpoint,
                "model": s.model.served(),
                "changed": rollout.changed,
            }
        ],
        description=f"Deployment {s.name}",
    )
    return {
        "target": s.target.kind,
        "name": s.name,
        "endpoint": endpoint,
        "model": s.model.served(),
        "revision": rollout.revision,
        "changed": rollout.changed,
        "engine": gpus.engine,
        "smoke": smoke,
    }
