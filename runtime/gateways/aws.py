"""The boto3 gateway of the AWS providers: clients, retries, error translation, create-or-get.

- Clients come from one boto3 Session: made from the target's aws-credentials block when the spec names
  one (``session_for``: its access key, session token or profile; runtime/domain/credentials.py), else the usual
  credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO, instance roles); with botocore's retry modes: AWS_RETRY_MODE (standard | adaptive, default
  standard) and AWS_MAX_ATTEMPTS (default 8). Throttling and 5xx answers are retried there, with
  backoff; what is still failing afterwards becomes a TransientError.
- AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) are honoured by botocore itself, so the same code
  runs against moto and AWS.
- Every SDK exception is translated here into runtime.errors; nothing above this module sees botocore.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError

from runtime.domain.waiting import Waits, WaitTimeout
from runtime.errors import DynadeployError, PermanentError, TransientError

T = TypeVar("T")

THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
# Dependencies that clear up as their dependents are deleted, or eventual consistency right after
# a create: worth retrying by the caller's loop.
RETRYABLE = frozenset(
    {
        "DependencyViolation",
        "ResourceInUseException",
        "IncorrectState",
        "InvalidParameterException",
        "ServerException",
        "ServiceUnavailable",
    }
)
DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def translate(exc: BaseException, what: str) -> DynadeployError:
    """A botocore exception as a runtime.errors exception saying what was being done."""
    if isinstance(exc, ClientError):
        code, status = error_code(exc), http_status(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        text = f"{what}: {code}: {message}"[:600]
        if code in THROTTLING or status == 429 or status >= 500:
            return TransientError(text, hint="AWS throttled or failed; rerun to continue where it stopped")
        if code in DENIED:
            return PermanentError(
                text,
                hint="the AWS identity lacks this permission; check "
                "`aws sts get-caller-identity` and its IAM policies",
            )
        return PermanentError(text, hint="see the AWS message; rerunning continues where it stopped")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentError(
            f"{what}: no AWS credentials",
            hint="name an aws-credentials block in target.credentials, or give the worker "
            "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    if isinstance(exc, ProfileNotFound):
        return PermanentError(
            f"{what}: {exc}",
            hint="add the profile to the worker's ~/.aws/config, or fix "
            "profile_name (in the aws-credentials block or AWS_PROFILE)",
        )
    if isinstance(exc, NoRegionError):
        return PermanentError(f"{what}: no AWS region", hint="set target.region")
    if isinstance(exc, ResponseParserError):  # an HTML error page from a proxy or emulator
        return TransientError(f"{what}: unreadable answer from AWS: {str(exc)[:300]}")
    if isinstance(exc, BotoConnectionError):
        return TransientError(
            f"{what}: cannot reach AWS: {exc}", hint="check the network or AWS_ENDPOINT_URL"
        )
    return TransientError(f"{what}: {type(exc).__name__}: {exc}")


def tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in tags.items()]


def tag_dict(items: Iterable[Mapping[str, str]] | Mapping[str, str] | None) -> dict[str, str]:
    """Tags as a dict from any of AWS's shapes ({"Key","Value"}, {"key","value"}, or a dict)."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    return {i.get("Key", i.get("key", "")): i.get("Value", i.get("value", "")) for i in items}


def tag_spec(resource_type: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """EC2 TagSpecifications: the object is tagged atomically with its creation (no untagged orphan)."""
    return [{"ResourceType": resource_type, "Tags": tag_list(tags)}]


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def session_for(credentials: Any) -> Any:
    """A boto3 Session from an aws-credentials block (runtime.domain.credentials.AwsCredentials); the default
    chain's Session when the block leaves every credential field empty."""
    if credentials.default_chain:
        return boto3.session.Session()
    secret = credentials.secret_access_key.reveal() if credentials.secret_access_key else None
    token = credentials.session_token.reveal() if credentials.session_token else None
    try:
        return boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=secret,
            aws_session_token=token,
            profile_name=credentials.profile_name,
        )
    except BotoCoreError as exc:
        raise translate(exc, f"AWS credentials of block {credentials.block!r}") from exc


