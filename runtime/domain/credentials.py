"""Cloud credentials as data: what a Prefect credentials block holds, checked and typed (pure: stdlib only).

    spec.target.credentials: {block: aws-prod}        (runtime/spec/cloud.CredentialsRef)
      -> tasks/secrets.resolve_cloud_credentials reads the block document on the worker, inside the task
         that needs it, and calls from_block() here
      -> AwsCredentials | GcpCredentials | AzureCredentials, handed to the provider's SDK gateway
         (runtime/gateways/aws.py session_for, _gcp.py, _azure.py), which builds the SDK's credential object

The block types are those of prefect-aws, prefect-gcp and prefect-azure, read by slug and field name, so
that the worker needs none of those packages:

    aws-credentials            aws_access_key_id, aws_secret_access_key (secret), aws_session_token,
                               profile_name, region_name (ignored: target.region decides)
    gcp-credentials            service_account_info (secret dict) | service_account_file, project
    azure-container-instance-credentials
                               client_id, tenant_id, client_secret (secret), credential_kwargs

A block that leaves every credential field empty means "the SDK's default chain", as the packages' own
classes treat it.

Secret values are held in ``Secret``: its repr and str are masked, it refuses to be pickled or copied (so
it cannot end up in a Prefect result or parameter), and only ``reveal()`` gives the value, which the
gateways call when they build the SDK credential. Errors here name the block and the field, never a value.
Every secret value is also masked in this process's log records from then on (a log record factory), so
an SDK's own debug logging (botocore logs a request's headers, session token included, at DEBUG) cannot
carry it into the worker's logs or the Prefect run logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field, fields
from typing import Any

from runtime.errors import PermanentError

AWS, GCP, AZURE = "aws-credentials", "gcp-credentials", "azure-container-instance-credentials"
# The Prefect block type (slug) that holds each cloud target kind's credentials (spec: target.credentials).
CREDENTIALS_BLOCK_TYPES = {"eks": AWS, "ecs": AWS, "gke": GCP, "aks": AZURE}
# How a user makes each block type (the hint of every "missing block" error).
CREATE_HINTS = {
    AWS: "pip install prefect-aws && prefect block register -m prefect_aws, then create it in the Prefect UI "
    "(`prefect block create aws-credentials` opens the form) or in Python: "
    "AwsCredentials(aws_access_key_id=..., aws_secret_access_key=...).save({name!r})",
    GCP: "pip install prefect-gcp && prefect block register -m prefect_gcp, then create it in the Prefect UI "
    "(`prefect block create gcp-credentials` opens the form) or in Python: "
    "GcpCredentials(service_account_info=json.load(open('key.json'))).save({name!r})",
    AZURE: "pip install prefect-azure && prefect block register -m prefect_azure, then create it in the Prefect "
    "UI (`prefect block create azure-container-instance-credentials` opens the form) or in Python: "
    "AzureContainerInstanceCredentials(client_id=..., tenant_id=..., client_secret=...).save({name!r})",
}


MASK = "**********"
_MASKED: set[str] = set()
_MASK_LOCK = threading.Lock()
_base_factory: Any = None


def _masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    if _MASKED:
        try:
            message = record.getMessage()
        except Exception:
            return record
        if any(value in message for value in _MASKED):
            for value in _MASKED:
                message = message.replace(value, MASK)
            record.msg, record.args = message, None
    return record


def mask_in_logs(*values: Any) -> None:
    """Mask these values in every log record made in this process from now on."""
    global _base_factory
    texts = {v for v in values if isinstance(v, str) and len(v) >= 8}  # short values would mask common words
    if not texts:
        return
    with _MASK_LOCK:
        _MASKED.update(texts)
        if _base_factory is None:
            _base_factory = logging.getLogRecordFactory()
            logging.setLogRecordFactory(_masking_factory)


class Secret:
    """A secret value that does not show itself: masked repr/str (and in logs), no pickling or copying,
    ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value
        mask_in_logs(value.get("private_key") if isinstance(value, dict) else value)

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(_digest(self._value))

    def __reduce__(self) -> Any:
        raise TypeError(
            "a dynadeploy Secret cannot be pickled (credentials never become Prefect parameters or results)"
        )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class _Credentials:
    block: str  # the block's name, for messages

    def fingerprint(self) -> str:
        """A digest of every field (secrets included, never reversible): the provider cache's key."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = _digest(value.reveal()) if isinstance(value, Secret) else value
        return _digest({"type": type(self).__name__, **values})


@dataclass(frozen=True)
class AwsCredentials(_Credentials):
    """An aws-credentials block. All None: boto3's default chain (env, profile, SSO, instance role)."""

    access_key_id: str | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None
    profile_name: str | None = None

    @property
    def default_chain(self) -> bool:
        return not (self.access_key_id or self.profile_name)


@dataclass(frozen=True)
class GcpCredentials(_Credentials):
    """A gcp-credentials block. Neither info nor file: google.auth.default() (ADC)."""

    service_account_info: Secret | None = None  # the key file's JSON as a dict
    service_account_file: str | None = None  # a key file on the worker
    project: str | None = None  # informational: target.project decides where clusters go

    @property
    def default_chain(self) -> bool:
        return self.service_account_info is None and not self.service_account_file


