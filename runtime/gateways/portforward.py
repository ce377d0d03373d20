"""``kubectl port-forward`` to a Service, for reaching a frontend that has no address this worker can use.

Run by the smoke stage (through ``KubeBackend.reach``) and always cleaned up: the kubectl process gets its
own session and is terminated (then killed) when the ``with`` block ends, however it ends. The local
port is chosen by kubectl (``:<remote>``) on 127.0.0.1 and read from its "Forwarding from" line, so two
runs never race for a port. ``tcp_open`` says whether an address (a LoadBalancer's, a pod's) accepts
connections from this worker at all, before a port-forward is chosen instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator

from runtime.errors import ToolError, TransientError
from runtime.gateways.toolchain import binary

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@contextlib.contextmanager
def port_forward(
    kubeconfig: str,
    context: str | None,
    namespace: str,
    target: str,
    remote_port: int,
    *,
    start_timeout_s: float = 30.0,
    executable: str | None = None,
) -> Iterator[str]:
    """Yield ``http://127.0.0.1:<port>`` forwarded to ``target`` (e.g. ``svc/x-frontend``) port ``remote_port``."""
    kubectl = executable or binary("kubectl")
    argv = [kubectl, "--kubeconfig", kubeconfig, "-n", namespace]
    if context:
        argv += ["--context", context]
    argv += ["port-forward", "--address", "127.0.0.1", target, f":{remote_port}"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
    }
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []
    found = threading.Event()
    port: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # keep draining, or kubectl blocks on a full pipe
            if len(lines) < 200:
                lines.append(line.rstrip())
            m = _FORWARDING.search(line)
            if m and not port:
                port.append(int(m.group(1)))
                found.set()
        found.set()

    reader = threading.Thread(target=read, name="port-forward-output", daemon=True)
    reader.start()
    try:
        found.wait(start_timeout_s)  # set by the reader: a forwarding line, or kubectl's output ended
        if not port:
            if found.is_set():  # its output ended: kubectl is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            detail = " | ".join(lines[-5:]) or f"no output (exit code {proc.poll()})"
            what = f"kubectl port-forward {target} -n {namespace}"
            if proc.poll() is None:
                raise TransientError(f"{what} did not start within {start_timeout_s:.0f}s: {detail}")
            raise ToolError(
                f"{what} failed: {detail}",
                hint="check that the Service has ready pods and that this identity may create "
                "pods/portforward in the namespace",
            )
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        _stop(proc)
        reader.join(2)


def _stop(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def tcp_open(url: str, timeout: float) -> bool:
    """Whether ``url``'s host and port accept a TCP connection within ``timeout`` seconds."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False
