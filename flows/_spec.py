"""Loading the spec inside a flow: validation happens here, before any task has a side effect."""

from __future__ import annotations

from runtime.spec import DeploymentSpec, load_spec


def load(spec: str | dict, overrides: dict | None = None) -> DeploymentSpec:
    from runtime.spec import parse_spec

    loaded = parse_spec(spec, source="parameters") if isinstance(spec, dict) else load_spec(spec)
    return loaded.with_changes(overrides, source="overrides") if overrides else loaded
