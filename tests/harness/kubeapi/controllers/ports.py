"""Loopback addresses and ports for the simulator's real processes and proxies (stdlib sockets only).

The simulator picks its own: the process runtime's pods and the traffic layer's proxies bind addresses
on 127.0.0.0/8 the way a node's pods would get an IP, so they need a free (address, port) pair.
"""

from __future__ import annotations

import random
import socket

# Dynamo reads DYN_SYSTEM_PORT as a signed 16-bit integer, so a worker's health/metrics port must stay
# below 32768 (under the kernel's ephemeral range): those are drawn from this range instead.
LOW_RANGE = (20000, 32767)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1", *, low: bool = False) -> int:
    """A free port on ``host``: the kernel's pick, or with ``low`` one from ``LOW_RANGE``."""
    if low:
        for _ in range(200):
            port = random.randint(*LOW_RANGE)
            if port_is_free(port, host):
                return port
        raise RuntimeError(f"no free port in {LOW_RANGE} on {host}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
