"""The `dynadeploy` console script as users run it: a subprocess against a real Prefect server.

Checks the JSON contract of deploy/status/teardown, the exit codes, and that failures print one
line (no traceback) naming the reason and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend

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
    bad.write_text(
        "apiVersion: dynadeploy.io/v1\nname: Bad_Name\ntarget: {kind: local, state_dir: %s}\n"
        "serving: {topology: disagg}\n" % (tmp_path / "home")
    )
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


def _wait_paused(name: str, api: str, timeout_s: float = 120):
    from flows._approval import paused_rollbacks

    os.environ["PREFECT_API_URL"] = api
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = paused_rollbacks(name)
        if runs:
            return runs[0]
        time.sleep(0.5)
    raise AssertionError(f"no rollback of {name} paused for approval within {timeout_s}s")


def test_approve_and_reject_a_paused_rollback_from_the_terminal(prefect_api, spec_dir, tmp_path):
    from prefect import get_client

    from flows.deploy import deploy

    v1 = spec_dir("cli-appr", {"topology": "agg"}, smoke={"requests": 8})
    deploy(spec=str(v1))
    v2 = spec_dir("cli-appr", {"topology": "agg", "mocker": {"speedup_ratio": 6.0}}, smoke={"requests": 8})
    deploy(spec=str(v2))
    env = os.environ | {"PREFECT_API_URL": prefect_api, "DYNADEPLOY_HOME": str(tmp_path)}

    def start_rollback() -> subprocess.Popen:
        return subprocess.Popen(
            [EXE, "rollback", str(v2)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    # reject: nothing changes, the rollback exits 4 and its run is Cancelled with the note
    proc = start_rollback()
    paused = _wait_paused("cli-appr", prefect_api)
    nothing = run_cli("reject", str(v2), api=prefect_api, home=tmp_path)
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout.startswith("rejected the rollback of cli-appr to revision 1 (run ")
    assert f"/runs/flow-run/{paused.id}" in nothing.stdout
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "dynadeploy approve|reject" in err, err  # where to approve: a terminal, or the run's page
    assert f"/runs/flow-run/{paused.id}" in err, err
    assert "error: rollback of cli-appr to revision 1 rejected; nothing changed" in err
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(paused.id).state
    assert state.type.value == "CANCELLED" and "rejected" in state.message
    assert [r.status for r in LocalBackend(load_spec(v2)).revisions()] == ["superseded", "serving"]

    # approve, with a note: the revision is restored
    proc = start_rollback()
    _wait_paused("cli-appr", prefect_api)
    yes = run_cli(
        "approve", str(v2), "--note", "plan checked", "--output", "json", api=prefect_api, home=tmp_path
    )
    assert yes.returncode == 0, yes.stderr
    assert json.loads(yes.stdout) | {"flow_run": "", "flow_run_id": "", "url": ""} == {
        "name": "cli-appr",
        "answer": "approved",
        "revision": 1,
        "note": "plan checked",
        "flow_run": "",
        "flow_run_id": "",
        "url": "",
        "also_waiting": 0,
    }
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "serves the spec of revision 1 again, as revision 3" in out

    # nothing waits now: a clear error
    none = run_cli("approve", str(v2), api=prefect_api, home=tmp_path)
    assert none.returncode == 1 and "no rollback of cli-appr is waiting for approval" in none.stderr
