"""A local Prefect server that the CLI starts once and reuses, so runs are fast and show in the UI.

When PREFECT_API_URL is set the CLI uses that server and this module is not involved. Otherwise the
first CLI call starts `prefect server start` (SQLite under $DYNADEPLOY_HOME/prefect) in its own
session, bound to loopback, and later calls find it through server.json. `dynadeploy server stop`
stops it.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from runtime.errors import ToolError
from runtime.host import ports as portlib
from runtime.host.home import home
from runtime.host.processes import same_process, start_time

HOST = "127.0.0.1"
DEFAULT_PORT = 4200


def server_dir() -> Path:
    return home() / "prefect"


def _state_file() -> Path:
    return server_dir() / "server.json"


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2, verify=not url.startswith("http:")).status_code == 200
    except httpx.HTTPError:
        return False


def running_url() -> str | None:
    try:
        state = json.loads(_state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state["url"] if healthy(state["url"]) else None


@contextmanager
def _lock():
    server_dir().mkdir(parents=True, exist_ok=True)
    with open(server_dir() / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# What the detached server may inherit from the caller: enough to run Python and find its files.
# An allow-list, not a deny-list: the caller's HF_TOKEN, AWS_SECRET_ACCESS_KEY, cloud profiles,
# proxy URLs with passwords... would otherwise sit in a long-lived process's /proc/<pid>/environ,
# readable by that user's every process, for as long as the server runs. The server needs none.
_SERVER_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TEMP",
    "TMP",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def server_env(url: str) -> dict[str, str]:
    """The environment of the server process: the allow-list above, locale, and its own settings."""
    env = {k: v for k, v in os.environ.items() if k in _SERVER_ENV or k.startswith("LC_")}
    return env | {
        "PREFECT_HOME": str(server_dir()),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": url,
    }


def ensure_server(timeout_s: float = 180.0, on_wait=None) -> str:
    """Return the API URL of the local server, starting it if needed."""
    with _lock():
        url = running_url()
        if url:
            return url
        port = DEFAULT_PORT if portlib.port_is_free(DEFAULT_PORT, HOST) else portlib.free_port(HOST)
        url = f"http://{HOST}:{port}/api"
        env = server_env(url)
        log = open(server_dir() / "server.log", "ab")  # noqa: SIM115 - handed to the detached server
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        # The start time makes (pid, start) this server's identity: `server stop` signals nothing else.
        _state_file().write_text(
            json.dumps({"url": url, "pid": proc.pid, "port": port, "start": start_time(proc.pid)})
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ToolError(
                    f"prefect server exited with {proc.returncode}", hint=f"see {server_dir() / 'server.log'}"
                )
            if healthy(url):
                return url
            if on_wait:
                on_wait()
            time.sleep(0.5)
        raise ToolError(
            f"prefect server did not become healthy in {timeout_s:.0f}s",
            hint=f"see {server_dir() / 'server.log'}",
        )


def stop_server() -> bool:
    try:
        state = json.loads(_state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    pid = state.get("pid")
    # server.json can outlive its server (killed, host rebooted) and its PID be reused by anyone's
    # process: signal the group only while that PID is still the server this home started (same
    # kernel start time, a `prefect server start` whose PREFECT_HOME is this home's server dir).
    if isinstance(pid, int) and same_process(pid, state.get("start")) and _is_our_server(pid):
        try:  # the server leads its own session (start_new_session): its group is its children
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            pass
    _state_file().unlink(missing_ok=True)
    return True


def _is_our_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        b"prefect" in cmdline and b"server" in cmdline and f"PREFECT_HOME={server_dir()}".encode() in environ
    )
