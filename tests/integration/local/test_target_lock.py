"""One run per target: deploy waits while another run holds the target's concurrency slot."""

from __future__ import annotations

import threading
import time

import pytest
from prefect import get_client
from prefect.concurrency.sync import concurrency

from flows._lock import ensure_limit, limit_name
from flows.deploy import deploy
from runtime.local.backend import LocalBackend
from runtime.spec import load_spec

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
