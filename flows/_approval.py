"""Paused rollbacks, found and answered from the terminal (`dynadeploy approve|reject SPEC`).

A rollback waiting for approval is a flow run in state Paused whose pause key is
``rollback-<name>-<revision>`` (flows/rollback.py); answering it is the call the UI's Resume makes.
"""

from __future__ import annotations

import os

from runtime.errors import PermanentError


def ui_url(flow_run_id) -> str:
    api = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    return f"{api.removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def paused_rollbacks(name: str) -> list:
    """The rollback runs of deployment ``name`` that wait for approval, oldest first."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    prefix = f"rollback-{name}-"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["rollback"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PAUSED"]))
            ),
            sort=FlowRunSort.START_TIME_ASC,
        )
    return [r for r in runs if r.state and (r.state.state_details.pause_key or "").startswith(prefix)]


def answer(name: str, approve: bool, note: str = "") -> dict:
    """Approve or reject the paused rollback of ``name``; what was answered, for the CLI to print."""
    from prefect.flow_runs import resume_flow_run

    runs = paused_rollbacks(name)
    if not runs:
        raise PermanentError(
            f"no rollback of {name} is waiting for approval",
            hint="start one with `dynadeploy rollback SPEC` (or from the UI), then approve it",
        )
    run = runs[0]
    revision = int(run.state.state_details.pause_key.rsplit("-", 1)[-1])
    resume_flow_run(run.id, run_input={"approve": approve, "note": note})
    return {
        "name": name,
        "answer": "approved" if approve else "rejected",
        "revision": revision,
        "note": note,
        "flow_run": run.name,
        "flow_run_id": str(run.id),
        "url": ui_url(run.id),
        "also_waiting": len(runs) - 1,
    }
