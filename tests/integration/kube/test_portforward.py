"""runtime/gateways/portforward.py with a stand-in kubectl (the simulator has no pods/portforward stream): the local port is
read from kubectl's "Forwarding from" line, the forward serves while the block runs, and the process is gone
afterwards however the block ends; a kubectl that fails says why.
"""

from __future__ import annotations

import os
import sys
import textwrap

import httpx
import pytest

from runtime.errors import ToolError
from runtime.gateways.portforward import port_forward

pytestmark = pytest.mark.integration

FAKE_KUBECTL = textwrap.dedent("""\
    #!{python}
    # Stands in for `kubectl port-forward`: serves HTTP on a free loopback port and announces it the way
    # kubectl does; records its argv and pid.
    import http.server, os, sys, pathlib
    out = pathlib.Path(os.environ["FAKE_KUBECTL_OUT"])
    out.write_text(" ".join(sys.argv[1:]) + "\\n" + str(os.getpid()))
    if os.environ.get("FAKE_KUBECTL_FAIL"):
        print('error: services "x" not found', flush=True)
        sys.exit(1)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"forwarded")
        def log_message(self, *a): pass
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    print(f"Forwarding from 127.0.0.1:{{srv.server_port}} -> 8000", flush=True)
    print(f"Forwarding from [::1]:{{srv.server_port}} -> 8000", flush=True)
    srv.serve_forever()
""")


@pytest.fixture
def fake_kubectl(tmp_path, monkeypatch):
    path = tmp_path / "kubectl"
    path.write_text(FAKE_KUBECTL.format(python=sys.executable))
    path.chmod(0o755)
    monkeypatch.setenv("FAKE_KUBECTL_OUT", str(tmp_path / "argv"))
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_forward_serves_and_is_cleaned_up(fake_kubectl, tmp_path):
    with port_forward("/k/config", "ctx", "ns1", "svc/g-frontend", 8000, executable=str(fake_kubectl)) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url, trust_env=False).text == "forwarded"
        argv, pid = (tmp_path / "argv").read_text().splitlines()
        assert argv == (
            "--kubeconfig /k/config -n ns1 --context ctx port-forward --address 127.0.0.1 "
            "svc/g-frontend :8000"
        )
        assert _alive(int(pid))
    assert not _alive(int(pid))

    with (  # noqa: PT012 - the context manager under test is part of the raising block
        pytest.raises(RuntimeError, match="boom"),
        port_forward("/k/config", None, "ns1", "svc/g-frontend", 8000, executable=str(fake_kubectl)),
    ):
        pid = int((tmp_path / "argv").read_text().splitlines()[1])
        raise RuntimeError("boom")
    assert not _alive(pid)


def test_a_failing_kubectl_says_why(fake_kubectl, monkeypatch):
    monkeypatch.setenv("FAKE_KUBECTL_FAIL", "1")
    with (
        pytest.raises(ToolError, match='services "x" not found') as info,
        port_forward("/k/config", None, "ns1", "svc/x", 8000, executable=str(fake_kubectl)),
    ):
        pass
    assert "pods/portforward" in info.value.hint
