"""dynadeploy status's one verdict (flows/_status.py)."""

from __future__ import annotations

from flows._status import verdict

REV1 = {"number": 1, "status": "superseded", "spec_hash": "aaaaaaaaaaaa", "reason": "deploy", "smoke_passed": True}
REV2 = {"number": 2, "status": "serving", "spec_hash": "bbbbbbbbbbbb", "reason": "rollback to revision 0: x",
        "smoke_passed": True}
UP = {"frontend": {"state": "RUNNING"}, "worker-r2-0": {"state": "RUNNING"}}


def status(**kw) -> dict:
    return {"endpoint": "http://127.0.0.1:1", "models": ["m"], "processes": UP, "revisions": [REV1, REV2]} | kw


def test_serving():
    v = verdict(status(), "bbbbbbbbbbbb" + "0" * 52)
    assert v == {"verdict": "serving", "reasons": [], "serving_revision": 2, "warnings": []}


def test_not_deployed():
    assert verdict({"models": [], "processes": {}, "revisions": []})["verdict"] == "not deployed"


def test_degraded_says_why():
    v = verdict(status(models=[], processes={"frontend": {"state": "RUNNING"}, "worker-r2-0": {"state": "FATAL"}}))
    assert v["verdict"] == "degraded"
    assert v["reasons"] == ["no model served at http://127.0.0.1:1", "not running: worker-r2-0 (FATAL)"]
    kube = verdict(status(processes={"p": {"state": "Pending"}}, ready=False, reasons=["worker 0/1 ready"]))
    assert "graph not ready: worker 0/1 ready" in kube["reasons"] and "not running: p (Pending)" in kube["reasons"]
    failed = verdict(status(revisions=[REV1, REV2 | {"smoke_passed": False}]))
    assert failed["reasons"] == ["revision 2 failed its smoke test"]


def test_spec_file_differs_from_the_serving_revision():
    v = verdict(status(), "cccccccccccc" + "0" * 52)
    assert v["verdict"] == "serving"
    assert v["warnings"] == ["the spec file differs from serving revision 2: `dynadeploy deploy` would roll the "
                             "file out, undoing the rollback that revision is"]
