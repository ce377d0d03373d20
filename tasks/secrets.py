"""Secrets are resolved here, at the last moment, from references in the spec; never logged."""

from __future__ import annotations

import os

from runtime.errors import PermanentError


def resolve_model_token(spec) -> str | None:
    ref = spec.model.token
    if ref is None:
        return None
    if getattr(ref, "env", None):
        value = os.environ.get(ref.env)
        if not value:
            raise PermanentError(f"model.token.env names {ref.env}, which is not set",
                                 hint=f"export {ref.env} in the worker's environment or use a Prefect Secret block")
        return value
    from prefect.blocks.system import Secret

    try:
        return Secret.load(ref.secret_block).get()
    except ValueError as exc:
        raise PermanentError(f"Prefect Secret block {ref.secret_block!r} not found",
                             hint=f"create it: prefect block create secret (name {ref.secret_block})") from exc
