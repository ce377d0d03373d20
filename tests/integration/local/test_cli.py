"""The `dynadeploy` console script as users run it: a subprocess against a real Prefect server.

Checks the JSON contract of deploy/status/teardown, the exit codes, and that failures print one
line (no traceback) naming the reason and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.integration]

EXE = shutil.which("dynadeploy")


def run_cli(*args: str, api: str, home, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | {"PREFECT_API_URL": api, "DYNADEPLOY_HOME": str(home)}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_deploy_status_teardown_json(prefect_api, spec_dir, tmp_path):
    path = str(spec_dir("cli-json", {"topology": "agg"}, smoke={"requests": 12}))
    out = run_cli("deploy", path, "--output", "json", api=prefect_api, home=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"target", "endpoint", "model", "revision", "smoke"}
    assert result["target"] == "local" and result["revision"] == 1
    assert result["endpoint"].startswith("http://127.0.0.1:")
    assert result["smoke"]["passed"] is True and result["smoke"]["requests"] == 12

    status = run_cli("status", path, "--output", "json", api=prefect_api, home=tmp_path)
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["models"] == ["dynadeploy/tiny-mock"]
    assert [r["status"] for r in st["revisions"]] == ["serving"]
    assert st["revisions"][0]["smoke_passed"] is True

    down = run_cli("teardown", path, "--output", "json", api=prefect_api, home=tmp_path)
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["leftovers"] == []


def test_bad_spec_exits_2_with_path_and_fix_before_any_side_effect(prefect_api, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: dynadeploy.io/v1\nname: Bad_Name\ntarget: {kind: local, state_dir: %s}\n"
                   "serving: {topology: disagg}\n" % (tmp_path / "home"))
    out = run_cli("deploy", str(bad), api=prefect_api, home=tmp_path)
    assert out.returncode == 2
    first = out.stderr.splitlines()[0]
    assert first.startswith("error: invalid spec:") and "->" in first  # path: problem -> fix
    assert "serving.prefill" in out.stderr  # every issue is listed, not just the first
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "home").exists()


def test_runtime_failure_is_one_line_with_exit_1(prefect_api, spec_dir, tmp_path):
    model = {"id": "Qwen/Qwen3-0.6B", "revision": "c1899de289a04d12100db370d81485cdf75e47ca"}
    path = str(spec_dir("cli-nogpu", {"topology": "agg", "engine": "vllm"}, model=model))
    out = run_cli("deploy", path, api=prefect_api, home=tmp_path)
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "no NVIDIA GPU" in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in out.stderr
