"""The deployment spec: one strict, frozen pydantic model for every target, and ``parse_spec``.

Why strict: a deploy tool's worst failure is doing something expensive (a GPU node pool, an EKS
cluster) from a spec that does not say what the user meant. So every problem is found before any
side effect, all at once, each as a ``SpecIssue``: the dotted path as the user wrote it, the problem
in plain words and a concrete fix. Unknown fields are errors (with a did-you-mean), YAML numbers are
never turned into strings behind the user's back, and secrets may only be *referenced* (a Prefect
Secret block or an environment variable), never written inline; an inline secret is never echoed.

Validation runs in three layers so that one pass reports as much as it can: field types and formats;
rules inside one section (``_issues()`` of each model, which still run when a sibling section is
broken); rules across sections (``DeploymentSpec._issues``, once every section is valid by itself).
Pure: stdlib, pydantic and yaml. The package, bottom up (each module imports only those above it):

    base.py          the strict base model, issue helpers, constants, value formats
    secret_refs.py   secret references and environment maps
    cloud.py         node pools and the credentials reference of cloud targets
    targets.py       one model per target kind
    sections.py      platform, model, smoke (SLA), canary, teardown
    serving.py       the serving section
    monitoring.py    the optional monitoring section
    rules.py         rules across sections
    validation.py    bounds and pydantic's errors -> SpecIssues
    models.py        DeploymentSpec and parse_spec (this module)
    loading.py       load_spec: YAML with line numbers
    reference.py     the spec reference (docs/spec-reference.md), generated from the models
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar

import yaml
from pydantic import ConfigDict, Field, field_validator

from runtime.domain import naming, secret_shapes
from runtime.spec.base import API_VERSION, Issue, StrictModel, issue
from runtime.spec.monitoring import MonitoringSpec, monitoring_issues
from runtime.spec.rules import cross_issues
from runtime.spec.sections import CanarySpec, ModelSpec, PlatformSpec, SmokeSpec, TeardownSpec
from runtime.spec.serving import Component, Engine, RouterMode, ServingSpec
from runtime.spec.targets import LocalTarget, Target
from runtime.spec.validation import check_data_bounds, validated

__all__ = ["ADDED_LATER", "DeploymentSpec", "parse_spec"]

TargetT = TypeVar("TargetT", bound=Target)  # one of the target kinds (DeploymentSpec.target_as)

# Optional fields added after the first release. While unset they stay out of the canonical form, so a
# spec written before them keeps its hash: a changed hash would roll every existing deployment out again.
ADDED_LATER: list[tuple[str, ...]] = [
    ("serving", "route"),
    ("target", "credentials"),
    ("monitoring",),
    ("canary", "ttft_floor_ms"),
    ("canary", "itl_floor_ms"),
    ("canary", "confidence"),
    ("canary", "holds"),
    ("serving", "vllm"),
]


class DeploymentSpec(StrictModel):
    """What to deploy where: the whole spec (README "Writing a spec")."""

    # model_dump() says apiVersion like the YAML does, so any dump of a spec loads back; the Python
    # name api_version is accepted on input too, for the same reason.
    model_config = StrictModel.model_config | ConfigDict(serialize_by_alias=True, validate_by_name=True)

    api_version: Literal["dynadeploy.io/v1"] = Field(
        alias="apiVersion", examples=[API_VERSION], description=f"The spec format; always {API_VERSION}."
    )
    name: str = Field(
        examples=["my-demo"],
        description=(
            "The deployment's name, a DNS-1123 label; names the graph, its namespace and its state."
        ),
    )
    target: Target = Field(
        LocalTarget(), description="Where the graph runs; `kind` picks the target. Default: local."
    )
    platform: PlatformSpec = Field(PlatformSpec(), description="The Dynamo platform (Kubernetes targets).")
    model: ModelSpec = Field(ModelSpec(), description="The model served.")
    serving: ServingSpec = Field(
        ServingSpec(), description="The inference graph: topology, engine, worker roles."
    )
    smoke: SmokeSpec = Field(SmokeSpec(), description="The load test after every rollout, and its SLA.")
    canary: CanarySpec = Field(
        CanarySpec(), description="How a candidate is staged and judged against stable."
    )
    teardown: TeardownSpec = Field(TeardownSpec(), description="What teardown removes.")
    monitoring: MonitoringSpec | None = Field(
        None,
        description=("Prometheus, SLO burn-rate alerts and alert rollback. Unset: no Prometheus, no alerts."),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.dns1123_label_problem(value, naming.NAME_MAX)
        if problem:
            raise issue(
                f"name {secret_shapes.shown(value)} is not a valid DNS-1123 label: {problem}",
                f"set name to lowercase letters, digits and '-' (at most {naming.NAME_MAX} characters), "
                f"e.g. {naming.suggest_dns1123_label(secret_shapes.unless_secret(value, 'my-demo'), naming.NAME_MAX)!r}",
            )
        return value

    def target_as(self, kind: type[TargetT]) -> TargetT:
        """``target`` as the kind a provider or backend serves; a TypeError when it is another kind (a wiring
        bug: the registry picks providers and backends by target.kind)."""
        if not isinstance(self.target, kind):
            raise TypeError(f"expected a {kind.__name__} but the spec's target is {self.target.kind!r}")
        return self.target

    def router_mode(self) -> RouterMode:
        """The effective router mode (kv for *_router topologies unless set)."""
        return self.serving.router()

    def namespace(self) -> str | None:
        """The graph's Kubernetes namespace (default: the name); None for local and ecs."""
        if not self.target.runs_on_kubernetes:
            return None
        return getattr(self.target, "namespace", None) or self.name

    def components(self) -> list[Component]:
        """frontend, then worker (agg) or prefill and decode (disagg), with replicas, GPUs, args, env."""
        out = [Component("frontend", self.serving.frontend.replicas, 0, [], dict(self.serving.env))]
        for role, worker in self.serving.roles():
            env = {**self.serving.env, **worker.env}
            out.append(Component(role, worker.replicas, worker.gpus, list(worker.engine_args), env))
        return out

    def engine(self, gpus_available: bool) -> Engine:
        """The engine to run. `auto` means vLLM when the host/cluster has GPUs, every worker role asks
        for some, and the model has weights (the built-in model is tokenizer-only); else the mocker."""
        serving = self.serving
        if serving.engine != "auto":
            return serving.engine
        wants_gpus = all(w.gpus > 0 for _, w in serving.roles())
        return "vllm" if gpus_available and wants_gpus and not self.model.is_builtin() else "mocker"

    def total_gpus(self) -> int:
        """GPUs the whole graph asks for (replicas x GPUs per replica, over all roles)."""
        return sum(c.replicas * c.gpus for c in self.components())

    def canonical_dict(self) -> dict[str, Any]:
        """Every field, defaults included, in JSON types, keyed as the YAML spells them; optional fields
        added after the first release are left out while unset (see ``ADDED_LATER``)."""
        data = self.model_dump(mode="json", by_alias=True)
        for *parents, leaf in ADDED_LATER:
            section = data
            for key in parents:
                section = section.get(key) or {}
            if leaf in section and section[leaf] is None:
                del section[leaf]
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.canonical_dict(), sort_keys=False)

    def with_changes(self, changes: Mapping[str, Any], source: str | None = None) -> DeploymentSpec:
        """A new spec with ``changes`` deep-merged in, validated like a loaded one (model_copy is not)."""
        return parse_spec(_merge(self.canonical_dict(), changes), source)

    def _issues(self) -> Iterator[Issue]:
        yield from cross_issues(self.target, self.platform, self.model, self.serving)
        yield from monitoring_issues(self.monitoring, self.smoke.sla)


def _merge(base: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def parse_spec(data: Any, source: str | None = None) -> DeploymentSpec:
    """Validate an already-loaded mapping (e.g. a flow parameter) into a DeploymentSpec."""
    check_data_bounds(data, source)
    return validated(DeploymentSpec, data, source, {})
