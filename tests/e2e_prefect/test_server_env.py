"""The README's Prefect steps reuse the server the CLI started: `eval "$(dynadeploy server env)"` exports
the very API URL the CLI's own runs report to, so `prefect deploy`, the worker and the UI share one run
history with `dynadeploy deploy|canary|rollback`.

Real: the `dynadeploy` CLI in subprocesses (no PREFECT_API_URL in their environment, a temporary
DYNADEPLOY_HOME), the local Prefect server it starts, a teardown flow run of a never-deployed spec (the
cheapest run the CLI makes). Does not use the package's `stack` fixture.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import httpx
import pytest
import yaml

from tests.e2e_prefect.stack import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _cli(env: dict, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_server_env_prints_the_url_the_cli_runs_report_to(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"DYNADEPLOY_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect-client")}
    env.pop("DYNADEPLOY_PREFECT", None)
    spec = tmp_path / "env-probe.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "dynadeploy.io/v1",
                "name": "env-probe",
                "target": {"kind": "local", "state_dir": str(tmp_path / "home")},
                "model": {"id": "dynadeploy/tiny-mock"},
                "serving": {"topology": "agg"},
            }
        )
    )
    try:
        out = _cli(env, "server", "env")
        assert out.returncode == 0, out.stderr[-2000:]
        line = out.stdout.strip()
        assert line.startswith("export PREFECT_API_URL="), line
        url = shlex.split(line.removeprefix("export "))[0].split("=", 1)[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
        assert _cli(env, "server", "url").stdout.strip() == url  # `url` names the same server
        # a CLI run, PREFECT_API_URL still unset: it reports to the server `env` printed
        run = _cli(env, "teardown", str(spec))
        assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
        runs = httpx.post(
            f"{url}/flow_runs/filter",
            json={"flow_runs": {"tags": {"all_": ["target:env-probe"]}}},
            timeout=30,
        ).json()
        assert [r["state_type"] for r in runs] == ["COMPLETED"], runs
        # and with the variable exported (the README's `eval`), the CLI keeps using that server
        assert _cli(env | {"PREFECT_API_URL": url}, "server", "env").stdout.strip() == line
    finally:
        _cli(env, "server", "stop", timeout_s=60)
