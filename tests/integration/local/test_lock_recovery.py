"""The target slot survives crashes honestly: a holder that is gone frees it at once, a slot left
counted by a Prefect server restart is given back, and a slot that cannot be proven free is reported
with the command that frees it. Real Prefect server (the session's test server), real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

from flows import _lock
from runtime.errors import TransientError
from runtime.host.processes import start_time
from runtime.spec import load_spec

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]


def _slots(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def _set_slots(name: str, n: int) -> None:
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=n))


def _dead_holder_record(spec, name: str) -> Path:
    """A holder record of this host and user naming a process that has exited, with a lease the
    server never knew."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = start_time(gone.pid)
    gone.wait()
    record = _lock.holder_file(spec, name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "pid": gone.pid,
                "start": started,
                "host": socket.gethostname(),
                "uid": os.getuid(),
                "lease_id": str(uuid.uuid4()),
                "since": "2026-01-01T00:00:00Z",
            }
        )
    )
    return record


def test_a_killed_holder_frees_the_slot_at_once(prefect_api, spec_dir):
    path = spec_dir("lockdead", {"topology": "agg"})
    spec = load_spec(path)
    name = _lock.limit_name(spec)
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[2]);"
        "from flows._lock import target_lock; from runtime.spec import load_spec;"
        "cm = target_lock(load_spec(sys.argv[1])); cm.__enter__(); print('held', flush=True); time.sleep(600)"
    )
    env = dict(os.environ, PREFECT_API_URL=prefect_api)
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(REPO)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _slots(name) == 1
        holder.send_signal(signal.SIGKILL)  # the deploy CLI dies while holding the target
    finally:
        holder.kill()  # also when an assertion above failed first: never wait on a holder that sleeps 600 s
        holder.wait(timeout=30)
    t0 = time.monotonic()
    with _lock.target_lock(spec, timeout_s=40):
        waited = time.monotonic() - t0
        assert _slots(name) == 1
    assert waited < 15, (
        f"waited {waited:.0f}s for a holder that was gone (the lease alone would take 60-75 s)"
    )
    assert _slots(name) == 0


def test_a_slot_left_counted_by_a_server_restart_is_given_back(prefect_api, spec_dir):
    path = spec_dir("lockrestart", {"topology": "agg"})
    spec = load_spec(path)
    name = _lock.limit_name(spec)
    _lock.ensure_limit(name)
    # What a server restart leaves: the count in its database, the lease (server memory) gone, and
    # the holder (killed with the host, or by the operator) recorded as a process that no longer exists.
    record = _dead_holder_record(spec, name)
    _set_slots(name, 1)
    with _lock.target_lock(spec, timeout_s=20):
        assert _slots(name) == 1
    assert _slots(name) == 0 and not record.exists()


def test_a_long_dead_holder_never_gives_back_a_slot_someone_else_holds(prefect_api, spec_dir):
    """A record left by a holder that died more than a lease ago: its lease expired and the server
    freed its slot by itself, so the count now held belongs to another run (on a kube target, another
    home's: the limit is shared, the records are not). The stale record goes; the count stays."""
    path = spec_dir("lockstale", {"topology": "agg"})
    spec = load_spec(path)
    name = _lock.limit_name(spec)
    _lock.ensure_limit(name)
    record = _dead_holder_record(spec, name)
    long_ago = time.time() - 10 * _lock.LEASE_S
    os.utime(record, (long_ago, long_ago))
    _set_slots(name, 1)  # the other run's slot
    try:
        assert _lock.reclaim_if_holder_gone(name, record)
        assert not record.exists() and _slots(name) == 1
    finally:
        _set_slots(name, 0)


def test_a_stuck_slot_is_reported_with_the_command_that_frees_it(prefect_api, spec_dir):
    path = spec_dir("lockstuck", {"topology": "agg"})
    spec = load_spec(path)
    name = _lock.limit_name(spec)
    _lock.ensure_limit(name)
    _set_slots(name, 1)  # held by nobody this host can see
    try:
        with pytest.raises(TransientError) as caught, _lock.target_lock(spec, timeout_s=3):
            pass
        message = str(caught.value)
        assert f"prefect gcl update {name} --active-slots 0" in message
        assert "lockstuck" in message
    finally:
        _set_slots(name, 0)


def test_the_same_name_in_two_homes_takes_two_slots(spec_dir, tmp_path):
    a = load_spec(spec_dir("twinlock", {"topology": "agg"}))
    other = tmp_path / "other"
    other.mkdir()
    from tests.integration.local.conftest import write_spec

    b = load_spec(write_spec(other, "twinlock", {"topology": "agg"}))
    assert _lock.limit_name(a) != _lock.limit_name(b)
    assert _lock.limit_name(a).startswith("dynadeploy-target-twinlock-")
