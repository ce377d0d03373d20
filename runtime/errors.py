"""The project's error tree. Every failure a user can see is one of these, with a fix.

    DynadeployError                 base; ``str()`` is the one-line reason the CLI prints
    ├── SpecError                   the spec is invalid; raised before any side effect
    ├── PermanentError              retrying will not help (bad input met at run time, missing tool)
    │   ├── NotSupportedError       the target cannot do what the spec asks (capabilities as data)
    │   ├── PreflightError          a precondition on the target failed; nothing was changed
    │   ├── ToolError               helm/kubectl/a binary failed or is missing
    │   ├── SmokeTestFailed         the smoke/SLA test breached a threshold (carries the numbers)
    │   ├── RolloutFailed           a rollout did not become ready (says which component and why)
    │   ├── RouteRejected           the traffic layer refused a route (waiting will not change that)
    │   ├── CanaryFailed            a canary failed its gate and was withdrawn; stable serves as before
    │   └── WaitTimeout             a wait ran out of time (carries what it waited for and why it was stuck)
    └── TransientError              worth retrying (throttling, timeouts, 5xx, conflicts)

SDK and transport errors are translated at the gateway that calls the SDK (``raise ... from exc``);
nothing above the gateways catches SDK exception types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class DynadeployError(Exception):
    """Base of every error the project raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where (dotted path), what is wrong, and how to fix it."""

    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} -> {self.fix}"


class SpecError(DynadeployError):
    """The deployment spec is invalid. Raised while loading, before anything is touched."""

    def __init__(self, issues: list[SpecIssue], *, source: str | None = None) -> None:
        from runtime.domain.secret_shapes import (
            scrub,  # stdlib-only module; late to keep this one import-free
        )

        # Last line of defence: whatever an issue was built from (a key the user wrote, a value a
        # rule quoted), no access token leaves in a spec error; paths also lose opaque key-like words.
        self.issues = [SpecIssue(scrub(i.path, opaque=True), scrub(i.problem), scrub(i.fix)) for i in issues]
        self.source = source
        where = f"{source}: " if source else ""
        first = self.issues[0] if self.issues else SpecIssue("spec", "invalid", "check the spec")
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(f"invalid spec: {where}{first}{more}")

    def details(self) -> str:
        return "\n".join(f"  - {issue}" for issue in self.issues)


class PermanentError(DynadeployError):
    """Retrying the same step will not help."""


class NotSupportedError(PermanentError):
    """The target lacks a capability the spec needs."""


class PreflightError(PermanentError):
    """A precondition failed before any change was made; ``problems``: each one found, when the check
    collects several (runtime/targets/kube/preflight.py ``Problem``)."""

    def __init__(self, message: str, *, hint: str | None = None, problems: list[Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems: list[Any] = problems if problems is not None else []


class ToolError(PermanentError):
    """An external binary (helm, kubectl, supervisord, etcd...) failed or is missing."""


class SmokeTestFailed(PermanentError):
    """The smoke/SLA test failed; ``report`` holds the measured numbers."""

    def __init__(self, message: str, *, report: dict | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report or {}


class RolloutFailed(PermanentError):
    """A rollout did not become ready in time; the message names the stuck component."""


class RouteRejected(PermanentError):
    """The traffic layer refused the route (it will not change by waiting)."""


class CanaryFailed(PermanentError):
    """The candidate failed its gate and was withdrawn; stable serves as before."""


class WaitTimeout(PermanentError):
    """A wait (runtime.domain.waiting.wait_until, ``Kube.wait``) ran out of time.

    ``what`` is what was waited for, ``timeout_s`` how long, ``stuck`` the last explanation of why the
    condition was not met (empty when the caller gave none), ``last_error`` the last transient error the
    check raised and the wait tolerated, ``last`` the last value the check returned (``Kube.wait``: the
    objects the predicate saw). Callers that promise another error type re-raise from these fields.
    """

    def __init__(
        self,
        message: str,
        *,
        last: object = None,
        hint: str | None = None,
        what: str = "",
        timeout_s: float = 0.0,
        stuck: str = "",
        last_error: BaseException | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.last = last
        self.what = what
        self.timeout_s = timeout_s
        self.stuck = stuck
        self.last_error = last_error


class TransientError(DynadeployError):
    """A failure worth retrying: throttling, timeouts, 5xx, resourceVersion conflicts."""

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
