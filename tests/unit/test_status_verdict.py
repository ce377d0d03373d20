"""dynadeploy status's one verdict (flows/_status.py)."""

from __future__ import annotations

import dataclasses

from flows._status import verdict
from runtime.targets.base import RevisionRow, Status


def rev(number: int, status: str, spec_hash: str, reason: str, smoke_passed: bool | None) -> RevisionRow:
    return RevisionRow(
        number=number,
        status=status,
        created_at="2026-01-01T00:00:00Z",
        reason=reason,
        spec_hash=spec_hash,
        model={"id": "m"},
        smoke_passed=smoke_passed,
    )


REV1 = rev(1, "superseded", "aaaaaaaaaaaa", "deploy", True)
REV2 = rev(2, "serving", "bbbbbbbbbbbb", "rollback to revision 0: x", True)
UP = {"frontend": {"state": "RUNNING"}, "worker-r2-0": {"state": "RUNNING"}}


def status(**kw) -> Status:
    base = {"endpoint": "http://127.0.0.1:1", "models": ["m"], "processes": UP, "revisions": [REV1, REV2]}
    return Status(target="local", name="t", **(base | kw))


def test_serving():
    v = verdict(status(), "bbbbbbbbbbbb" + "0" * 52)
    assert v == {"verdict": "serving", "reasons": [], "serving_revision": 2, "warnings": []}


def test_not_deployed():
    assert (
        verdict(Status(target="local", name="t", endpoint=None, models=[], processes={}, revisions=[]))[
            "verdict"
        ]
        == "not deployed"
    )


def test_degraded_says_why():
    v = verdict(
        status(models=[], processes={"frontend": {"state": "RUNNING"}, "worker-r2-0": {"state": "FATAL"}})
    )
    assert v["verdict"] == "degraded"
    assert v["reasons"] == ["no model served at http://127.0.0.1:1", "not running: worker-r2-0 (FATAL)"]
    kube = verdict(status(processes={"p": {"state": "Pending"}}, ready=False, reasons=["worker 0/1 ready"]))
    assert (
        "graph not ready: worker 0/1 ready" in kube["reasons"]
        and "not running: p (Pending)" in kube["reasons"]
    )
    failed = verdict(status(revisions=[REV1, dataclasses.replace(REV2, smoke_passed=False)]))
    assert failed["reasons"] == ["revision 2 failed its smoke test"]


def test_spec_file_differs_from_the_serving_revision():
    v = verdict(status(), "cccccccccccc" + "0" * 52)
    assert v["verdict"] == "serving"
    assert v["warnings"] == [
        "the spec file differs from serving revision 2: `dynadeploy deploy` would roll the "
        "file out, undoing the rollback that revision is"
    ]