@dataclass(frozen=True)
class AzureCredentials(_Credentials):
    """An azure-container-instance-credentials block: a service principal (ClientSecretCredential), or with
    none of client_id/tenant_id/client_secret, DefaultAzureCredential. ``kwargs`` (the block's
    credential_kwargs) go to either, e.g. authority for a sovereign cloud."""

    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: Secret | None = None
    kwargs: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def default_chain(self) -> bool:
        return self.client_secret is None

    def __hash__(self) -> int:  # kwargs is a dict
        return hash(self.fingerprint())


CloudCredentials = AwsCredentials | GcpCredentials | AzureCredentials


def block_type(kind: str) -> str:
    """The block type slug that holds credentials for target ``kind``."""
    return CREDENTIALS_BLOCK_TYPES[kind]


def _bad(block_type_slug: str, name: str, problem: str, fix: str) -> PermanentError:
    return PermanentError(f"Prefect {block_type_slug} block {name!r}: {problem}", hint=fix)


def _text(data: dict[str, Any], key: str, slug: str, name: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(
            slug,
            name,
            f"field {key} is a {type(value).__name__}, not text",
            f"edit the block: set {key} to text, or clear it",
        )
    return value


def _secret_text(data: dict[str, Any], key: str, slug: str, name: str) -> Secret | None:
    value = _text(data, key, slug, name)
    return None if value is None else Secret(value)


def from_block(slug: str, name: str, data: dict[str, Any]) -> CloudCredentials:
    """The typed credentials of block ``name`` of type ``slug`` from its document's data (secrets included)."""
    if slug == AWS:
        return _aws(name, data)
    if slug == GCP:
        return _gcp(name, data)
    if slug == AZURE:
        return _azure(name, data)
    raise PermanentError(
        f"dynadeploy reads no credentials from {slug} blocks",
        hint=f"use one of: {', '.join(sorted({AWS, GCP, AZURE}))}",
    )


def _aws(name: str, data: dict[str, Any]) -> AwsCredentials:
    key_id = _text(data, "aws_access_key_id", AWS, name)
    secret = _secret_text(data, "aws_secret_access_key", AWS, name)
    if bool(key_id) != bool(secret):
        have, missing = (
            ("aws_access_key_id", "aws_secret_access_key")
            if key_id
            else ("aws_secret_access_key", "aws_access_key_id")
        )
        raise _bad(
            AWS,
            name,
            f"{have} is set but {missing} is empty",
            f"edit the block: set {missing} too (an access key is the pair), or clear {have} to use "
            "profile_name or the default chain",
        )
    token = _secret_text(data, "aws_session_token", AWS, name)
    if token and not key_id:
        raise _bad(
            AWS,
            name,
            "aws_session_token is set without an access key",
            "edit the block: set aws_access_key_id and aws_secret_access_key of that session too",
        )
    return AwsCredentials(
        block=name,
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        profile_name=_text(data, "profile_name", AWS, name),
    )


def _gcp(name: str, data: dict[str, Any]) -> GcpCredentials:
    info = data.get("service_account_info")
    if isinstance(info, str) and info.strip():
        try:
            info = json.loads(info)
        except ValueError:
            raise _bad(
                GCP,
                name,
                "service_account_info is not JSON (not shown here)",
                "edit the block: paste the service account key file's JSON",
            ) from None
    if info in (None, "", {}):
        info = None
    elif not isinstance(info, dict):
        raise _bad(
            GCP,
            name,
            f"service_account_info is a {type(info).__name__}, not a JSON object",
            "edit the block: paste the service account key file's JSON",
        )
    file = _text(data, "service_account_file", GCP, name)
    if info is not None and file:
        raise _bad(
            GCP,
            name,
            "both service_account_info and service_account_file are set",
            "edit the block: keep one of them",
        )
    if info is not None:
        missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
        if info.get("type") != "service_account" or missing:
            what = f"it lacks {', '.join(missing)}" if missing else f"its type is {info.get('type')!r}"
            raise _bad(
                GCP,
                name,
                f"service_account_info is not a service account key ({what})",
                "edit the block: paste the JSON key file of a service account (type service_account)",
            )
    return GcpCredentials(
        block=name,
        service_account_info=None if info is None else Secret(info),
        service_account_file=file,
        project=_text(data, "project", GCP, name),
    )


def _azure(name: str, data: dict[str, Any]) -> AzureCredentials:
    client_id = _text(data, "client_id", AZURE, name)
    tenant_id = _text(data, "tenant_id", AZURE, name)
    secret = _secret_text(data, "client_secret", AZURE, name)
    given = {"client_id": client_id, "tenant_id": tenant_id, "client_secret": secret}
    if any(given.values()) and not all(given.values()):
        missing = ", ".join(k for k, v in given.items() if not v)
        raise _bad(
            AZURE,
            name,
            f"a service principal needs client_id, tenant_id and client_secret; {missing} is empty",
            f"edit the block: set {missing}, or clear all three to use the default chain",
        )
    kwargs = data.get("credential_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise _bad(
            AZURE,
            name,
            f"credential_kwargs is a {type(kwargs).__name__}, not an object",
            "edit the block: set credential_kwargs to a JSON object (or {})",
        )
    return AzureCredentials(
        block=name, client_id=client_id, tenant_id=tenant_id, client_secret=secret, kwargs=dict(kwargs)
    )


__all__ = [
    "AWS",
    "AZURE",
    "CREATE_HINTS",
    "GCP",
    "AwsCredentials",
    "AzureCredentials",
    "CloudCredentials",
    "GcpCredentials",
    "Secret",
    "block_type",
    "from_block",
]
