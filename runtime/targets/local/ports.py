"""Free loopback ports, picked once per deployment and remembered.

A port is chosen by binding port 0 on the loopback address and reading back what the kernel gave.
The choice is persisted (ports.json) so a redeploy keeps the same endpoint; a remembered port that
something else has since taken is replaced, except the frontend's when the spec pins it.
"""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

from runtime.errors import PreflightError
from runtime.targets.local.paths import writable

# Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit integer, so worker health/metrics ports must stay
# below 32768, under the kernel's ephemeral range; those are drawn from this range instead.
LOW_RANGE = (20000, 32767)


def free_port(host: str = "127.0.0.1", *, low: bool = False) -> int:
    if low:
        for _ in range(200):
            port = random.randint(*LOW_RANGE)
            if port_is_free(port, host):
                return port
        raise PreflightError(f"no free port in {LOW_RANGE} on {host}", hint="free some ports in that range")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_is_listening(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


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


def allocate(path: Path, names: list[str], *, host: str, pinned: dict[str, int], in_use_by_us: set[str],
             low: bool = False) -> dict[str, int]:
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
