"""The no-op converge (flows/_converge.py) on one real local deployment and a real Prefect server.

It takes over only when nothing differs and the deployment is healthy, and then its run is an
ordinary Completed ``deploy`` flow run with the CLI's tags; a changed spec, another revision serving,
a rendered program that differs, a taken slot or a stopped worker each leave the work to the full
deploy flow. One deployment serves every test of the module (each restores what it changes), so the
order of the tests matters: the last ones change the deployment itself.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess

import pytest
import yaml

from flows._converge import converge, plan, slot_name
from flows.deploy import deploy
from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend
from tests.integration.local.conftest import write_spec

pytestmark = [pytest.mark.integration]

NAME = "converge"


@pytest.fixture(scope="module")
def served(prefect_api, tmp_path_factory):
    """The deployment: its spec file, serving revision 1 (deployed by the full flow)."""
    directory = tmp_path_factory.mktemp("converge")
    path = write_spec(directory, NAME, {"topology": "agg"}, smoke={"requests": 8})
    old = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = prefect_api  # the CLI's hook reads the server from here
    result = deploy(spec=str(path))
    assert result["revision"] == 1 and result["smoke"]["passed"]
    yield path
    LocalBackend(load_spec(path)).teardown()
    if old is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = old


def read_run(name: str):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
        return run, client.read_flow(run.flow_id)


def test_the_slot_is_named_as_the_lock_names_it(served):
    from flows._lock import limit_name

    spec = load_spec(served)
    assert slot_name(spec) == limit_name(spec)


def test_nothing_differs_and_healthy_records_a_completed_deploy_run_with_tags(served, caplog):
    caplog.set_level(logging.DEBUG, logger="dynadeploy.converge")
    spec = load_spec(served)
    assert plan(str(served), spec)[0] is None
    result = converge(str(served), spec)
    assert result is not None, caplog.text  # why the full flow would run
    assert result["no_op"] is True and result["changed"] is False
    assert result["revision"] == 1 and result["smoke"]["passed"] and result["smoke"]["requests"] == 1
    run, flow = read_run(result["flow_run"])
    assert flow.name == "deploy" and run.state.is_completed()
    assert "no changes: revision 1" in run.state.message
    assert set(run.tags) == {"dynadeploy", f"target:{served.stem}", "no-op"}
    assert run.parameters["spec"] == os.path.abspath(served)
    assert len(LocalBackend(spec).ledger.all()) == 1  # nothing written to the ledger


def test_the_cli_answers_a_no_op_deploy_with_the_same_json_and_exit_code(served, prefect_api):
    env = os.environ | {"PREFECT_API_URL": prefect_api}
    out = subprocess.run(
        [shutil.which("dynadeploy"), "deploy", str(served), "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"target", "endpoint", "model", "revision", "smoke"}
    assert result["revision"] == 1 and result["smoke"]["passed"] is True


def test_a_changed_spec_falls_through(served, tmp_path):
    doc = yaml.safe_load(served.read_text())
    doc["serving"]["mocker"] = {"speedup_ratio": 7.0}
    changed = tmp_path / served.name
    changed.write_text(yaml.safe_dump(doc))
    why, _ = plan(str(changed), load_spec(changed))
    assert why and "spec differs from serving revision 1" in why
    assert converge(str(changed), load_spec(changed)) is None


def test_a_rendered_program_that_differs_falls_through(served):
    """What a new dynadeploy would render differently for the same spec: the flow must roll it out."""
    backend = LocalBackend(load_spec(served))
    [serving] = backend.ledger.all()
    backend.ledger.put(dataclasses.replace(serving, rendered=[{"role": "worker", "command": ["old"]}]))
    try:
        why, _ = plan(str(served), load_spec(served))
        assert why and "rendered programs differ" in why
    finally:
        backend.ledger.put(serving)
    assert plan(str(served), load_spec(served))[0] is None


def test_a_taken_slot_falls_through(served):
    from flows._lock import target_lock

    spec = load_spec(served)
    with target_lock(spec):
        assert converge(str(served), spec) is None


def test_a_stopped_worker_falls_through(served):
    backend = LocalBackend(load_spec(served))
    worker = next(n for n in backend.supervisor.processes() if n.startswith("worker"))
    rpc = backend.supervisor.proxy().rpc  # supervisord's XML-RPC namespace
    rpc.stopProcess(worker)
    try:
        why, _ = plan(str(served), load_spec(served))
        assert why and why.startswith("not healthy") and worker in why
        assert converge(str(served), load_spec(served)) is None
    finally:
        rpc.startProcess(worker)


def test_another_revision_serving_falls_through(served, tmp_path):
    """The file's spec was deployed once, then another spec of the same deployment (revision 2)."""
    doc = yaml.safe_load(served.read_text())
    doc["serving"]["mocker"] = {"speedup_ratio": 5.0}
    other = tmp_path / served.name
    other.write_text(yaml.safe_dump(doc))
    assert deploy(spec=str(other))["revision"] == 2
    why, _ = plan(str(served), load_spec(served))
    assert why and "spec differs from serving revision 2" in why
    assert converge(str(served), load_spec(served)) is None
