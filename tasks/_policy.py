"""Retry policy shared by the tasks: retry transient failures only, never bad input."""

from __future__ import annotations

from runtime.errors import TransientError


def retry_transient(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: True only when the task failed with a TransientError."""
    try:
        state.result()
    except TransientError:
        return True
    except Exception:
        return False
    return False


TRANSIENT = {"retries": 3, "retry_delay_seconds": [1, 3, 9], "retry_condition_fn": retry_transient}
