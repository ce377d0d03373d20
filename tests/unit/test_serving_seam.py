"""The serving seam (runtime/targets/base.py, runtime/targets/registry.py, tasks/targets.py): one registry of
targets with their canary mechanics, typed stage results that print as the plain dicts users saw before, and
cloud credentials passed in by the tasks layer."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest
import yaml

from runtime.domain import credentials as creds
from runtime.domain.revisions import Revision
from runtime.errors import NotSupportedError
from runtime.spec import parse_spec
from runtime.targets import registry
from runtime.targets.base import (
    CanaryMechanics,
    Provisioned,
    RevisionRow,
    Rollout,
    ServingBackend,
    Status,
    TeardownReport,
)

ROOT = Path(__file__).resolve().parents[2]


def spec(kind: str, **target):
    data = yaml.safe_load((ROOT / "infra" / "targets" / f"{kind}.yaml").read_text())
    data["target"] |= target
    return parse_spec(data, source="test")


def members(protocol) -> set[str]:
    return {n for n in vars(protocol) if not n.startswith("_")} - {"kind", "spec"}


@pytest.mark.parametrize("kind", sorted(registry.TARGETS))
def test_every_target_offers_the_whole_seam(kind):
    module, cls = registry.TARGETS[kind].backend.split(":")
    backend = getattr(import_module(module), cls)
    assert not {m for m in members(ServingBackend) if not callable(getattr(backend, m, None))}, kind
    mechanics = registry.TARGETS[kind].canary
    if mechanics is not None:
        mod = import_module(mechanics)
        assert not {m for m in members(CanaryMechanics) if not callable(getattr(mod, m, None))}, kind


def test_canary_mechanics_come_from_the_registry_and_ecs_says_what_it_lacks():
    assert registry.canary_for(spec("local")) is import_module("runtime.targets.local.canary")
    with pytest.raises(NotSupportedError, match="canary is not available for target kind 'ecs'") as caught:
        registry.canary_for(spec("ecs"))
    assert caught.value.hint.startswith("canaries run on: aks, eks, gke, kube, local; on ECS use deploy")


def test_the_tasks_layer_resolves_the_block_and_passes_the_credentials(monkeypatch):
    from runtime.providers import access
    from tasks import targets

    block = creds.from_block(
        "aws-credentials", "prod", {"aws_access_key_id": "AKIASEAM", "aws_secret_access_key": "s"}
    )
    made = []
    monkeypatch.setattr(
        access, "make_provider", lambda kind, credentials=None: made.append((kind, credentials)) or object()
    )
    monkeypatch.setattr(targets, "resolve_cloud_credentials", lambda s: block)
    targets.backend(spec("eks", credentials={"block": "prod"}))
    assert made == [("eks", block)]


def test_results_print_as_the_dicts_they_replace():
    rev = Revision(
        number=2,
        spec_hash="b" * 64,
        spec={},
        created_at="2026-01-01T00:00:00Z",
        reason="deploy",
        started_by="dynadeploy",
        status="serving",
        model={"id": "m", "revision": None},
    )
    row = RevisionRow.of(rev)
    assert row.as_dict() == {
        "number": 2,
        "status": "serving",
        "created_at": "2026-01-01T00:00:00Z",
        "reason": "deploy",
        "spec_hash": "b" * 12,
        "model": {"id": "m", "revision": None},
        "smoke_passed": None,
    }
    local = Status(
        target="local",
        name="n",
        endpoint=None,
        revisions=[row],
        models=[],
        processes={},
        workers_discovered=0,
        problems=[],
        details={"state_dir": "/s", "supervisor": False},
    )
    # what the target does not report is left out (ready, reasons, slo); what it reports as None stays
    assert local.as_dict() == {
        "target": "local",
        "name": "n",
        "endpoint": None,
        "revisions": [row.as_dict()],
        "models": [],
        "processes": {},
        "workers_discovered": 0,
        "problems": [],
        "state_dir": "/s",
        "supervisor": False,
    }
    assert TeardownReport(leftovers=[], model_cache_kept=True, stopped_strays=[7]).as_dict() == {
        "leftovers": [],
        "model_cache_kept": True,
        "stopped_strays": [7],
    }
    assert Provisioned(where="/s", details={"state_dir": "/s"}).as_dict() == {
        "where": "/s",
        "state_dir": "/s",
    }
    assert Rollout(3, True, details={"programs": ["worker-r3-0"]}).as_dict()["programs"] == ["worker-r3-0"]
