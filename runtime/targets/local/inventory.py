"""What a local deployment has left on the machine: processes, listening ports, state on disk.

Every process dynadeploy starts for a deployment (supervisord included) carries
DYNADEPLOY_DEPLOYMENT_ID=<id> in its environment, where the id is unique to one deployment in one
state dir for one host user (DeploymentPaths.identity). A scan of /proc finds them even when
supervisord itself was killed; teardown uses the same scan to stop strays, and the inventory must
come back empty after it. The deployment's name is not enough: two homes (two users, two test runs)
deploy the same name side by side, and a teardown of one must never touch the other.

The machine-level mechanics (the /proc scan, start times, signals through a pidfd, listening
sockets) are runtime/host/; this module decides what belongs to one deployment.
"""

from __future__ import annotations

from runtime.host import ports as hostports
from runtime.host import processes
from runtime.render.local_plan import DEPLOYMENT_ENV
from runtime.targets.local import ports as portlib
from runtime.targets.local.paths import IDENTITY_ENV, DeploymentPaths


def _marker(paths: DeploymentPaths) -> bytes:
    return f"{IDENTITY_ENV}={paths.identity}".encode()


def carries_identity(pid: int, paths: DeploymentPaths) -> bool:
    return processes.carries(pid, _marker(paths)) and processes.alive(pid)


def marked_pids(paths: DeploymentPaths | str) -> list[int]:
    """PIDs of live processes that carry this deployment's identity (never a zombie).

    Given a bare name it matches every home's deployment of that name: a read-only look for tests
    and people; nothing here signals or reports on a name alone.
    """
    marker = _marker(paths) if isinstance(paths, DeploymentPaths) else f"{DEPLOYMENT_ENV}={paths}".encode()
    return processes.pids_carrying(marker)


def kill_marked(paths: DeploymentPaths, timeout_s: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout_s``, every process carrying this deployment's identity."""
    return processes.kill_carrying(_marker(paths), timeout_s)


def orphans(paths: DeploymentPaths, supervised: set[int]) -> list[int]:
    """This deployment's processes that no running supervisord watches (its children and itself excluded)."""
    out = []
    for pid in marked_pids(paths):
        if pid in supervised:
            continue
        if processes.has_ancestor_in(pid, supervised):
            continue
        out.append(pid)
    return out


def leftovers(
    paths: DeploymentPaths, host: str = "127.0.0.1", ports: dict[str, int] | None = None
) -> list[str]:
    """Human-readable list of everything still there; empty means fully torn down.

    ``ports`` are the deployment's ports as they were before teardown removed ports.json.
    """
    pids = marked_pids(paths)
    found = [f"process {pid}" for pid in pids]
    ours = hostports.listening_ports(pids)
    for pname, port in (ports if ports is not None else portlib.load(paths.ports_file)).items():
        # A remembered port that someone else listens on now is theirs, not something we left.
        if port in ours and hostports.port_is_listening(port, host):
            found.append(f"port {port} ({pname}) still listening")
    if paths.socket.exists():
        found.append(f"supervisor socket {paths.socket}")
    if paths.root.exists():
        found.append(f"state directory {paths.root}")
    return found
