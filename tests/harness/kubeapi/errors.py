"""Kubernetes ``Status`` errors, shaped like the real API server's (reason, code, details, causes)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the simulator answers with a ``Status`` body; also what the Store API raises."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def _details(resource: str, name: str, group: str = "", **extra: Any) -> dict:
    d: dict[str, Any] = {"name": name, "kind": resource}
    if group:
        d["group"] = group
    d.update(extra)
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        details=_details(resource, name, group),
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        details=_details(resource, name, group),
    )


def conflict(resource: str, name: str, group: str = "", why: str | None = None) -> ApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        details=_details(resource, name, group),
    )


def apply_conflict(causes: list[dict]) -> ApiError:
    """409 from server-side apply when fields are owned by another manager (and force is not set)."""
    n = len(causes)
    lines = "\n".join(f"- {c['message']}" for c in causes)
    msg = f"Apply failed with {n} conflict{'s' if n != 1 else ''}: " + (
        causes[0]["message"] if n == 1 else "\n" + lines
    )
    return ApiError(409, "Conflict", msg, details={"causes": causes})


def invalid(kind: str, name: str, causes: list[dict], group: str = "") -> ApiError:
    """422 Invalid; ``causes`` are ``{"field", "message", "reason"}`` (reason FieldValueInvalid...)."""
    summary = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
    if len(causes) > 1:
        summary = "[" + summary + "]"
    return ApiError(
        422,
        "Invalid",
        f'{_qualified(kind, group)} "{name}" is invalid: {summary}',
        details=_details(kind, name, group, causes=causes),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", message, details={"causes": [{"reason": "", "message": message}]}
    )


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}",
        details={"causes": [{"reason": "", "message": f"unsupported content type {content_type!r}"}]},
    )


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def forbidden(resource: str, name: str, message: str, group: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, details=_details(resource, name, group))


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_many_requests(message: str, retry_after: float) -> ApiError:
    secs = max(1, round(retry_after))
    return ApiError(
        429,
        "TooManyRequests",
        message,
        details={"retryAfterSeconds": secs},
        headers={"Retry-After": str(secs)},
    )


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", message)


def unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)
