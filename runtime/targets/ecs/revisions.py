"""Pure: which ECS task definition revision a service should run, and what a rollback did with the recorded ones.

ECS keeps every registered task definition revision (``<family>:<n>``) until it is deregistered, and the
``ecs`` revision ledger records the ARNs each rollout ran (Revision.rendered[0]: role -> ARN). A rollback
runs the deploy flow on the recorded spec; rather than registering revision N+2 identical to revision N,
the services are pointed back at revision N while it is ACTIVE. The data of that decision lives here:
which fields make two task definitions "the same", which statuses can still run tasks, and which
recorded ARNs are candidates; the describe/register calls are in ecs_serving.EcsServing.converge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from runtime.domain.revisions import Revision

# The register_task_definition fields that decide what a task runs (tags and ECS's own fields do not).
COMPARED = (
    "containerDefinitions",
    "networkMode",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "executionRoleArn",
)
# Only ACTIVE revisions can start tasks; INACTIVE (deregistered) and DELETE_IN_PROGRESS ones cannot.
REUSABLE_STATUS = "ACTIVE"


def same(have: Any, want: Any) -> bool:
    """Whether a described task-definition field equals the rendered one (ECS adds empty defaults)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(same(have.get(k), v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(have, list)
            and len(have) == len(want)
            and all(same(h, w) for h, w in zip(have, want, strict=True))
        )
    return have == want or (want is not None and str(have) == str(want))


def renders_as(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether a described task definition runs what the rendered one asks for (the COMPARED fields)."""
    return all(same(have.get(k), want.get(k)) for k in COMPARED)


def reusable(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Whether services can be pointed at the described revision for the rendered one: ACTIVE and the same."""
    return have.get("status") == REUSABLE_STATUS and renders_as(have, want)


def why_not(have: dict[str, Any] | None, want: dict[str, Any]) -> str:
    """Why a described revision (None: not found) cannot stand in for the rendered one."""
    if have is None:
        return "not found"
    status = have.get("status")
    if status == "INACTIVE":
        return "INACTIVE (deregistered)"
    if status != REUSABLE_STATUS:
        return str(status)
    return "reusable" if renders_as(have, want) else "renders differently"


def family_of(arn: str) -> str:
    """arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision> -> <family>."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def short(arn: str) -> str:
    """<family>:<revision> of a task definition ARN."""
    return arn.rsplit("/", 1)[-1]


def recorded_task_definitions(revisions: list[Revision], spec_hash: str) -> dict[str, list[str]]:
    """role -> the task definition ARNs the ledger recorded for ``spec_hash``, newest revision first: what a
    rollback to that spec (or a redeploy of it) runs again while they are ACTIVE."""
    out: dict[str, list[str]] = {}
    for rev in sorted(revisions, key=lambda r: r.number, reverse=True):
        if rev.spec_hash != spec_hash or not rev.rendered or not isinstance(rev.rendered[0], dict):
            continue
        for role, arn in rev.rendered[0].items():
            if isinstance(arn, str) and arn not in out.setdefault(role, []):
                out[role].append(arn)
    return out


def restore_note(recorded: dict[str, list[str]], arns: dict[str, str], how: dict[str, str]) -> str:
    """What a rollout offered recorded task definitions did with them (``how``: role -> "latest" | "recorded" |
    "registered"); "" when nothing was restored (a new spec, or the latest revisions were the recorded ones)."""
    reused = [short(arns[r]) for r in sorted(arns) if how.get(r) == "recorded"]
    again = [
        f"{short(recorded[r][0])} -> {short(arns[r])}"
        for r in sorted(arns)
        if how.get(r) == "registered" and recorded.get(r)
    ]
    parts = []
    if reused:
        parts.append("services point back at the recorded task definitions " + ", ".join(reused))
    if again:
        parts.append(
            "recorded task definitions no longer ACTIVE (deregistered), registered again from the "
            "recorded spec: " + ", ".join(again)
        )
    return "; ".join(parts)
