"""The serving seam: what every target offers the flows, and the typed results of its stages.

A target is a ``ServingBackend`` (runtime/targets/<kind>/backend.py) and, where it can run a canary, a
``CanaryMechanics`` (runtime/targets/<kind>/canary.py); runtime/targets/registry.py says which serves a
target kind. The tasks layer (tasks/) depends on these types only, never on a target's classes.

Every stage returns a frozen dataclass. What a caller reads by name is a typed attribute; what a target
reports beyond that (its ports, its cluster's details, its task definitions) rides in ``details``, a plain
mapping nobody reads by name. ``as_dict()`` gives the report as the plain dict users see (status --output
json, artifacts): the typed fields a target reported (an optional field left at None: not reported, left
out) merged with details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from runtime.domain.canary import Reach, Step
    from runtime.domain.revisions import Revision
    from runtime.spec.serving import Engine


def _details() -> dict[str, Any]:
    return {}


class _Report:
    """``as_dict()`` for the result dataclasses below."""

    if TYPE_CHECKING:  # each subclass is a dataclass (what dataclasses.fields reads)
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "details":
                continue
            value = getattr(self, f.name)
            if value is None and f.default is None:  # an optional field the target does not report
                continue
            out[f.name] = _plain(value)
        return out | dict(getattr(self, "details", {}) or {})


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.as_dict() if isinstance(value, _Report) else dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- the stages
@dataclass(frozen=True)
class Provisioned(_Report):
    """provision(): where the deployment lives (a state directory, a cluster), what was noted on the way."""

    where: str  # what the deploy flow's provision stage says: the local state dir, or the cluster
    notes: list[str] | None = None  # e.g. the cloud storage's caveats
    details: Mapping[str, Any] = field(default_factory=_details)  # ports, server version, node pools...


@dataclass(frozen=True)
class Accelerators(_Report):
    """detect_gpus(): the GPUs the deployment can use and the engine that follows from them."""

    gpus: int
    engine: Engine  # serving.engine with "auto" resolved
    gpu_operator: str | None = (
        None  # Kubernetes/ECS: what was done about the GPU operator (skipped, installed...)
    )
    note: str | None = None  # how the count was found where it was not detected (ECS: from the spec)
    details: Mapping[str, Any] = field(default_factory=_details)  # GPU models, nodes, the CPU vLLM runtime...


@dataclass(frozen=True)
class PlatformEndpoint(_Report):
    """install_platform(): the frontend's endpoint once the platform (frontend, operator, etcd/NATS) runs."""

    endpoint: str
    changed: bool | None = None  # None: the target does not say
    note: str | None = None  # e.g. "using the existing dynamo-platform in ..."
    details: Mapping[str, Any] = field(default_factory=_details)


class CachedModel(Protocol):
    """cache_model(): the model where the workers read it (each target's own type satisfies this)."""

    @property
    def model_id(self) -> str: ...
    @property
    def revision(self) -> str | None: ...
    @property
    def reused(self) -> bool: ...  # already cached (nothing downloaded this time)


@dataclass(frozen=True)
class Rollout(_Report):
    """roll_out(): the revision that serves now and whether this rollout changed anything."""

    revision: int
    changed: bool
    endpoint: str | None = None  # where clients reach it when the target knows better than the platform's
    note: str = ""  # what the rollout did beyond the ordinary (a graph replaced, task definitions restored)
    seconds: float = 0.0
    details: Mapping[str, Any] = field(default_factory=_details)  # programs, graph name, task definitions...


@dataclass(frozen=True)
class RevisionRow(_Report):
    """A ledger revision as status() lists it."""

    number: int
    status: str
    created_at: str
    reason: str
    spec_hash: str  # the first 12 characters
    model: Mapping[str, Any]
    smoke_passed: bool | None

    @classmethod
    def of(cls, r: Revision) -> RevisionRow:
        return cls(
            number=r.number,
            status=r.status,
            created_at=r.created_at,
            reason=r.reason,
            spec_hash=r.spec_hash[:12],
            model=r.model,
            smoke_passed=r.smoke.get("passed"),
        )

    def as_dict(self) -> dict[str, Any]:  # smoke_passed None is reported (no smoke yet), not left out
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Status(_Report):
    """status(): what serves now. Optional fields are None where the target does not report them."""

    target: str
    name: str
    endpoint: str | None
    revisions: list[RevisionRow] = field(default_factory=list)
    models: list[str] | None = None  # what the frontend lists at /v1/models
    processes: Mapping[str, Mapping[str, Any]] | None = None  # name -> {"state", "pid", "uptime_s"}
    workers_discovered: int | None = None
    ready: bool | None = None  # the graph's readiness (Kubernetes, ECS)
    reasons: list[str] | None = None  # why it is not ready
    problems: list[str] | None = None  # what the operator must act on (local: supervision gone, orphans)
    slo: Mapping[str, Any] | None = None  # live burn rates and alerts (a deployment with monitoring)
    details: Mapping[str, Any] = field(default_factory=_details)  # state dir, namespace, services, cluster...


