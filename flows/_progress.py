"""Stage progress: one log record per stage transition, for the Prefect UI and the CLI's live view.

Records go to the flow run's logger (so the UI shows them) and to the plain ``dynadeploy.progress``
logger, which the CLI listens to in order to draw its live per-stage status.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

PROGRESS = logging.getLogger("dynadeploy.progress")


def _emit(stage: str, event: str, detail: str = "", seconds: float | None = None, live: bool = False) -> None:
    extra = {"stage": stage, "event": event, "detail": detail, "seconds": seconds, "live": live}
    PROGRESS.info("%s %s %s", stage, event, detail, extra={"dynadeploy": extra})
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    try:
        logger = get_run_logger()
    except MissingContextError:  # called outside a flow run (the library used directly): the plain logger
        logger = logging.getLogger("dynadeploy.stages")
    logger.info("stage %s: %s%s%s", stage, event, took, f" ({detail})" if detail else "")


class Stage:
    def __init__(self, name: str) -> None:
        self.name = name
        self.detail = ""

    def note(self, detail: str) -> None:
        self.detail = detail

    def say(self, detail: str) -> None:
        """Report ``detail`` now, while the stage is still running (the CLI's live line, the run's log)."""
        _emit(self.name, "start", detail, live=True)


@contextmanager
def stage(name: str):
    s = Stage(name)
    t0 = time.monotonic()
    _emit(name, "start")
    try:
        yield s
    except BaseException as exc:
        _emit(name, "failed", f"{type(exc).__name__}: {exc}"[:300], time.monotonic() - t0)
        raise
    _emit(name, "done", s.detail, time.monotonic() - t0)


def side_by_side(runs: dict, describe: dict) -> dict:
    """Wait for independent task runs (Prefect futures) started together, reporting each as its own
    stage with its own duration; re-raises the first failure once every run has settled."""
    from prefect.futures import as_completed

    t0 = time.monotonic()
    for name in runs:
        _emit(name, "start", "side by side with " + ", ".join(n for n in runs if n != name))
    names = {id(f): n for n, f in runs.items()}
    results, errors = {}, []
    for future in as_completed(list(runs.values())):
        name = names[id(future)]
        try:
            results[name] = future.result()
        except BaseException as exc:
            _emit(name, "failed", f"{type(exc).__name__}: {exc}"[:300], time.monotonic() - t0)
            errors.append(exc)
            continue
        _emit(name, "done", describe[name](results[name]), time.monotonic() - t0)
    if errors:
        raise errors[0]
    return results
