"""rollback: restore a recorded revision, after a person approves it in the Prefect UI.

1. plan: the target revision (given, or the last good one before what serves now) and a diff
   artifact of what will change;
2. approval (unless auto_approve): the run pauses with a typed form (approve, note); a rejection
   changes nothing;
3. restore: the deploy stages run on the recorded spec, in this flow run (the deploy flow's
   sequence, flows/deploy.py's deploy_stages: one task per stage, as a deploy), so platform, model
   cache revision and graph are restored in that order and verified by the smoke test; the result
   is a new revision.

The approval wait is woken by the server's event for the resume (flows/_approval.py) rather than
polled, and the restore is not a deploy subflow: on the 2-core bench box (bench/bench_prefect.py) the
subflow around the restore took 2.8 s and polling every second ~0.7 s, against ~1.7 s for the whole
warm restore called directly.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.input import RunInput

from flows._approval import wait_for_answer
from flows._lock import target_lock
from flows._progress import stage
from flows._spec import load
from flows.deploy import deploy_stages
from runtime import revisions as revlib
from runtime.errors import PermanentError
from tasks import stages


class RollbackApproval(RunInput):
    """The form the Prefect UI shows while a rollback waits."""

    approve: bool = False
    note: str = ""


@flow(name="rollback", log_prints=False)
def rollback(spec: str | dict, revision: int | None = None, reason: str = "rollback",
             auto_approve: bool = False, approval_timeout_s: int = 3600) -> dict:
    s = load(spec)
    with target_lock(s):
        return _rollback(s, revision, reason, auto_approve, approval_timeout_s)


def _rollback(s, revision: int | None, reason: str, auto_approve: bool, approval_timeout_s: int) -> dict:
    with stage("plan") as st:
        try:
            cur, target = revlib.plan_rollback(stages.read_ledger(s), revision)
        except ValueError as exc:
            raise PermanentError(f"cannot roll back {s.name}: {exc}",
                                 hint="see `dynadeploy history` for the recorded revisions") from exc
        changes = revlib.describe_changes(cur, target)
        key = f"rollback-plan-{s.name}"[:60]
        create_table_artifact(key=key, table=[{k: str(v) for k, v in row.items()} for row in changes],
                              description=f"{s.name}: revision {cur.number if cur else '-'} -> {target.number}")
        st.note(f"revision {cur.number if cur else '-'} -> {target.number}, {len(changes)} change(s)")
    note = ""
    if not auto_approve:
        with stage("approval") as st:
            answer = wait_for_answer(
                RollbackApproval.with_initial_data(
                    description=f"Roll {s.name} back to revision {target.number}? See the rollback-plan artifact.",
                    approve=False),
                timeout_s=approval_timeout_s, key=f"rollback-{s.name}-{target.number}")
            note = answer.note
            st.note(("approved" if answer.approve else "rejected") + (f": {note}" if note else ""))
        if not answer.approve:
            create_markdown_artifact(key=f"rollback-{s.name}"[:60],
                                     markdown=f"Rollback of **{s.name}** to revision {target.number} was "
                                              f"**rejected**; nothing changed. {note}")
            return {"name": s.name, "status": "rejected", "revision": cur.number if cur else None}
    why = f"rollback to revision {target.number}: {reason}" + (f" ({note})" if note else "")
    with stage("restore") as st:
        result = deploy_stages(load(target.spec), reason=why[:200], started_by="rollback")
        st.note(f"revision {result['revision']} serves the spec of revision {target.number}")
    create_markdown_artifact(
        key=f"rollback-{s.name}"[:60],
        markdown=f"**{s.name}** rolled back to the spec of revision {target.number}; now serving as revision "
                 f"{result['revision']}; smoke {'passed' if result['smoke']['passed'] else 'FAILED'}.")
    return {"name": s.name, "status": "restored", "from": cur.number if cur else None, "to": target.number,
            "revision": result["revision"], "endpoint": result["endpoint"], "smoke": result["smoke"]}
