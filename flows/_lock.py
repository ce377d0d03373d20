"""One run per target at a time: a Prefect global concurrency limit keyed by the deployment name.

deploy, canary, rollback and teardown all take the `dynadeploy-target-<name>` slot (limit 1) for
their whole run, so a scheduled canary, a deploy and a rollback started from the UI queue behind
each other instead of fighting over one target. The limit is created on first use. Flows that call
another flow as a subflow (rollback and canary call deploy) pass ``locked=True`` down so the inner
flow does not wait on the slot its parent holds.
"""

from __future__ import annotations

from contextlib import contextmanager

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from flows._slot_report import waiting_reporter


def limit_name(spec) -> str:
    return f"dynadeploy-target-{spec.name}"


def ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass


@contextmanager
def target_lock(spec, *, held: bool = False, timeout_s: float | None = 3600):
    if held:
        yield
        return
    name = limit_name(spec)
    ensure_limit(name)
    with waiting_reporter(spec.name) as acquired, \
            concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True, lease_duration=600):
        acquired()
        yield
