"""A deploy and a teardown through the real flows with the target's AWS credentials from a Prefect block, and
the proof that the secret goes nowhere: not into the flow and task runs' logs (read back from the Prefect
API), nor the artifacts, the flow run parameters or the task runs Prefect stores, nor what Python logging
or stdout/stderr saw, nor any file under DYNADEPLOY_HOME or Prefect's local result storage.

ECS on moto (as in test_e2e.py: moto runs no containers, so the frontend's address is a real local Dynamo
frontend + mocker), with a loopback proxy in front of moto recording every request's SigV4 key id: all
of them, from every task, carry the block's access key id, not the worker environment's.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pytest

from flows.deploy import deploy
from flows.teardown import teardown
from runtime.providers import access, get_provider
from tests.harness.credential_blocks import AwsCredentials
from tests.integration.clouds.conftest import FAST, cloud_doc
from tests.integration.clouds.test_e2e import local_dynamo  # noqa: F401 - fixture
from tests.integration.providers.aws_proxy import AwsFaultProxy

pytestmark = pytest.mark.integration

KEY_ID = "AKIADYNADEPLOYFLOW01"


def prefect_records(flow_run_ids: list) -> dict[str, str]:
    """Everything the Prefect server keeps about these flow runs, as text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the logs still queued in this process
    runs = FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids))
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)))
        artifacts = client.read_artifacts(flow_run_filter=runs)
        flow_runs = [client.read_flow_run(i) for i in flow_run_ids]
        task_runs = client.read_task_runs(flow_run_filter=runs)
    return {
        "logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(a.model_dump_json() for a in artifacts),
        "flow_runs": "\n".join(r.model_dump_json() for r in flow_runs),
        "task_runs": "\n".join(t.model_dump_json() for t in task_runs),
    }


def files_holding(roots: list[Path], needles: list[str]) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*") if root.is_dir() else []:
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path}: {n[:12]}..." for n in needles if n.encode() in data]
    return found


def test_a_deploy_with_a_credentials_block_signs_every_call_with_it_and_leaks_it_nowhere(
    prefect_api,
    aws_env,
    monkeypatch,
    local_dynamo,  # noqa: F811 - a pytest fixture imported from another test module
    dynadeploy_home,
    caplog,
    capfd,
):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    from runtime.targets.ecs.serving import EcsServing

    secret_key = f"ddflowsecret{secrets.token_hex(10)}"
    session_token = f"ddflowsession{secrets.token_hex(10)}"
    AwsCredentials(
        aws_access_key_id=KEY_ID, aws_secret_access_key=secret_key, aws_session_token=session_token
    ).save("ecs-flow-creds", overwrite=True)
    proxy = AwsFaultProxy(aws_env).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # the worker's env keeps AWS_ACCESS_KEY_ID=testing
    given = []

    def make_provider(
        kind, credentials=None
    ):  # the real provider with the credentials it is handed, fast waits
        given.append(credentials)
        return get_provider(kind, waits=FAST, credentials=credentials)

    monkeypatch.setattr(access, "make_provider", make_provider)
    monkeypatch.setattr(EcsServing, "frontend_address", lambda self, spec: local_dynamo)
    caplog.set_level(logging.DEBUG)
    doc = cloud_doc("ecs", "ct-ecs-creds")
    doc["target"]["credentials"] = {"block": "ecs-flow-creds"}
    try:
        up = deploy(spec=doc, return_state=True)
        result = up.result()
        down = teardown(spec=doc, return_state=True)
        assert down.result()["leftovers"] == []
    finally:
        proxy.stop()
    assert result["smoke"]["passed"] and result["revision"] == 1

    # every task built its provider from the block, and every AWS request was signed with its key
    assert len(given) >= 6 and {c.access_key_id for c in given} == {KEY_ID}
    assert len(proxy.authorizations) > 30 and proxy.key_ids() == {KEY_ID}

    records = prefect_records([up.state_details.flow_run_id, down.state_details.flow_run_id])
    assert records["logs"] and records["artifacts"] and records["task_runs"]
    assert "ecs-flow-creds" in records["flow_runs"]  # the parameters name the block, nothing more
    out, err = capfd.readouterr()
    seen = {**records, "python logging": caplog.text, "stdout": out, "stderr": err}
    for what, text in seen.items():
        for needle in (secret_key, session_token):
            assert needle not in text, f"a secret of the block is in the {what}"
    storage = Path(str(PREFECT_LOCAL_STORAGE_PATH.value()))
    assert files_holding([dynadeploy_home, storage], [secret_key, session_token]) == []
    assert json.dumps(result, default=str).find(secret_key) == -1