@dataclass(frozen=True)
class TeardownReport(_Report):
    """teardown(): what is left (the inventory after it) and whether the model cache was kept."""

    leftovers: list[str]
    model_cache_kept: bool
    note: str | None = None
    stopped_strays: list[int] | None = None  # local: processes of the deployment stopped outside supervision
    details: Mapping[str, Any] = field(
        default_factory=_details
    )  # releases, namespace kept, ledger deleted...


# ---------------------------------------------------------------------------------------------- the seam
class ServingBackend(Protocol):
    """What the flows need from a target. Every stage is idempotent.

    The deploy flow calls them in this order: provision, detect_gpus, install_platform, cache_model,
    roll_out, then record_smoke after the smoke test against reach().
    """

    kind: str
    spec: Any  # the deployment's spec (runtime.spec.Spec)

    def provision(self) -> Provisioned: ...
    def detect_gpus(self) -> Accelerators: ...
    def install_platform(self) -> PlatformEndpoint: ...
    def cache_model(self, engine: Engine, token: str | None = None) -> CachedModel: ...
    def roll_out(
        self, engine: Engine, model: Any, *, reason: str = "deploy", started_by: str = "dynadeploy"
    ) -> Rollout: ...
    def endpoint(self) -> str: ...

    def reach(self) -> AbstractContextManager[str]:
        """A base URL of the frontend this process can use while the ``with`` lasts (a port-forward, a
        task's address once it has one, or the endpoint itself)."""
        ...

    def record_smoke(self, number: int, smoke: dict) -> None: ...
    def revisions(self) -> list[Revision]: ...  # the ledger, oldest first
    def status(self) -> Status: ...
    def teardown(self, *, keep_model_cache: bool = True) -> TeardownReport: ...
    def inventory(self) -> list[str]: ...


# ---------------------------------------------------------------------------------------------- canaries
@dataclass(frozen=True)
class StagedCandidate(_Report):
    """CanaryMechanics.stage(): the candidate running beside stable."""

    engine: str
    endpoint: str | None = None  # its own frontend (local)
    graph: str | None = None  # its graph's name (Kubernetes)
    revision: int | None = None  # its own ledger's revision (local)
    baseline: str | None = None  # the baseline graph's frontend: stable's spec staged beside it (local)


class CanaryMechanics(Protocol):
    """How a target runs a candidate beside stable and shifts real traffic to it (a module:
    runtime/targets/local/canary.py, runtime/targets/kube/canary.py). ``stable`` and ``candidate`` are
    the backends of the stable spec and of the candidate spec (same deployment name), made by the caller
    with the target's credentials. registry.canary_for says which target has which; the others raise
    NotSupportedError there."""

    def plan(self, stable: ServingBackend, status: Status) -> tuple[list[Step], str]:
        """The steps before promotion, and how real traffic is shifted (or why it is not)."""
        ...

    def stage(
        self, stable: ServingBackend, candidate: ServingBackend, token: str | None = None
    ) -> StagedCandidate: ...

    def shift(
        self, stable: ServingBackend, candidate: ServingBackend, step: Step, staged: StagedCandidate
    ) -> Mapping[str, Any]:
        """Give the candidate the step's share of real traffic (taken by the time it returns)."""
        ...

    def reach(self, stable: ServingBackend, candidate: ServingBackend) -> AbstractContextManager[Reach]:
        """Addresses this process can use for an analysis, for as long as the ``with`` lasts."""
        ...

    def unshift(self, stable: ServingBackend) -> Any:
        """Every request to stable again."""
        ...

    def drop(self, stable: ServingBackend, candidate: ServingBackend) -> Any:
        """The candidate gone (after unshift: no request is sent to a frontend that is going away)."""
        ...


__all__ = [
    "Accelerators",
    "CachedModel",
    "CanaryMechanics",
    "PlatformEndpoint",
    "Provisioned",
    "RevisionRow",
    "Rollout",
    "ServingBackend",
    "StagedCandidate",
    "Status",
    "TeardownReport",
]
