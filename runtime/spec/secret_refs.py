"""Secrets in a spec: only ever *referenced* (a Prefect Secret block or an environment variable of the
worker), never written inline; an inline secret is refused and never echoed.

Holds the reference model, the environment maps of the serving section (a value is a literal string or a
reference) and the rule that finds a secret written inline in one. Pure: stdlib, pydantic, runtime.domain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from runtime.domain import secret_shapes
from runtime.spec.base import Issue, StrictModel, at, issue, matching

# What a secret looks like lives in runtime/domain/secret_shapes.py (the flows' parameter redaction and the
# messages use it too).
HF_TOKEN = secret_shapes.HF_TOKEN
SECRET_WORDS = secret_shapes.SECRET_WORDS
SECRET_FIX = (
    "keep it out of the spec: store it in a Prefect Secret block and write {secret_block: <block-name>}, "
    "or {env: <VAR>} to read it from the worker's environment"
)


class SecretRef(StrictModel):
    """A reference to a secret: a Prefect Secret block, or an environment variable of the worker."""

    secret_block: (
        Annotated[str, matching(r"^[a-z0-9][a-z0-9-]{0,254}$", "a Prefect block name", "hf-token")] | None
    ) = Field(None, description="Name of the Prefect Secret block holding the value (read on the worker).")
    env: Annotated[str, matching(r"^[A-Za-z_]\w*$", "an environment variable name", "HF_TOKEN")] | None = (
        Field(
            None, description="Name of the worker's environment variable holding the value (not the value)."
        )
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_value(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and {"value", "token", "secret", "password"} & set(data):
            raise issue("a secret value is written inline (not shown here)", SECRET_FIX)
        return data

    @field_validator("env")
    @classmethod
    def _env_is_a_name(cls, value: str | None) -> str | None:
        # `hf_...` is also a valid variable name: without this check a pasted token passes as
        # {env: <token>} and the run-time "variable ... is not set" error would print it.
        if value is not None and secret_shapes.looks_secret(value):
            raise issue(
                "env holds what looks like a secret value, not the name of an environment variable "
                "(not shown here)",
                "write the variable's name, e.g. {path}: HF_TOKEN, and export the token in the worker's "
                "environment; or store it in a Prefect Secret block and write {secret_block: <block-name>}",
            )
        return value

    def _issues(self) -> Iterator[Issue]:
        if (self.secret_block is None) == (self.env is None):
            yield at("", "a secret reference needs exactly one of secret_block or env", SECRET_FIX)


def env_scalars(value: Any) -> Any:
    """YAML reads `DYN_LOG: 1` or `FLAG: true` as numbers/booleans; env values are strings."""
    if not isinstance(value, Mapping):
        return value

    def text(v: Any) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int | float) else v

    return {k: text(v) for k, v in value.items()}


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# Env values are literal strings or secret references; the callable discriminator keeps pydantic
# from reporting a failed dict as "not a string" too.
EnvValue = Annotated[
    Annotated[str, Tag("literal")] | Annotated[SecretRef, Tag("ref")],
    Discriminator(lambda v: "ref" if isinstance(v, Mapping | SecretRef) else "literal"),
]
EnvMap = Annotated[dict[EnvName, EnvValue], BeforeValidator(env_scalars)]


def env_issues(env: Mapping[str, Any], where: str) -> Iterator[Issue]:
    """An issue per env entry that looks like a secret written inline (the value is never shown)."""
    for key, value in env.items():
        if secret_shapes.looks_like_token(key):
            yield at(
                f"{where}.{secret_shapes.REDACTED}",
                "an environment variable's name looks like an access token (not shown here)",
                f"name the variable (e.g. HF_TOKEN) and give the secret as its value: {SECRET_FIX}",
            )
            continue
        if (
            isinstance(value, str)
            and value
            and (HF_TOKEN.search(value) or SECRET_WORDS & set(key.upper().split("_")))
        ):
            yield at(
                f"{where}.{key}",
                f"{key} looks like a secret and has an inline value (not shown here)",
                f"{SECRET_FIX}, e.g. {key}: {{secret_block: my-secret}}",
            )
