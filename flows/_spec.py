"""Loading the spec inside a flow: validation happens here, before any task has a side effect.

Prefect stores a flow run's parameters in its database when the run is created, before the flow
body (and so the spec's validation) runs. ``redacted_parameters`` makes what is stored safe: a spec
passed as a dict with an inline secret (which validation then refuses) is stored with that value
replaced, and an error about the parameters' types never quotes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.domain.secret_shapes import redact, scrub
from runtime.spec import DeploymentSpec, load_spec


def load(spec: str | dict, overrides: dict | None = None) -> DeploymentSpec:
    from runtime.spec import parse_spec

    loaded = parse_spec(spec, source="parameters") if isinstance(spec, dict) else load_spec(spec)
    return loaded.with_changes(overrides, source="overrides") if overrides else loaded


def _stored_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as Prefect may store them.

    A spec (and the changes merged into it: ``overrides``, a canary ``candidate``) that validates is
    stored as given: a valid spec holds secrets only as references. One that does not validate is
    stored strictly redacted: no run can use it, and the secret it may carry could sit anywhere (an
    AWS secret key pasted as the name). Other parameters lose the known secret shapes only.
    """
    from runtime.spec import parse_spec

    def valid(check: Any, *args: Any) -> bool:
        try:
            check(*args)
        except Exception:
            return False
        return True

    spec = parameters.get("spec")
    base = None
    if isinstance(spec, dict) and valid(parse_spec, spec):
        base = parse_spec(spec)
    elif isinstance(spec, str) and _regular_file(spec) and valid(load_spec, spec):
        # A path: the flow reads it anyway (bounded). Never a pipe: this read would consume it.
        base = load_spec(spec)
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if name == "spec" and isinstance(value, dict):
            out[name] = value if base is not None else redact(value, strict=True)
        elif name in ("overrides", "candidate") and isinstance(value, dict):
            nested = value.get("spec") if name == "candidate" else None
            if isinstance(nested, str):
                ok = _regular_file(nested) and valid(load_spec, nested)
            elif isinstance(nested, dict):
                ok = valid(parse_spec, nested)
            else:
                ok = base is not None and valid(base.with_changes, value)
            out[name] = value if ok else redact(value, strict=True)
        else:
            out[name] = redact(value)
    return out


def _regular_file(path: str) -> bool:
    try:
        return Path(path).is_file()
    except (OSError, ValueError):  # a NUL byte or an over-long name: not a spec file
        return False


def redacted_parameters(flow_obj: Any) -> Any:
    """Make ``flow_obj`` send Prefect its parameters with secret-looking values redacted.

    Per flow object (not a global patch of Prefect's Flow): ``serialize_parameters`` is what the
    engine sends to the API when it creates the run (and a parent sends for its subflow runs); the
    flow body still receives the parameters as given. Valid specs are unchanged by ``redact``.
    ``validate_parameters`` runs after the run exists; pydantic's message there quotes the input.
    """
    serialize, validate = flow_obj.serialize_parameters, flow_obj.validate_parameters

    def serialize_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        return _stored_parameters(serialize(parameters))

    def validate_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
        try:
            return validate(parameters)
        except Exception as exc:
            text = scrub(str(exc), opaque=True)
            if text == str(exc):
                raise
            try:
                scrubbed = type(exc)(text)
            except Exception:
                scrubbed = TypeError(text)
            raise scrubbed from None

    flow_obj.serialize_parameters = serialize_parameters
    flow_obj.validate_parameters = validate_parameters
    return flow_obj
