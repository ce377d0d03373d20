"""``python -m tests.harness.kubeapi --kubeconfig PATH`` runs the simulator standalone until stopped.

Simulated: the same server and basic controllers as the fixture, in its own process. Not simulated:
persistence across restarts (state lives in memory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from .conftest import REPO

pytestmark = pytest.mark.integration


def test_standalone_server_prints_url_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "sim.kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.kubeapi", "--kubeconfig", str(kubeconfig)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("kubeapi simulator listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert f"server: {url}" in kubeconfig.read_text()
        with urllib.request.urlopen(url + "/version") as resp:
            assert json.loads(resp.read())["gitVersion"].startswith("v1.")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
