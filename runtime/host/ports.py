"""Loopback ports on this machine: is one free, is one listening, pick a free one, whose is one.

A port is chosen by binding port 0 on the loopback address and reading back what the kernel gave.
Remembering a choice per deployment (ports.json) is the local target's business
(runtime/targets/local/ports.py); this module only asks the kernel.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from runtime.errors import PreflightError

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


def listening_ports(pids: list[int]) -> set[int]:
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