class Aws:
    """boto3 clients for one region, with translation and the create-or-get/delete helpers."""

    def __init__(self, region: str, *, session: Any = None, waits: Waits | None = None) -> None:
        self.region = region
        self.session = session or boto3.session.Session(region_name=region)
        mode = os.environ.get("AWS_RETRY_MODE", "standard")
        self.config = Config(
            region_name=region,
            retries={
                "mode": mode if mode in ("standard", "adaptive") else "standard",
                "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "8")),
            },
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="dynadeploy",
        )
        self.waits = waits or Waits()
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def custom_endpoint(self) -> str | None:
        """AWS_ENDPOINT_URL when set (an emulator or a private endpoint), else None."""
        return os.environ.get("AWS_ENDPOINT_URL") or None

    def client(self, service: str) -> Any:
        with self._lock:  # sessions are not thread-safe; clients are
            if service not in self._clients:
                try:
                    self._clients[service] = self.session.client(service, config=self.config)
                except BotoCoreError as exc:
                    raise translate(exc, f"creating the {service} client") from exc
            return self._clients[service]

    def call(self, service: str, op: str, /, **kwargs: Any) -> Any:
        """``client(service).op(**kwargs)`` with errors translated."""
        try:
            return getattr(self.client(service), op)(**kwargs)
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise translate(exc, f"{service}.{op}") from exc

    def get(self, service: str, op: str, /, *, missing: Iterable[str], **kwargs: Any) -> Any:
        """Like ``call``, but None when the answer's error code is one of ``missing`` (not found)."""
        try:
            return getattr(self.client(service), op)(**kwargs)
        except ClientError as exc:
            if error_code(exc) in set(missing):
                return None
            raise translate(exc, f"{service}.{op}") from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise translate(exc, f"{service}.{op}") from exc

    def create(self, service: str, op: str, /, *, exists: Iterable[str], **kwargs: Any) -> Any:
        """Call a create; None when it says the object already exists (the caller then gets it)."""
        return self.get(service, op, missing=exists, **kwargs)

    def create_or_found(
        self, service: str, op: str, /, *, exists: Iterable[str], found: Callable[[], Any], **kwargs: Any
    ) -> Any:
        """A create whose "already exists" error code is too generic to trust (ECS's ClientException,
        InvalidParameterException): on such an error, ``found()`` must see the object, else the
        error is raised as it was."""
        try:
            return getattr(self.client(service), op)(**kwargs)
        except ClientError as exc:
            if error_code(exc) in set(exists):
                existing = found()
                if existing is not None:
                    return existing
            raise translate(exc, f"{service}.{op}") from exc
        except (BotoCoreError, ResponseParserError) as exc:
            raise translate(exc, f"{service}.{op}") from exc

    def delete(self, service: str, op: str, /, *, missing: Iterable[str], **kwargs: Any) -> bool:
        """Call a delete; True if it deleted, False if the object was already gone (success too)."""
        return self.get(service, op, missing=missing, **kwargs) is not None

    def paginate(self, service: str, op: str, key: str, /, **kwargs: Any) -> list[Any]:
        """Every item under ``key`` over all pages."""
        try:
            pages = self.client(service).get_paginator(op).paginate(**kwargs)
            return [item for page in pages for item in page.get(key, [])]
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            raise translate(exc, f"{service}.{op}") from exc

    def wait(self, check: Callable[[], T | None], *, what: str, timeout_s: float | None = None) -> T:
        """Poll ``check`` until it returns something other than None; a TransientError on timeout."""
        try:
            return self.waits.until(check, what=what, timeout_s=timeout_s)
        except WaitTimeout:
            raise TransientError(
                f"timed out waiting for {what}", hint="the cloud is slow or stuck; rerun to keep waiting"
            ) from None

    def retry_dependent(self, fn: Callable[[], T], *, what: str, codes: Iterable[str] = RETRYABLE) -> T:
        """Run ``fn`` until it stops failing with a dependency-type error (bounded by the wait timeout)."""
        codes = set(codes)
        blocked: list[PermanentError] = []

        def attempt() -> tuple[T] | None:  # a 1-tuple: fn's own None is a success too
            try:
                return (fn(),)
            except TransientError:
                raise
            except PermanentError as exc:
                code = error_code(exc.__cause__) if exc.__cause__ is not None else ""
                if code not in codes:
                    raise
                blocked.append(exc)
                return None

        try:
            return self.waits.until(attempt, what=what)[0]
        except WaitTimeout:
            exc = blocked[-1]
            raise TransientError(f"{what}: still blocked: {exc.message}") from exc
