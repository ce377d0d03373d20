"""The deploy stages as Prefect tasks: one idempotent step each, dispatched to the target's backend.

Retries (transient failures only) and timeouts live here and nowhere else. Tasks do no caching of
their own (NO_CACHE): idempotence comes from each stage comparing what exists with what is wanted.
"""

from __future__ import annotations

import contextlib
import logging

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from runtime.domain.revisions import Revision
from runtime.targets.base import (
    Accelerators,
    CachedModel,
    PlatformEndpoint,
    Provisioned,
    Rollout,
    TeardownReport,
)
from tasks._policy import TRANSIENT
from tasks.secrets import resolve_model_token
from tasks.targets import backend


@task(name="provision", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
def provision(spec) -> Provisioned:
    return backend(spec).provision()


# Kubernetes targets install the GPU operator here when nodes do not report GPUs yet (minutes: the driver
# is built on the node), so this stage gets the install's timeout and the transient-retry policy.
@task(name="detect-gpus", cache_policy=NO_CACHE, timeout_seconds=1800, **TRANSIENT)
def detect_gpus(spec) -> Accelerators:
    return backend(spec).detect_gpus()


@task(name="install-platform", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
def install_platform(spec) -> PlatformEndpoint:
    return backend(spec).install_platform()


@task(name="cache-model", cache_policy=NO_CACHE, timeout_seconds=3600, **TRANSIENT)
def cache_model(spec, engine: str) -> CachedModel:
    return backend(spec).cache_model(engine, token=resolve_model_token(spec))


@task(name="roll-out", cache_policy=NO_CACHE, timeout_seconds=1800, **TRANSIENT)
def roll_out(
    spec, engine: str, model: CachedModel, reason: str = "deploy", started_by: str = "dynadeploy"
) -> Rollout:
    # A graph replacement (a change of the component set) says its plan before acting: into the run's log.
    with _to_run_log("dynadeploy.kube"):
        return backend(spec).roll_out(engine, model, reason=reason, started_by=started_by)


@contextlib.contextmanager
def _to_run_log(name: str):
    """Warnings of logger ``name`` also go to the task run's logger (the Prefect UI) while the block runs."""
    run_log = get_run_logger()

    class Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            run_log.log(record.levelno, "%s", record.getMessage())

    handler = Forward(level=logging.WARNING)
    source = logging.getLogger(name)
    source.addHandler(handler)
    try:
        yield
    finally:
        source.removeHandler(handler)


@task(name="record-smoke", cache_policy=NO_CACHE, timeout_seconds=60)
def record_smoke(spec, revision: int, smoke: dict) -> None:
    backend(spec).record_smoke(revision, smoke)


@task(name="read-ledger", cache_policy=NO_CACHE, timeout_seconds=120, **TRANSIENT)
def read_ledger(spec) -> list[Revision]:
    return backend(spec).revisions()


@task(name="teardown", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
def tear_down(spec, keep_model_cache: bool = True) -> TeardownReport:
    return backend(spec).teardown(keep_model_cache=keep_model_cache)


@task(name="inventory", cache_policy=NO_CACHE, timeout_seconds=120)
def take_inventory(spec) -> list[str]:
    return backend(spec).inventory()
