"""One run per target: deploy waits while another run holds the target's concurrency slot."""

from __future__ import annotations

import threading
import time

import pytest
from prefect import get_client
from prefect.concurrency.sync import concurrency

from flows._lock import ensure_limit, limit_name
from flows.deploy import deploy
from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend

pytestmark = [pytest.mark.integration]


def test_deploy_queues_behind_a_run_holding_the_target(prefect_api, spec_dir):
    path = spec_dir("locked", {"topology": "agg"}, smoke={"requests": 8})
    spec = load_spec(path)
    name = limit_name(spec)
    ensure_limit(name)
    backend = LocalBackend(spec)
    out: dict = {}
    with concurrency(name, occupy=1, strict=True):  # e.g. a canary running on the same target
        runner = threading.Thread(target=lambda: out.setdefault("result", deploy(spec=str(path))))
        runner.start()
        time.sleep(4)
        assert not backend.paths.root.exists(), "deploy started while another run held the target"
    runner.join(timeout=240)
    assert out["result"]["smoke"]["passed"]
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
    assert limit.limit == 1 and limit.active_slots == 0


def test_a_waiting_deploy_says_who_holds_the_slot(prefect_api, spec_dir, monkeypatch):
    """The holder is a real flow run (named like the canary flow, holding the slot the same way); the
    waiting deploy names it, with its state and URL, and says it again while it waits."""
    import logging

    from prefect import flow

    from flows import _slot_report
    from flows._lock import target_lock
    from flows._spec import load

    monkeypatch.setattr(_slot_report, "REPEAT_S", 1.0)
    path = spec_dir("held", {"topology": "agg"}, smoke={"requests": 8})
    held, release = threading.Event(), threading.Event()

    @flow(name="canary")
    def holder(spec: str) -> None:
        with target_lock(load(spec)):
            held.set()
            release.wait(120)

    said: list[dict] = []

    class Keep(logging.Handler):
        def emit(self, record):
            said.append(record.dynadeploy)

    progress = logging.getLogger("dynadeploy.progress")
    keep = Keep()
    progress.addHandler(keep)
    progress.setLevel(logging.INFO)
    out: dict = {}
    h = threading.Thread(target=holder, kwargs={"spec": str(path)})
    h.start()
    try:
        assert held.wait(120)
        runner = threading.Thread(target=lambda: out.setdefault("result", deploy(spec=str(path))))
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len([r for r in said if r["stage"] == "slot"]) < 2:
            time.sleep(0.2)
        release.set()
        runner.join(timeout=240)
    finally:
        release.set()
        h.join(timeout=60)
        progress.removeHandler(keep)
    waits = [r["detail"] for r in said if r["stage"] == "slot" and r["event"] == "start"]
    assert len(waits) >= 2, said
    assert "for the slot of held: held by canary run " in waits[0] and "(Running, since " in waits[0]
    assert "/runs/flow-run/" in waits[0] and waits[0].endswith("Ctrl-C gives up")
    assert [r["event"] for r in said if r["stage"] == "slot"][-1] == "done"
    assert out["result"]["smoke"]["passed"]
