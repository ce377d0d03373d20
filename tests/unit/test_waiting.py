"""wait_until, the one polling loop: driven by a hand-moved clock, no real sleeping."""

from __future__ import annotations

import pytest

from runtime.domain.waiting import Waits, wait_until
from runtime.errors import PermanentError, TransientError, WaitTimeout


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def test_returns_the_first_satisfied_value():
    clock, answers = Clock(), iter([0, None, "", "ready"])
    out = wait_until(lambda: next(answers), timeout_s=10, interval_s=2, clock=clock, sleep=clock.sleep)
    assert out == "ready" and clock.sleeps == [2, 2, 2]


def test_timeout_carries_what_and_the_stuck_explanation():
    clock = Clock()
    with pytest.raises(WaitTimeout, match=r"timed out after 5s waiting for the pods: 1 of 2 ready") as info:
        wait_until(
            lambda: None,
            timeout_s=5,
            interval_s=1,
            what="the pods",
            describe_stuck=lambda: "1 of 2 ready",
            clock=clock,
            sleep=clock.sleep,
        )
    err = info.value
    assert isinstance(err, PermanentError)
    assert (err.what, err.timeout_s, err.stuck, err.last_error) == ("the pods", 5, "1 of 2 ready", None)
    assert clock.t == 105.0  # checked at 100..105, gave up after the check at the deadline


def test_tolerated_errors_are_waited_through_and_reported():
    clock, calls = Clock(), []

    def flaky():
        calls.append(1)
        raise TransientError("429")

    with pytest.raises(WaitTimeout, match=r"; last error: 429") as info:
        wait_until(
            flaky, timeout_s=1, interval_s=0.5, tolerate=(TransientError,), clock=clock, sleep=clock.sleep
        )
    assert isinstance(info.value.last_error, TransientError) and len(calls) == 3


def test_untolerated_errors_end_the_wait():
    clock = Clock()
    with pytest.raises(TransientError):
        wait_until(
            lambda: (_ for _ in ()).throw(TransientError("x")), timeout_s=10, clock=clock, sleep=clock.sleep
        )
    assert clock.sleeps == []


def test_waits_until_takes_any_non_none_value():
    clock, answers = Clock(), iter([None, False])
    assert (
        Waits(poll_s=3, timeout_s=60).until(lambda: next(answers), what="x", clock=clock, sleep=clock.sleep)
        is False
    )
    assert clock.sleeps == [3]
