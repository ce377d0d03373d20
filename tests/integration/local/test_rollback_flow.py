"""Rollback on the local target through the real rollback flow (pause/resume on a real Prefect API).

Restoring records a new revision with the old spec and verifies it with the smoke test; a rejected
approval changes nothing (same processes, same ledger).
"""

from __future__ import annotations

import threading
import time

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.flow_runs import resume_flow_run

from flows.deploy import deploy
from flows.rollback import rollback
from runtime.errors import PermanentError
from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend
from runtime.targets.local.inventory import marked_pids

pytestmark = [pytest.mark.integration]


def _paused_rollback_run():
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PAUSED"]))
            )
        )
    return next((r for r in runs if r.name and r.flow_id and r.parameters.get("auto_approve") is False), None)


def test_rollback_restores_previous_spec_as_a_new_revision(prefect_api, spec_dir):
    v1 = spec_dir("rb", {"topology": "agg", "mocker": {"speedup_ratio": 10.0}}, smoke={"requests": 10})
    deploy(spec=str(v1))
    v2 = spec_dir("rb", {"topology": "agg", "mocker": {"speedup_ratio": 6.0}}, smoke={"requests": 10})
    assert deploy(spec=str(v2))["revision"] == 2

    result = rollback(spec=str(v2), auto_approve=True, reason="test")
    assert result["status"] == "restored" and result["to"] == 1 and result["revision"] == 3
    assert result["smoke"]["passed"]
    backend = LocalBackend(load_spec(v2))
    revs = {r.number: r for r in backend.revisions()}
    assert [revs[n].status for n in (1, 2, 3)] == ["superseded", "superseded", "serving"]
    assert revs[3].spec_hash == revs[1].spec_hash
    assert revs[3].started_by == "rollback" and "rollback to revision 1" in revs[3].reason
    assert revs[3].spec["serving"]["mocker"]["speedup_ratio"] == 10.0

    with pytest.raises(PermanentError, match="nothing to do"):
        rollback(spec=str(v2), revision=3, auto_approve=True)


def test_rejected_approval_changes_nothing(prefect_api, spec_dir):
    v1 = spec_dir("rbno", {"topology": "agg"}, smoke={"requests": 10})
    deploy(spec=str(v1))
    v2 = spec_dir("rbno", {"topology": "agg", "mocker": {"speedup_ratio": 6.0}}, smoke={"requests": 10})
    deploy(spec=str(v2))
    backend = LocalBackend(load_spec(v2))
    before = ([(r.number, r.status) for r in backend.revisions()], marked_pids("rbno"))

    out: dict = {}
    runner = threading.Thread(
        target=lambda: out.setdefault(
            "result", rollback(spec=str(v2), approval_timeout_s=120, return_state=True)
        )
    )
    runner.start()
    deadline = time.monotonic() + 90
    paused = None
    while paused is None and time.monotonic() < deadline:
        time.sleep(0.5)
        paused = _paused_rollback_run()
    assert paused is not None, "the rollback never paused for approval"
    resume_flow_run(paused.id, run_input={"approve": False, "note": "not now"})
    runner.join(timeout=120)
    # a rejection ends the run Cancelled (not a green Completed), with the note in its message
    assert out["result"].is_cancelled() and "rejected; nothing changed: not now" in out["result"].message
    assert ([(r.number, r.status) for r in backend.revisions()], marked_pids("rbno")) == before
