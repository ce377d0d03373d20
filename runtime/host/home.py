"""The dynadeploy home: where every target keeps its state on this machine, and writing to it.

$DYNADEPLOY_HOME (default ~/.dynadeploy; a spec's target.state_dir overrides it)
├── deployments/<name>/    one directory per deployment (the local target's layout:
│                          runtime/targets/local/paths.py; cloud and ECS: deployments/<name>/<kind>/)
├── models/                the local model cache, shared by all deployments
├── locks/                 the target lock's holder records (flows/_lock.py)
└── prefect/               the CLI's own Prefect server (runtime/gateways/prefect_server.py)
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path

from runtime import settings
from runtime.errors import PreflightError


def home(state_dir: str | None = None) -> Path:
    """The dynadeploy home: the spec's target.state_dir, else $DYNADEPLOY_HOME, else ~/.dynadeploy."""
    if state_dir:
        return Path(state_dir).expanduser().resolve()
    env = settings.home()
    return Path(env).expanduser().resolve() if env else Path.home() / ".dynadeploy"


_DISK_ERRNOS = {
    errno.EROFS: "is on a read-only file system",
    errno.ENOSPC: "is on a full disk",
    errno.EDQUOT: "is over its disk quota",
    errno.EACCES: "is not writable by this user",
    errno.EPERM: "is not writable by this user",
}


@contextmanager
def writable(path: Path):
    """Turn a raw OSError from writing state into an error that names the path and the fix."""
    try:
        yield
    except OSError as e:
        why = _DISK_ERRNOS.get(e.errno) if e.errno is not None else None
        if why is None:
            raise
        raise PreflightError(
            f"cannot write {e.filename or path}: it {why} ({e.strerror})",
            hint="free space there or make it writable, or point target.state_dir (or $DYNADEPLOY_HOME) "
            "at a writable directory with free space",
        ) from None
