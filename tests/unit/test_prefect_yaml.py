"""prefect.yaml, infra/prefect/targets.yaml and the example automation parse into Prefect's own models and
together cover every example target; `prefect deploy --all` (prefect.yaml) registers the local target's only."""

from __future__ import annotations

from pathlib import Path

import yaml
from prefect.events.schemas.automations import AutomationCore

from runtime.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


NO_CANARY = {"ecs"}  # ECS has no traffic layer dynadeploy could split (no ALB): deploy/rollback only


PREFECT_FILES = ("prefect.yaml", "infra/prefect/targets.yaml")


def _deployments(*files: str) -> list[dict]:
    return [d for f in files or PREFECT_FILES for d in yaml.safe_load((ROOT / f).read_text())["deployments"]]


def test_prefect_deploy_all_registers_the_default_target_only():
    """`prefect deploy --all` reads prefect.yaml: the local target's four, not every example's."""
    assert sorted(d["name"] for d in _deployments("prefect.yaml")) == [
        "canary-local",
        "deploy-local",
        "rollback-local",
        "teardown-local",
    ]
    other = [d["name"] for d in _deployments("infra/prefect/targets.yaml")]
    assert len(other) == len(set(other)) and not any(n.endswith("-local") for n in other)


def test_every_example_target_has_all_four_deployments():
    deployments = _deployments()
    names = {d["name"]: d for d in deployments}
    assert len(names) == len(deployments)  # each deployment is defined once, in one of the two files
    targets = sorted(p.stem for p in (ROOT / "infra" / "targets").glob("*.yaml"))
    for t in targets:
        kinds = ("deploy", "rollback", "teardown") + (
            ()
            if load_spec(ROOT / "infra" / "targets" / f"{t}.yaml").target.kind in NO_CANARY
            else ("canary",)
        )
        assert (f"canary-{t}" in names) == ("canary" in kinds)
        for kind in kinds:
            flow = kind
            dep = names[f"{kind}-{t}"]
            assert dep["entrypoint"] == f"flows/{flow}.py:{flow}"
            assert dep["parameters"]["spec"] == f"infra/targets/{t}.yaml"
            load_spec(ROOT / dep["parameters"]["spec"])  # the spec a deployment names is valid
            assert dep["work_pool"]["name"] == "dynadeploy-process"
        if "canary" in kinds:
            schedules = names[f"canary-{t}"]["schedules"]
            assert schedules and all(s["active"] is False and s["cron"] for s in schedules)
        assert names[f"rollback-{t}"]["parameters"]["auto_approve"] is False


def test_entrypoints_resolve_to_flows():
    from prefect.flows import load_flow_from_entrypoint

    for entry in sorted({d["entrypoint"] for d in _deployments()}):
        flow = load_flow_from_entrypoint(str(ROOT / entry))
        assert flow.name == entry.rsplit(":", 1)[1]


def test_example_automation_is_a_valid_prefect_automation():
    doc = yaml.safe_load((ROOT / "infra" / "automations" / "canary-rolled-back.yaml").read_text())
    for item in doc["automations"]:
        automation = AutomationCore.model_validate(item)
        assert "dynadeploy.canary.rolled-back" in automation.trigger.expect
