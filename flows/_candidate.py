"""The canary's ``candidate`` parameter as a typed form (what the Prefect UI shows for canary-<target>)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Candidate(BaseModel):
    """What the candidate changes against stable; unset fields keep stable's values. Either the fields
    (and/or free-form ``changes``), or a whole ``spec``. All empty: the canary re-verifies stable."""

    model_config = ConfigDict(title="Candidate")

    image: str | None = Field(
        default=None,
        description="serving.image: the Dynamo runtime image, e.g. "
        "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.1 (kube, eks, gke, aks)",
    )
    engine_args: list[str] | None = Field(
        default=None,
        description="serving.workers.engine_args: the engine's "
        "arguments, one per item, e.g. --max-model-len, 4096",
    )
    model_revision: str | None = Field(
        default=None, description="model.revision: the model's pinned revision (a Hugging Face commit)"
    )
    replicas: int | None = Field(default=None, ge=1, le=256, description="serving.workers.replicas")
    spec: str | None = Field(
        default=None,
        description="the path of a whole candidate spec (same name as "
        "stable); the other fields must then be empty",
    )
    changes: dict[str, Any] = Field(
        default_factory=dict,
        description="any other spec changes, merged into the "
        'stable spec, e.g. {"serving": {"mocker": {"speedup_ratio": 12}}}',
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, value: Any) -> Any:
        """A plain dict of spec changes (the parameter's earlier form) becomes ``changes``."""
        if isinstance(value, dict):
            fields = set(cls.model_fields)
            extra = {k: v for k, v in value.items() if k not in fields}
            if extra:
                value = {k: v for k, v in value.items() if k in fields}
                value["changes"] = _merge(dict(value.get("changes") or {}), extra)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Candidate:
        if self.spec and (self.as_changes(include_spec=False)):
            raise ValueError("a whole candidate spec excludes the other fields; put the changes in that spec")
        return self

    def as_changes(self, include_spec: bool = True) -> dict[str, Any]:
        """The spec changes (or ``{"spec": path}``) flows.canary.candidate_spec takes."""
        if self.spec and include_spec:
            return {"spec": self.spec}
        out: dict[str, Any] = {}
        if self.image is not None:
            out = _merge(out, {"serving": {"image": self.image}})
        workers: dict[str, Any] = {}
        if self.engine_args is not None:
            workers["engine_args"] = list(self.engine_args)
        if self.replicas is not None:
            workers["replicas"] = self.replicas
        if workers:
            out = _merge(out, {"serving": {"workers": workers}})
        if self.model_revision is not None:
            out = _merge(out, {"model": {"revision": self.model_revision}})
        return _merge(out, self.changes)


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for k, v in changes.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
