"""What a local deployment has left on the machine: processes, listening ports, state on disk.

Every process dynadeploy starts for a deployment (supervisord included) carries
DYNADEPLOY_DEPLOYMENT_ID=<id> in its environment, where the id is unique to one deployment in one
state dir for one host user (DeploymentPaths.identity). A scan of /proc finds them even when
supervisord itself was killed; teardown uses the same scan to stop strays, and the inventory must
come back empty after it. The deployment's name is not enough: two homes (two users, two test runs)
deploy the same name side by side, and a teardown of one must never touch the other.

A process is signalled only through a pidfd opened *before* its marker is read, so a PID recycled
between the scan and the signal cannot be hit: the pidfd pins the process that was checked.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from runtime.domain.waiting import WaitTimeout, wait_until
from runtime.targets.local import ports as portlib
from runtime.targets.local.paths import IDENTITY_ENV, DeploymentPaths
from runtime.render.local_plan import DEPLOYMENT_ENV


def _marker(paths: DeploymentPaths) -> bytes:
    return f"{IDENTITY_ENV}={paths.identity}".encode()


def _carries(pid: int, marker: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's process (unreadable): not ours either way
        return False
    return marker in environ.split(b"\0")


def carries_identity(pid: int, paths: DeploymentPaths) -> bool:
    return _carries(pid, _marker(paths)) and _alive(pid)


def marked_pids(paths: DeploymentPaths | str) -> list[int]:
    """PIDs of live processes that carry this deployment's identity (never a zombie).

    Given a bare name it matches every home's deployment of that name: a read-only look for tests
    and people; nothing here signals or reports on a name alone.
    """
    marker = _marker(paths) if isinstance(paths, DeploymentPaths) else f"{DEPLOYMENT_ENV}={paths}".encode()
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if _carries(pid, marker) and _alive(pid):
            pids.append(pid)
    return sorted(pids)


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): with the PID, a process's identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields after it are split from the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def same_process(pid: int, started: int | None) -> bool:
    """True when ``pid`` is still the process that had start time ``started``."""
    return started is not None and _alive(pid) and start_time(pid) == started


def kill_marked(paths: DeploymentPaths, timeout_s: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout_s``, every process carrying this deployment's identity."""
    marker = _marker(paths)
    pinned: dict[int, int] = {}
    for pid in marked_pids(paths):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if _carries(pid, marker):  # checked after the pidfd pins the process: a recycled PID is never hit
            pinned[pid] = fd
        else:
            os.close(fd)
    try:
        for fd in pinned.values():
            _send(fd, signal.SIGTERM)
        with contextlib.suppress(WaitTimeout):  # bounded: what outlives SIGTERM gets SIGKILL below
            wait_until(lambda: not any(_alive(p) for p in pinned), timeout_s=timeout_s, interval_s=0.1,
                       what="the processes to exit")
        for pid, fd in pinned.items():
            if _alive(pid):
                _send(fd, signal.SIGKILL)
    finally:
        for fd in pinned.values():
            os.close(fd)
    return sorted(pinned)


def orphans(paths: DeploymentPaths, supervised: set[int]) -> list[int]:
    """This deployment's processes that no running supervisord watches (its children and itself excluded)."""
    out = []
    for pid in marked_pids(paths):
        if pid in supervised:
            continue
        if _ancestor_in(pid, supervised):
            continue
        out.append(pid)
    return out


def _ancestor_in(pid: int, pids: set[int]) -> bool:
    for _ in range(64):  # bounded walk up the process tree
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if ppid in pids:
            return True
        if ppid <= 1:
            return False
        pid = ppid
    return False


def leftovers(paths: DeploymentPaths, host: str = "127.0.0.1", ports: dict[str, int] | None = None) -> list[str]:
    """Human-readable list of everything still there; empty means fully torn down.

    ``ports`` are the deployment's ports as they were before teardown removed ports.json.
    """
    pids = marked_pids(paths)
    found = [f"process {pid}" for pid in pids]
    ours = _listening_ports(pids)
    for pname, port in (ports if ports is not None else portlib.load(paths.ports_file)).items():
        # A remembered port that someone else listens on now is theirs, not something we left.
        if port in ours and portlib.port_is_listening(port, host):
            found.append(f"port {port} ({pname}) still listening")
    if paths.socket.exists():
        found.append(f"supervisor socket {paths.socket}")
    if paths.root.exists():
        found.append(f"state directory {paths.root}")
    return found


def _listening_ports(pids: list[int]) -> set[int]:
    """TCP ports in LISTEN state whose socket belongs to one of ``pids``."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _send(pidfd: int, sig: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except OSError:  # already gone
        pass
