"""The smoke/SLA test task: real requests against the serving endpoint, results as artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from runtime.domain import sla
from runtime.errors import SmokeTestFailed
from runtime.gateways import loadgen
from tasks._policy import TRANSIENT
from tasks.targets import backend


def _key(prefix: str, name: str) -> str:
    return f"{prefix}-{name}".lower()[:60]


# Retried only when the endpoint cannot be reached or answers 5xx at /v1/models (TransientError):
# a frontend restarting under its supervisor, or an address not yet routable right after a rollout.
# A served request that fails or misses the SLA is a verdict (SmokeTestFailed), never retried.
@task(name="smoke-test", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
def run_smoke_test(spec, endpoint: str, revision: int) -> dict:
    """``endpoint``: the platform's, for the run's record; the requests go where the backend's reach() says
    this worker reaches the frontend (the endpoint itself, a Service address or a port-forward run for the
    duration of the test)."""
    try:
        with backend(spec).reach() as url:
            result = loadgen.smoke_test(url, spec.model.served(), spec.smoke)
    except SmokeTestFailed as exc:
        _publish(spec, revision, exc.report, None, failed=str(exc))
        raise
    _publish(spec, revision, result.as_dict(), result)
    return result.as_dict()


def _publish(spec, revision: int, summary: dict, result, failed: str | None = None) -> None:
    title = f"Smoke test of {spec.name} revision {revision}"
    if result is not None:
        create_table_artifact(
            key=_key("smoke", spec.name), table=sla.to_table(result.report), description=title
        )
        md = sla.to_markdown(result.report, result.verdict)
        from runtime.render import (
            latency_plot,  # the distributions as pictures (SVG CDFs with the SLA targets)
        )

        md += "\n\n" + latency_plot.markdown({f"revision {revision}": result.report}, spec.smoke.sla)
    else:
        md = "\n".join(
            [f"**FAILED**: {failed}", "", "```", *(f"{k}: {v}" for k, v in summary.items()), "```"]
        )
    create_markdown_artifact(
        key=_key("smoke-summary", spec.name), markdown=f"# {title}\n\n{md}", description=title
    )
