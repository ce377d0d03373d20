"""ECS serving on moto beyond the contract: the frontend address and draining running tasks.

moto never starts a service's tasks (runningCount stays 0), so the test stands in for ECS's
scheduler: it launches an EC2 instance, registers it as a container instance of the GPU cluster and
runs the frontend task definition in the service's group, as ECS would. Not modeled: GPU placement
(moto's container instances register no GPU resource), health checks, the awsvpc ENIs of Fargate
tasks, Cloud Map instance registration by ECS, and whether the address is reachable.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.integration.providers.conftest import ROOT, Cloud, make_provider

pytestmark = pytest.mark.integration


def _moto_api(moto_url: str, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"{moto_url}/moto-api/state-manager/{path}", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture
def ecs(aws, boto_session, moto_url):
    from runtime.spec import load_spec

    # moto moves a task one lifecycle step per describe_tasks (RUNNING -> DEACTIVATING -> ...); hold it
    # at RUNNING as a healthy task would be.
    _moto_api(
        moto_url,
        "set-transition",
        {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000}},
    )
    yield Cloud("ecs", make_provider("ecs", boto_session), load_spec(ROOT / "infra/targets/ecs.yaml"), aws)
    _moto_api(moto_url, "unset-transition", {"model_name": "ecs::task"})


def _schedule_frontend(ecs: Cloud, ref) -> str:
    """What ECS's scheduler would do for the frontend service: an instance in the cluster, the task on it."""
    aws = ecs.provider.aws("us-east-1")
    ec2, client = aws.client("ec2"), aws.client("ecs")
    instance = ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType="g6e.2xlarge",
        MinCount=1,
        MaxCount=1,
        SubnetId=ref.details["subnet_ids"][0],
    )["Instances"][0]
    client.register_container_instance(
        cluster=ref.name, instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]})
    )
    client.run_task(
        cluster=ref.name,
        taskDefinition=f"{ecs.spec.name}-frontend",
        launchType="EC2",
        group=f"service:{ecs.spec.name}-frontend",
        startedBy="ecs-svc/stand-in",
    )
    reservation = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]
    host = reservation["Instances"][0]
    return host.get("PublicIpAddress") or host["PrivateIpAddress"]


def test_frontend_address_and_draining_running_tasks(ecs):
    ref = ecs.provision()
    serving = ecs.provider.serving()
    assert serving.frontend_address(ecs.spec) is None  # nothing runs yet
    ip = _schedule_frontend(ecs, ref)
    assert serving.frontend_address(ecs.spec) == f"http://{ip}:8000"
    ecs.teardown()  # stops the task and deregisters the container instance before deleting the cluster
    assert ecs.inventory() == []
    client = ecs.provider.aws("us-east-1").client("ecs")
    assert client.describe_clusters(clusters=[ref.name])["clusters"][0]["status"] == "INACTIVE"


def test_a_changed_spec_registers_a_new_revision_and_updates_the_service(ecs):
    ref = ecs.provision()
    client = ecs.provider.aws("us-east-1").client("ecs")
    family = f"{ecs.spec.name}-worker"
    data = ecs.spec.canonical_dict()
    data["serving"]["workers"]["engine_args"] = ["--enforce-eager", "--max-model-len", "4096"]
    from runtime.spec import parse_spec

    changed = parse_spec(data)
    ecs.provider.serving().deploy(changed, ref, secrets={"HF_TOKEN": "hf_test_value"})
    service = client.describe_services(cluster=ref.name, services=[family])["services"][0]
    assert service["taskDefinition"].endswith(f"{family}:2")
    assert (
        "--max-model-len 4096"
        in client.describe_task_definition(taskDefinition=family)["taskDefinition"]["containerDefinitions"][
            0
        ]["command"][0]
    )
    ecs.teardown()
    assert ecs.inventory() == []
