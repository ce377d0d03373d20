"""Kubernetes API failures in the project's error tree (used by runtime/gateways/kube.py): what a failed call
becomes (TransientError for 409/410/429/5xx and transport errors, PermanentError with an RBAC hint for 403,
...), and the small describers its messages use.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.errors import DynadeployError, PermanentError, TransientError


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            return str(json.loads(body).get("message") or "").strip()
        except ValueError:
            pass
    return str(getattr(exc, "reason", "") or "").strip()


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
    except AttributeError:
        return None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_api_exception(exc: BaseException) -> bool:
    return type(exc).__name__ in ("ApiException", "DynamicApiError") or (
        hasattr(exc, "status") and hasattr(exc, "reason") and hasattr(exc, "body")
    )


def translate(
    exc: BaseException,
    *,
    verb: str,
    what: str,
    resource: str = "",
    namespace: str | None = None,
    context: str | None = None,
    secret: bool = False,
) -> DynadeployError:
    """The project's error for a failed API call ``verb`` on ``what`` (e.g. "Deployment ns/name").

    ``resource`` is the plural (with group) named in an RBAC hint; ``secret`` keeps the server's
    message out of the error (it could quote what was sent).
    """
    if isinstance(exc, DynadeployError):
        return exc
    where = f" in namespace {namespace}" if namespace else ""
    if _is_api_exception(exc):
        status = int(getattr(exc, "status", 0) or 0)
        detail = "" if secret else _status_message(exc)
        message = f"{verb} {what} failed: HTTP {status}" + (f": {detail}" if detail else "")
        if status == 403:
            ctx = f" (kubeconfig context {context})" if context else ""
            scope = f"-n {namespace}" if namespace else "(cluster-wide)"
            return PermanentError(
                message,
                hint=(
                    f"the identity of this run{ctx} may not {verb} {resource or what}{where}; grant it with a "
                    f"Role/ClusterRole binding (check: kubectl auth can-i {verb} {resource or what} {scope})"
                ),
            )
        if status == 401:
            return PermanentError(
                message,
                hint="the kubeconfig's credentials were refused; refresh them "
                "(e.g. re-run the cloud's get-credentials command)",
            )
        if status in (409, 410, 429) or status >= 500 or status == 0:
            return TransientError(
                message,
                retry_after=_retry_after(exc),
                hint="the Kubernetes API was busy, changing or unavailable; retry",
            )
        if status == 404:
            return PermanentError(message, hint=f"{what} does not exist{where}")
        return PermanentError(
            message,
            hint="the API server refused the request as sent; fix the manifest "
            "or the spec field it came from",
        )
    name = type(exc).__name__
    if name in (
        "MaxRetryError",
        "NewConnectionError",
        "ProtocolError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionError",
        "RemoteDisconnected",
        "SSLError",
        "IncompleteRead",
    ) or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        reason = str(getattr(exc, "reason", "") or exc).splitlines()[0][:300] if not secret else name
        return TransientError(
            f"{verb} {what} failed: cannot reach the Kubernetes API ({reason})",
            hint="check that the cluster is up and reachable from this worker; retry",
        )
    return PermanentError(f"{verb} {what} failed: {name}" + ("" if secret else f": {exc}"))


def _not_found(exc: BaseException) -> bool:
    return _is_api_exception(exc) and int(getattr(exc, "status", 0) or 0) == 404


def plural_of(resource: Any) -> str:
    group = getattr(resource, "group", "") or ""
    return f"{resource.name}.{group}" if group else resource.name


def describe(api_version: str, kind: str, name: str | None = None, namespace: str | None = None) -> str:
    where = (
        f"{namespace}/{name}" if namespace and name else (name or (f"in {namespace}" if namespace else ""))
    )
    return f"{kind} {where}".strip()
