"""Secrets are resolved here, at the last moment, from references in the spec; never logged.

- the HF token: ``model.token`` (a Prefect Secret block, or an environment variable of the worker);
- cloud credentials: ``target.credentials.block`` on eks/ecs/gke/aks, a Prefect block of the type the
  target kind reads (aws-credentials, gcp-credentials, azure-container-instance-credentials; see
  runtime/domain/credentials.py). The block document is read by type slug and name through the Prefect client,
  so the worker needs none of prefect-aws/-gcp/-azure. tasks/targets.py passes what
  ``resolve_cloud_credentials`` returns to runtime.targets.registry.backend_for, so every backend made inside
  a task (or the canary flow, or the CLI) resolves the block then and there. Credentials are never task
  parameters or results: only the spec, which holds the block's name, travels.
"""

from __future__ import annotations

import os

from runtime.domain import credentials as creds
from runtime.domain import secret_shapes
from runtime.errors import PermanentError, TransientError


def resolve_model_token(spec) -> str | None:
    ref = spec.model.token
    if ref is None:
        return None
    if getattr(ref, "env", None):
        value = os.environ.get(ref.env)
        if not value:
            # The spec refuses a token written as the variable's name; never print one here either
            # (this message reaches Prefect's logs, states and events).
            name = "a variable" if secret_shapes.looks_secret(ref.env) else ref.env
            raise PermanentError(
                f"model.token.env names {name}, which is not set",
                hint=f"export {name} in the worker's environment or use a Prefect Secret block",
            )
        return value
    from prefect.blocks.system import Secret

    try:
        return Secret.load(ref.secret_block).get()
    except ValueError as exc:
        raise PermanentError(
            f"Prefect Secret block {ref.secret_block!r} not found",
            hint=f"create it: prefect block create secret (name {ref.secret_block})",
        ) from exc


def read_block_data(slug: str, name: str) -> dict:
    """The data of block document ``name`` of type ``slug``, secret fields included (never logged)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(
                name=name, block_type_slug=slug, include_secrets=True
            )
    except ObjectNotFound:
        raise PermanentError(
            f"Prefect {slug} block {name!r} (target.credentials.block) not found",
            hint=creds.CREATE_HINTS[slug].format(name=name),
        ) from None
    except Exception as exc:
        raise TransientError(
            f"cannot read Prefect {slug} block {name!r}: {type(exc).__name__}",
            hint="check that the worker reaches the Prefect API (PREFECT_API_URL)",
        ) from None
    return dict(document.data or {})


def resolve_cloud_credentials(spec) -> creds.CloudCredentials | None:
    """The target's cloud credentials from its Prefect block, or None (the SDK's default chain)."""
    ref = getattr(spec.target, "credentials", None)
    if ref is None:
        return None
    slug = creds.block_type(spec.target.kind)
    return creds.from_block(slug, ref.block, read_block_data(slug, ref.block))
