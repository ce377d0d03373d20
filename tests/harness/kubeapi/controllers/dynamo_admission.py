"""The Dynamo operator's validating webhook, for the rules that touch what dynadeploy sets.

Read from ai-dynamo/dynamo deploy/operator/internal/webhook/validation/ (dynamographdeployment.go,
shared.go, shared_v1beta1.go; messages copied from there):

- the component set is immutable: an update that adds or removes a component (by name) is refused with
  ``spec.components: Forbidden: component topology is immutable and cannot be modified after creation:
  components added: [...], components removed: [...]``;
- replicas ownership: for a component with ``scalingAdapter`` (present, even ``{}``, in the new or the old
  object), only the operator's / planner's service account may change ``replicas`` (unset counts as 1):
  ``spec.components[i].replicas: Forbidden: cannot be modified directly when scaling adapter is enabled;
  scale or update the related DynamoGraphDeploymentScalingAdapter instead``. The simulator has no
  authentication; the writer is told by its field manager (the operator stand-in's ``dynamo-operator`` /
  ``dgdsa-controller``, or ``planner``);
- image and runtime version: every component's ``main`` container needs an image (``... image: Required
  value: is required``), and an image whose tag is not a semantic version (a sha tag, ``latest``, a
  digest) needs ``runtimeVersionOverride`` (``spec.components[i].runtimeVersionOverride: Required value``;
  the exact detail string is ``runtimeVersionOverrideRequiredMessage`` upstream, paraphrased here);
- ``backendFramework`` is immutable.

The denial is answered as the apiserver answers a webhook's StatusError: 422 Invalid, the message prefixed
``admission webhook "<name>" denied the request: ``.

Not covered: the many rules on fields dynadeploy never sets (Grove/LWS multinode, topology constraints,
GPU memory service, EPP, restart strategies, provider overrides, checkpointing), the conversion webhook, the
v1alpha1 ``services`` form, and the DCD / DGDR validators.
"""

from __future__ import annotations

import re

from ..errors import ApiError

WEBHOOK = "vdynamographdeployment.kb.io"
TOPOLOGY_IMMUTABLE = "component topology is immutable and cannot be modified after creation"
REPLICAS_OWNED = (
    "cannot be modified directly when scaling adapter is enabled; scale or update the related "
    "DynamoGraphDeploymentScalingAdapter instead"
)
RUNTIME_VERSION_REQUIRED = "is required when the main container image has no parseable semantic-version tag"
REPLICA_WRITERS = {"dynamo-operator", "dgdsa-controller", "planner"}
_SEMVER = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _components(obj: dict) -> list[dict]:
    return list(((obj or {}).get("spec") or {}).get("components") or [])


def _image_version(image: str) -> bool:
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" in last and bool(_SEMVER.match(last.split(":", 1)[1]))


def _main_image(component: dict) -> str:
    for c in ((component.get("podTemplate") or {}).get("spec") or {}).get("containers") or []:
        if c.get("name") == "main":
            return c.get("image") or ""
    return ""


def causes(new: dict, old: dict | None, manager: str) -> list[dict]:
    """The webhook's field errors for writing ``new`` over ``old`` (None: a create)."""
    out: list[dict] = []

    def add(path: str, reason: str, message: str) -> None:
        out.append({"field": path, "reason": reason, "message": f"{_REASONS[reason]}: {message}"})

    comps = _components(new)
    for i, c in enumerate(comps):
        image = _main_image(c)
        if not image:
            add(
                f"spec.components[{i}].podTemplate.spec.containers[main].image",
                "FieldValueRequired",
                "is required",
            )
        elif not c.get("runtimeVersionOverride") and not _image_version(image):
            add(
                f"spec.components[{i}].runtimeVersionOverride", "FieldValueRequired", RUNTIME_VERSION_REQUIRED
            )
    if old is None:
        return out
    new_names = {c.get("name") for c in comps}
    old_by_name = {c.get("name"): c for c in _components(old)}
    added, removed = sorted(new_names - set(old_by_name)), sorted(set(old_by_name) - new_names)
    if added or removed:
        detail = TOPOLOGY_IMMUTABLE
        if added and removed:
            detail += f": components added: [{' '.join(added)}], components removed: [{' '.join(removed)}]"
        elif added:
            detail += f": components added: [{' '.join(added)}]"
        else:
            detail += f": components removed: [{' '.join(removed)}]"
        add("spec.components", "FieldValueForbidden", detail)
    may_scale = manager in REPLICA_WRITERS
    for i, c in enumerate(comps):
        was = old_by_name.get(c.get("name"))
        if was is None:
            continue
        adapter = "scalingAdapter" in c or "scalingAdapter" in was
        if adapter and not may_scale and int(c.get("replicas", 1)) != int(was.get("replicas", 1)):
            add(f"spec.components[{i}].replicas", "FieldValueForbidden", REPLICAS_OWNED)
    if ((new.get("spec") or {}).get("backendFramework") or "") != (
        (old.get("spec") or {}).get("backendFramework") or ""
    ):
        add("spec.backendFramework", "FieldValueInvalid", "is immutable and cannot be changed after creation")
    return out


_REASONS = {
    "FieldValueRequired": "Required value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueInvalid": "Invalid value",
}


def validate(rt, old: dict | None, new: dict, manager: str) -> None:
    """Store admission hook: raise the webhook's denial for a DGD write that breaks the rules above."""
    if rt.group != "nvidia.com" or rt.kind != "DynamoGraphDeployment":
        return
    if (new.get("metadata") or {}).get("deletionTimestamp"):
        return  # terminating objects: only metadata rules run upstream
    found = causes(new, old, manager)
    if not found:
        return
    name = (new.get("metadata") or {}).get("name", "")
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in found)
    if len(found) > 1:
        summary = f"[{summary}]"
    raise ApiError(
        422,
        "Invalid",
        f'admission webhook "{WEBHOOK}" denied the request: '
        f'DynamoGraphDeployment.nvidia.com "{name}" is invalid: {summary}',
        details={"name": name, "group": "nvidia.com", "kind": "DynamoGraphDeployment", "causes": found},
    )
