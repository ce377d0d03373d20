"""rollback: restore a recorded revision, after a person approves it in the Prefect UI.

1. plan: the target revision (given, or the last good one before what serves now) and a diff
   artifact of what will change;
2. approval (unless auto_approve): the run pauses with a typed form (approve, note), saying the page
   to approve it on and the CLI commands (`dynadeploy approve|reject SPEC`); a rejection changes
   nothing and ends the run Cancelled, with the approver's note in its message (a rejected rollback is
   not a success: the caller of the flow gets prefect.exceptions.CancelledRun);
3. restore: the deploy flow runs on the recorded spec, so platform, model cache revision and graph
   are restored in that order and verified by the smoke test; the result is a new revision.
"""

from __future__ import annotations

from prefect import flow, pause_flow_run
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.input import RunInput
from prefect.runtime import flow_run
from prefect.states import Cancelled

from flows._approval import ui_url
from flows._lock import target_lock
from flows._progress import stage
from flows._spec import load, redacted_parameters
from flows.deploy import deploy
from runtime.domain import revisions as revlib
from runtime.errors import PermanentError
from tasks import stages


class RollbackApproval(RunInput):
    """The form the Prefect UI shows while a rollback waits."""

    approve: bool = False
    note: str = ""


@redacted_parameters  # stored run parameters never hold an inline secret (flows/_spec.py)
@flow(name="rollback", log_prints=False)
def rollback(
    spec: str | dict,
    revision: int | None = None,
    reason: str = "rollback",
    auto_approve: bool = False,
    approval_timeout_s: int = 3600,
    only_while_serving: int | None = None,
):
    """Restore a recorded revision after an approval; a rejection changes nothing and ends Cancelled.

    Args:
        spec: the deployment's spec: a path to its YAML file (relative to the worker's directory) or a dict.
        revision: the revision to restore; empty: the last good one before what serves now.
        reason: recorded with the new revision.
        auto_approve: skip the approval pause.
        approval_timeout_s: how long the run waits for an answer before it fails.
        only_while_serving: set by the SLO-alert automation (the alerted revision): roll back only while it still
            serves (several alerts queue several runs; the later ones then change nothing).
    """
    s = load(spec)
    with target_lock(s):
        stale = revlib.alert_is_stale(stages.read_ledger(s), only_while_serving)
        if stale:
            with stage("plan") as st:
                st.note(f"nothing to do: {stale}")
            return {"name": s.name, "status": "skipped", "reason": stale}
        return _rollback(s, revision, reason, auto_approve, approval_timeout_s)


def _rollback(s, revision: int | None, reason: str, auto_approve: bool, approval_timeout_s: int) -> dict:
    with stage("plan") as st:
        try:
            cur, target = revlib.plan_rollback(stages.read_ledger(s), revision)
        except ValueError as exc:
            raise PermanentError(
                f"cannot roll back {s.name}: {exc}",
                hint="see `dynadeploy history` for the recorded revisions",
            ) from exc
        changes = revlib.describe_changes(cur, target)
        key = f"rollback-plan-{s.name}"[:60]
        create_table_artifact(
            key=key,
            table=[{k: str(v) for k, v in row.items()} for row in changes],
            description=f"{s.name}: revision {cur.number if cur else '-'} -> {target.number}",
        )
        st.note(f"revision {cur.number if cur else '-'} -> {target.number}, {len(changes)} change(s)")
    note = ""
    if not auto_approve:
        with stage("approval") as st:
            st.say(
                f"waiting for approval at {ui_url(flow_run.id)} (or: dynadeploy approve|reject SPEC --note ...)"
            )
            answer = pause_flow_run(
                wait_for_input=RollbackApproval.with_initial_data(
                    description=f"Roll {s.name} back to revision {target.number}? See the rollback-plan artifact.",
                    approve=False,
                ),
                # Prefect's default checks for the answer every 10 s, which alone is twice the restore.
                timeout=approval_timeout_s,
                poll_interval=1,
                key=f"rollback-{s.name}-{target.number}",
            )
            note = answer.note
            st.note(("approved" if answer.approve else "rejected") + (f": {note}" if note else ""))
        if not answer.approve:
            create_markdown_artifact(
                key=f"rollback-{s.name}"[:60],
                markdown=f"Rollback of **{s.name}** to revision {target.number} was "
                f"**rejected**; nothing changed. {note}",
            )
            return Cancelled(
                message=f"rollback of {s.name} to revision {target.number} rejected; nothing changed"
                + (f": {note}" if note else "")
            )
    why = f"rollback to revision {target.number}: {reason}" + (f" ({note})" if note else "")
    with stage("restore") as st:
        result = deploy(spec=target.spec, reason=why[:200], started_by="rollback", locked=True)
        st.note(f"revision {result['revision']} serves the spec of revision {target.number}")
    create_markdown_artifact(
        key=f"rollback-{s.name}"[:60],
        markdown=f"**{s.name}** rolled back to the spec of revision {target.number}; now serving as revision "
        f"{result['revision']}; smoke {'passed' if result['smoke']['passed'] else 'FAILED'}.",
    )
    return {
        "name": s.name,
        "status": "restored",
        "from": cur.number if cur else None,
        "to": target.number,
        "revision": result["revision"],
        "endpoint": result["endpoint"],
        "smoke": result["smoke"],
    }
