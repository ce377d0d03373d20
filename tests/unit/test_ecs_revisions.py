"""The pure decisions behind an ECS rollback by task definition revisions (runtime/targets/ecs/revisions.py)."""

from __future__ import annotations

from runtime.domain.revisions import Revision
from runtime.targets.ecs.revisions import (
    family_of,
    recorded_task_definitions,
    renders_as,
    restore_note,
    reusable,
    why_not,
)

ARN = "arn:aws:ecs:us-east-1:123456789012:task-definition/{}"
WANT = {
    "family": "demo-worker",
    "networkMode": "host",
    "requiresCompatibilities": ["EC2"],
    "containerDefinitions": [{"name": "worker", "image": "img:1", "cpu": 1024, "command": ["run"]}],
}


def described(status: str = "ACTIVE", image: str = "img:1", revision: int = 1) -> dict:
    """What describe_task_definition answers: the registered fields plus the ones ECS adds."""
    return {
        "taskDefinitionArn": ARN.format(f"demo-worker:{revision}"),
        "revision": revision,
        "status": status,
        "family": "demo-worker",
        "networkMode": "host",
        "requiresCompatibilities": ["EC2"],
        "compatibilities": ["EC2"],
        "registeredAt": "2026-01-01",
        "containerDefinitions": [
            {
                "name": "worker",
                "image": image,
                "cpu": "1024",
                "command": ["run"],
                "portMappings": [],
                "essential": True,
            }
        ],
    }


def rev(number: int, spec_hash: str, arns: dict, status: str = "superseded") -> Revision:
    return Revision(
        number=number,
        spec_hash=spec_hash,
        spec={"name": "demo"},
        created_at="",
        status=status,
        rendered=[arns],
    )


def test_a_described_revision_is_reusable_only_when_active_and_rendering_the_same():
    assert renders_as(described(), WANT) and reusable(described(), WANT)  # ECS's added fields do not count
    assert not reusable(described(status="INACTIVE"), WANT)
    assert not reusable(described(image="img:2"), WANT)
    assert why_not(described(status="INACTIVE"), WANT) == "INACTIVE (deregistered)"
    assert why_not(described(status="DELETE_IN_PROGRESS"), WANT) == "DELETE_IN_PROGRESS"
    assert why_not(described(image="img:2"), WANT) == "renders differently"
    assert why_not(None, WANT) == "not found"
    assert family_of(ARN.format("demo-worker:12")) == "demo-worker"


def test_recorded_task_definitions_are_those_of_the_spec_newest_revision_first():
    a1 = {"worker": ARN.format("demo-worker:1"), "etcd": ARN.format("demo-etcd:1")}
    b2 = {"worker": ARN.format("demo-worker:2"), "etcd": ARN.format("demo-etcd:1")}
    a3 = {"worker": ARN.format("demo-worker:3"), "etcd": ARN.format("demo-etcd:1")}
    ledger = [
        rev(1, "A", a1),
        rev(2, "B", b2),
        rev(3, "A", a3, "serving"),
        Revision(number=4, spec_hash="A", spec={}, created_at="", rendered=[]),
    ]
    assert recorded_task_definitions(ledger, "A") == {
        "worker": [a3["worker"], a1["worker"]],
        "etcd": [a1["etcd"]],
    }
    assert recorded_task_definitions(ledger, "B") == {"worker": [b2["worker"]], "etcd": [b2["etcd"]]}
    assert recorded_task_definitions(ledger, "C") == {}


def test_restore_note_says_what_was_reused_and_what_was_registered_again():
    recorded = {
        "worker": [ARN.format("demo-worker:1")],
        "frontend": [ARN.format("demo-frontend:1")],
        "etcd": [ARN.format("demo-etcd:1")],
    }
    arns = {
        "worker": ARN.format("demo-worker:3"),
        "frontend": ARN.format("demo-frontend:1"),
        "etcd": ARN.format("demo-etcd:1"),
    }
    note = restore_note(recorded, arns, {"worker": "registered", "frontend": "recorded", "etcd": "latest"})
    assert "point back at the recorded task definitions demo-frontend:1" in note
    assert "registered again from the recorded spec: demo-worker:1 -> demo-worker:3" in note
    assert "etcd" not in note
    # an ordinary redeploy (the latest revisions are the recorded ones) and a new spec say nothing
    assert restore_note(recorded, arns, dict.fromkeys(arns, "latest")) == ""
    assert restore_note({}, arns, dict.fromkeys(arns, "registered")) == ""
