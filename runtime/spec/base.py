"""The ground every spec model stands on: the strict base model, how a rule reports a problem with its fix,
the spec's constants and the formats of single values (names, versions, sizes, images).

Pure: stdlib, pydantic and runtime.domain. Every other module of runtime/spec builds on this one and this
one on none of them.

How a validation error carries its fix: a field check raises ``issue(problem, fix)``; a model's
``_issues()`` yields ``at(path, problem, fix)`` for every rule it breaks, and the base class raises
them together. Both become PydanticCustomErrors whose context holds the plain-words problem and
the fix, which runtime/spec/validation.py turns into ``SpecIssue``s. A fix may say ``{path}``: the
translator replaces it with the field's dotted path, which a field validator cannot know by itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from runtime.domain import naming, secret_shapes

API_VERSION = "dynadeploy.io/v1"
BUILTIN_MODEL = "dynadeploy/tiny-mock"  # tokenizer-only model shipped with dynadeploy; no download
BUILTIN_LLM = "dynadeploy/tiny-llama"  # a tiny random-weight Llama built locally, for a real (CPU) vLLM
DEFAULT_DYNAMO_VERSION = "1.6.1"
DEFAULT_IMAGE = f"nvcr.io/nvidia/ai-dynamo/vllm-runtime:{DEFAULT_DYNAMO_VERSION}"
AGG = ("agg", "agg_router")  # topologies with one worker role
ROUTER = ("agg_router", "disagg_router")  # topologies with a KV router
MAX_PROMPT_CHARS = 16_384  # smoke.prompt: ~4k tokens, within the context of any model dynadeploy serves

Issue = tuple[str, str, str]  # (path relative to the model, problem, fix)


def at(path: str, problem: str, fix: str) -> Issue:
    """One broken rule: path relative to the model being validated, what is wrong, what to write."""
    return (path, problem, fix)


def issue(problem: str, fix: str) -> PydanticCustomError:
    """The error of one field check: what is wrong and what to write instead."""
    return PydanticCustomError("dynadeploy", "{problem}", {"problem": problem, "fix": fix})


def rules(found: Iterable[Issue]) -> None:
    """Raise every broken rule of one model at once, if any."""
    found = list(found)
    if found:
        summary = "; ".join(f"{path or '.'}: {problem}" for path, problem, _ in found)
        raise PydanticCustomError("dynadeploy_rules", "{summary}", {"summary": summary, "issues": found})


class StrictModel(BaseModel):
    """Frozen, unknown fields forbidden, no type coercion ("2" is not 2, 1 is not "1")."""

    # strict=True matters for YAML: `revision: 1234567` or `kubernetes_version: 1.30` arrive as
    # numbers, and silently turning them into strings would hide a typo ("1.30" -> 1.3).
    # hide_input_in_errors: a raw ValidationError printed somewhere must not show a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, hide_input_in_errors=True)

    def _issues(self) -> Iterable[Issue]:
        """Rules across this model's fields; runs only when every field is valid."""
        return ()

    @model_validator(mode="after")
    def _check_rules(self) -> StrictModel:
        rules(self._issues())
        return self


# --- field formats ------------------------------------------------------------------------------------


def matching(regex: str, what: str, example: str) -> AfterValidator:
    """A field check: the value must match ``regex``; the message says ``what`` with an example."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.match(value):
            # A value in the wrong shape is often a secret pasted where its name belongs
            # (secret_block: hf_..., env: <the key itself>): never quote one back.
            raise issue(
                f"{secret_shapes.shown(value)} is not {what}", f"set {{path}} to {what}, e.g. {example!r}"
            )
        return value

    return AfterValidator(check)


def dns_label(max_len: int) -> AfterValidator:
    """A field check: the value must be a DNS-1123 label of at most ``max_len`` characters."""

    def check(value: str) -> str:
        problem = naming.dns1123_label_problem(value, max_len)
        if problem:
            raise issue(
                f"{secret_shapes.shown(value)} is not a valid DNS-1123 label: {problem}",
                f"set {{path}} to lowercase letters, digits and '-' (at most {max_len} characters), "
                f"e.g. {naming.suggest_dns1123_label(secret_shapes.unless_secret(value, 'my-name'), max_len)!r}",
            )
        return value

    return AfterValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise issue("it is empty", "set {path} to a non-empty value, or remove it")
    return value


_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip
IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+(?=/))?(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$"
)


def parse_quantity(text: str) -> int:
    """Bytes in a Kubernetes quantity of the forms the spec accepts ("20Gi", "500M", "1.5Ti")."""
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def _semver(value: str) -> str:
    if not _SEMVER.match(value):
        raise issue(
            f"{secret_shapes.shown(value)} is not a semantic version",
            'set {path} to a quoted version like "1.6.1"',
        )
    return value


def _quantity(value: str) -> str:
    if not _QUANTITY.match(value):
        raise issue(
            f"{secret_shapes.shown(value)} is not a Kubernetes quantity",
            'set {path} to a size like "20Gi" or "500Gi"',
        )
    if parse_quantity(value) < 2**30:
        raise issue(
            f"{secret_shapes.shown(value)} is smaller than 1Gi; a model cache needs gigabytes",
            'set {path} to "1Gi" or more, e.g. "20Gi" (a bare number means bytes)',
        )
    return value


def _image(value: str) -> str:
    match = IMAGE.match(value)
    if not match:
        raise issue(
            f"{secret_shapes.shown(value)} is not a container image reference",
            f"set {{path}} to e.g. {DEFAULT_IMAGE}",
        )
    if "@sha256:" not in value and match.group("tag") in (None, "latest"):
        raise issue(
            f"image {secret_shapes.shown(value)} is not pinned (no tag, or :latest), so a rollback could not restore it",
            f"pin a version tag or a digest, e.g. {DEFAULT_IMAGE}",
        )
    return value


DnsLabel = Annotated[str, dns_label(naming.LABEL_MAX)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]
Port = Annotated[int, Field(ge=1, le=65535)]
SemVer = Annotated[str, AfterValidator(_semver)]
Quantity = Annotated[str, AfterValidator(_quantity)]
Image = Annotated[str, AfterValidator(_image)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
