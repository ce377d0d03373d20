"""A local deployment's loopback ports, picked once and remembered in its ports.json.

The choice is persisted so a redeploy keeps the same endpoint; a remembered port that something else
has since taken is replaced, except the frontend's when the spec pins it. Asking the kernel (is a
port free, pick a free one) is runtime/host/ports.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from runtime.errors import PreflightError
from runtime.host.home import writable
from runtime.host.ports import LOW_RANGE, free_port, port_is_free


def load(path: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}


def save(path: Path, ports: dict[str, int]) -> None:
    tmp = path.with_suffix(".tmp")
    with writable(tmp):
        tmp.write_text(json.dumps(ports, indent=2, sort_keys=True))
    os.replace(tmp, path)


def forget(path: Path, names) -> None:
    """Drop retired programs' ports, so ports.json holds what runs now and not every revision ever."""
    ports = load(path)
    kept = {k: v for k, v in ports.items() if k not in set(names)}
    if kept != ports:
        save(path, kept)


def allocate(
    path: Path,
    names: list[str],
    *,
    host: str,
    pinned: dict[str, int],
    in_use_by_us: set[str],
    low: bool = False,
) -> dict[str, int]:
    """Return a port per name, reusing remembered ones.

    ``in_use_by_us`` names ports whose listeners are this deployment's own running processes (so a
    busy port is expected, not a conflict). ``pinned`` ports come from the spec and are never
    replaced; if one is taken by someone else that is a preflight error.
    """
    ports = load(path)
    for name in names:
        want = pinned.get(name) or ports.get(name)
        if want and (not low or want <= LOW_RANGE[1]) and (name in in_use_by_us or port_is_free(want, host)):
            ports[name] = want
            continue
        if name in pinned:
            raise PreflightError(
                f"port {pinned[name]} on {host} for the {name} is already in use by another process",
                hint="stop what listens there, or set target.frontend_port to a free port (or remove it to pick one)",
            )
        ports[name] = free_port(host, low=low)
    save(path, ports)
    return ports
