"""A gateway to a supervisord: launch the daemon, and carry calls to its XML-RPC API over its unix socket.

What a deployment's supervisord runs (its configuration, its programs, the scrubbed environment it
starts with) and what to wait for is the local target's policy (runtime/targets/local/supervisor.py);
this module only runs the process and speaks the protocol, translating its failures.
"""

from __future__ import annotations

import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from runtime.errors import ToolError

# What a call may raise when supervisord is gone, not yet listening, or shutting down.
RPC_ERRORS = (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError)


def start_daemon(conf: Path, env: dict[str, str], *, timeout_s: float, log: Path) -> None:
    """Run ``supervisord -c conf`` with exactly ``env``; it daemonizes, so this returns once it has forked.

    A supervisord that refuses to start (a bad config, a socket it cannot bind) is a ToolError that
    points at its ``log``.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        raise ToolError(
            f"supervisord failed to start: {proc.stderr.strip()[-300:] or proc.stdout.strip()[-300:]}",
            hint=f"see {log}",
        )


class Client:
    """One connection to the supervisord listening on ``socket`` (its ``supervisor.*`` XML-RPC namespace)."""

    def __init__(self, socket: Path) -> None:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{socket}")
        # XML-RPC is untyped: each method's result is whatever supervisord sends (documented shapes)
        self.rpc: Any = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def running(self) -> bool:
        """True when supervisord answers and says it is RUNNING; False when it is gone or unreachable."""
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except RPC_ERRORS:
            return False

    def process_info(self) -> list[dict]:
        return self.rpc.getAllProcessInfo()

    def reload(self) -> tuple[list[str], list[str], list[str]]:
        """Re-read the config files: the program groups (added, changed, removed) since the last read."""
        [[added, changed, removed]] = self.rpc.reloadConfig()
        return added, changed, removed

    def add_group(self, name: str) -> None:
        self.rpc.addProcessGroup(name)

    def stop_and_remove(self, name: str) -> None:
        """Stop (waiting for it) and forget a program group; one already stopped or gone is no error."""
        try:
            self.rpc.stopProcessGroup(name, True)
        except xmlrpc.client.Fault:
            pass
        try:
            self.rpc.removeProcessGroup(name)
        except xmlrpc.client.Fault:
            pass

    def restart(self, name: str) -> None:
        try:
            self.rpc.stopProcess(name, True)
        except xmlrpc.client.Fault:
            pass
        self.rpc.startProcess(name, True)

    def signal(self, name: str, sig: str) -> None:
        self.rpc.signalProcess(name, sig)

    def shutdown(self) -> None:
        """Ask supervisord to stop its programs and exit; one already going away is no error."""
        try:
            self.rpc.shutdown()
        except RPC_ERRORS:
            pass
