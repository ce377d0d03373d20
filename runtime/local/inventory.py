"""What a local deployment has left on the machine: processes, listening ports, state on disk.

Every process dynadeploy starts carries DYNADEPLOY_DEPLOYMENT=<name> in its environment, so a scan
of /proc finds them even when supervisord itself was killed; teardown uses the same scan to stop
strays, and the inventory must come back empty after it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from runtime.local import ports as portlib
from runtime.local.paths import DeploymentPaths
from runtime.local.plan import DEPLOYMENT_ENV


def marked_pids(name: str) -> list[int]:
    marker = f"{DEPLOYMENT_ENV}={name}".encode()
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            pids.append(int(entry.name))
    return sorted(pids)


def kill_marked(name: str, timeout_s: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout_s``, every process marked for this deployment."""
    pids = marked_pids(name)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    return pids


def leftovers(paths: DeploymentPaths, host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> list[str]:
    """Human-readable list of everything still there; empty means fully torn down.

    ``ports`` are the deployment's ports as they were before teardown removed ports.json.
    """
    found = [f"process {pid}" for pid in marked_pids(paths.name)]
    for pname, port in (ports if ports is not None else portlib.load(paths.ports_file)).items():
        if portlib.port_is_listening(port, host):
            found.append(f"port {port} ({pname}) still listening")
    if paths.socket.exists():
        found.append(f"supervisor socket {paths.socket}")
    if paths.root.exists():
        found.append(f"state directory {paths.root}")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass
