"""One way to wait: ``wait_until`` polls a check until it is satisfied or time runs out.

Every wait in the project (cloud objects reaching a state, local processes coming up, ECS services
settling, kube objects converging) is this loop: call the check, return its value once it is satisfied,
else give up at the deadline with a ``WaitTimeout`` that says what was waited for and why it was stuck,
else sleep and call again. The clock and the sleep are parameters so tests can drive time by hand; they
default to ``time.monotonic`` and ``time.sleep``, looked up at call time (a test that patches the time
module still takes effect). ``Waits`` is the poll interval and deadline the cloud gateways share (it lives
here, not with boto3, so GKE and AKS load no AWS SDK).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from runtime.errors import WaitTimeout

T = TypeVar("T")

__all__ = ["WaitTimeout", "Waits", "not_none", "wait_for_value", "wait_until"]


def not_none(value: object) -> bool:
    """The cloud gateways' notion of done: the check returned anything but None (False and 0 count)."""
    return value is not None


def wait_until(
    check: Callable[[], T],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str = "a condition",
    describe_stuck: Callable[[], str] | None = None,
    satisfied: Callable[[T], bool] = bool,
    tolerate: tuple[type[BaseException], ...] = (),
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call ``check`` every ``interval_s`` until ``satisfied(result)`` (default: truthy); return that result.

    Each round is check, then deadline, then sleep: the check runs at least once, and a result that
    arrives in the last round still wins over the timeout. Exceptions of the ``tolerate`` types raised
    by the check are waited through (the last one is kept for the timeout); any other exception ends the
    wait. On timeout: ``WaitTimeout`` carrying ``what``, ``timeout_s``, ``describe_stuck()`` as ``stuck``,
    the last tolerated error and the last value the check returned.
    """
    now = clock or time.monotonic
    pause = sleep or time.sleep
    deadline = now() + timeout_s
    last_error: BaseException | None = None
    last: object = None
    while True:
        try:
            out = check()
            last_error = None
            last = out
            if satisfied(out):
                return out
        except tolerate as exc:  # an empty tuple catches nothing
            last_error = exc
        if now() >= deadline:
            stuck = describe_stuck() if describe_stuck else ""
            tail = f"; last error: {last_error}" if last_error else ""
            raise WaitTimeout(
                f"timed out after {timeout_s:.0f}s waiting for {what}"
                + (f": {stuck}" if stuck else "")
                + tail,
                last=last,
                what=what,
                timeout_s=timeout_s,
                stuck=stuck,
                last_error=last_error,
            )
        pause(interval_s)


def wait_for_value(
    check: Callable[[], T | None],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str = "a value",
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """``wait_until`` done when ``check`` returns anything but None (``not_none``); that value, typed as such."""
    out = wait_until(
        check,
        timeout_s=timeout_s,
        interval_s=interval_s,
        what=what,
        satisfied=not_none,
        clock=clock,
        sleep=sleep,
    )
    if out is None:  # pragma: no cover - not_none returned True for it
        raise AssertionError(f"wait_until returned None while waiting for {what}")
    return out


@dataclass(frozen=True)
class Waits:
    """How long to wait for a cloud object to reach a state. Tests shrink these."""

    poll_s: float = 15.0
    timeout_s: float = 1800.0

    def until(
        self,
        check: Callable[[], T | None],
        *,
        what: str,
        timeout_s: float | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> T:
        """``wait_until`` with this poll interval and deadline, done when ``check`` returns anything but None."""
        return wait_for_value(
            check,
            timeout_s=self.timeout_s if timeout_s is None else timeout_s,
            interval_s=self.poll_s,
            what=what,
            clock=clock,
            sleep=sleep,
        )
