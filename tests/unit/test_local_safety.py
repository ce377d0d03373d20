"""Ownership and honesty of the local target's bookkeeping, without Dynamo: identities per state dir,
no signal to a process that merely reuses a recorded PID, clear disk errors, bounded ports.json,
frontend.replicas refused on local."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.errors import PreflightError, SpecError
from runtime.host import processes
from runtime.spec import API_VERSION, parse_spec
from runtime.targets.local import inventory
from runtime.targets.local import ports as portlib
from runtime.targets.local.paths import IDENTITY_ENV, DeploymentPaths
from runtime.targets.local.supervisor import Supervisor


@pytest.fixture
def stranger():
    """A process that is not ours (no marker), like anyone's process that got a recycled PID."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _marked(paths: DeploymentPaths):
    env = dict(os.environ, **{IDENTITY_ENV: paths.identity})
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)


def test_same_name_in_two_homes_has_two_identities_and_each_sees_only_its_own(tmp_path):
    a = DeploymentPaths.for_deployment("twin", str(tmp_path / "a"))
    b = DeploymentPaths.for_deployment("twin", str(tmp_path / "b"))
    assert a.identity != b.identity
    assert a.identity == DeploymentPaths.for_deployment("twin", str(tmp_path / "a")).identity
    pa, pb = _marked(a), _marked(b)
    try:
        assert inventory.marked_pids(a) == [pa.pid] and inventory.marked_pids(b) == [pb.pid]
        assert inventory.kill_marked(a, timeout_s=5) == [pa.pid]
        pa.wait(timeout=5)
        assert pb.poll() is None, "killing home a's deployment touched home b's process"
    finally:
        for p in (pa, pb):
            p.kill()
            p.wait()


def test_stale_supervisord_pid_is_never_signalled(tmp_path, stranger):
    paths = DeploymentPaths.for_deployment("stale", str(tmp_path))
    paths.make()
    paths.pidfile.write_text(f"{stranger.pid}\n")  # supervisord died; the kernel gave its PID away
    sup = Supervisor(paths)
    assert sup.pid() is None
    sup.shutdown(timeout_s=1)
    time.sleep(0.2)
    assert stranger.poll() is None, "shutdown killed a process that merely has the recorded PID"


def test_server_stop_never_signals_a_recycled_pid(tmp_path, monkeypatch, stranger):
    from runtime.gateways import prefect_server

    monkeypatch.setenv("DYNADEPLOY_HOME", str(tmp_path))
    prefect_server.server_dir().mkdir(parents=True)
    # server.json of a server that is gone, whose PID (and process group) now belongs to a stranger
    prefect_server._state_file().write_text(
        json.dumps(
            {
                "url": "http://127.0.0.1:9/api",
                "pid": stranger.pid,
                "port": 9,
                "start": processes.start_time(stranger.pid) - 1,
            }
        )
    )
    assert prefect_server.stop_server() is True
    time.sleep(0.2)
    assert stranger.poll() is None
    assert not prefect_server._state_file().exists()
    # same PID and start time but not a prefect server of this home: still not signalled
    prefect_server._state_file().write_text(
        json.dumps(
            {
                "url": "http://127.0.0.1:9/api",
                "pid": stranger.pid,
                "port": 9,
                "start": processes.start_time(stranger.pid),
            }
        )
    )
    prefect_server.stop_server()
    time.sleep(0.2)
    assert stranger.poll() is None


def test_start_time_identifies_a_process():
    me = os.getpid()
    assert processes.same_process(me, processes.start_time(me))
    assert not processes.same_process(me, processes.start_time(me) + 1)
    assert not processes.same_process(me, None)


def test_a_full_disk_names_the_path_and_the_fix(tmp_path):
    path = tmp_path / "ports.json"
    path.with_suffix(".tmp").symlink_to("/dev/full")  # every write there fails with ENOSPC
    with pytest.raises(PreflightError) as caught:
        portlib.save(path, {"frontend": 8000})
    message = str(caught.value)
    assert "ports.tmp" in message and "full disk" in message
    assert "target.state_dir" in message and "DYNADEPLOY_HOME" in message


def test_an_unwritable_state_dir_names_the_path_and_the_fix():
    paths = DeploymentPaths(root=Path("/sys/dynadeploy-test/deployments/x"), name="x")  # sysfs refuses mkdir
    with pytest.raises(PreflightError) as caught:
        paths.make()
    assert "/sys/dynadeploy-test" in str(caught.value) and "writable" in str(caught.value)


def test_retired_ports_leave_ports_json(tmp_path):
    path = tmp_path / "ports.json"
    portlib.save(path, {"frontend": 8000, "worker-r1-0": 20001, "worker-r2-0": 20002})
    portlib.forget(path, ["worker-r1-0"])
    assert portlib.load(path) == {"frontend": 8000, "worker-r2-0": 20002}


def test_frontend_replicas_on_local_is_refused_with_the_fix():
    doc = {
        "apiVersion": API_VERSION,
        "name": "fe",
        "target": {"kind": "local"},
        "serving": {"frontend": {"replicas": 2}},
    }
    with pytest.raises(SpecError) as caught:
        parse_spec(doc, source="t.yaml")
    issue = next(i for i in caught.value.issues if i.path == "serving.frontend.replicas")
    assert "one frontend" in issue.problem and "remove serving.frontend.replicas" in issue.fix
    ok = {**doc, "serving": {"frontend": {"replicas": 1}}}
    assert parse_spec(ok, source="t.yaml").serving.frontend.replicas == 1


def test_kill_marked_signals_nothing_without_the_marker(tmp_path, stranger):
    paths = DeploymentPaths.for_deployment("nobody", str(tmp_path))
    assert inventory.kill_marked(paths, timeout_s=1) == []
    assert stranger.poll() is None
    os.kill(stranger.pid, signal.SIGCONT)  # still alive and ours to signal in this test


def test_a_port_someone_else_listens_on_is_not_reported_as_ours(tmp_path):
    import socket

    paths = DeploymentPaths.for_deployment("gone", str(tmp_path / "home"))
    with socket.socket() as other:  # another deployment took our old port after we released it
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        assert inventory.leftovers(paths, ports={"frontend": port}) == []
