"""`dynadeploy status`: one verdict for a deployment, from what its backend reports (pure)."""

from __future__ import annotations

from runtime.targets.base import Status

RUNNING_STATES = {"RUNNING", "Running"}


def verdict(status: Status, file_hash: str | None = None) -> dict:
    """``serving`` | ``degraded`` | ``not deployed``, the reasons, and warnings (the spec file differs from
    the serving revision). ``status`` is a backend's status(); ``file_hash`` the spec file's spec_hash."""
    revisions = status.revisions or []
    processes = status.processes or {}
    models = status.models or []
    serving = next((r for r in reversed(revisions) if r.status == "serving"), None)
    warnings: list[str] = []
    if not revisions and not processes and not models:
        return {
            "verdict": "not deployed",
            "reasons": ["no revision recorded and nothing running"],
            "serving_revision": None,
            "warnings": warnings,
        }
    reasons: list[str] = []
    if not models:
        reasons.append(f"no model served at {status.endpoint or 'the endpoint'}")
    down = sorted(n for n, p in processes.items() if str(p.get("state")) not in RUNNING_STATES)
    if down:
        reasons.append("not running: " + ", ".join(f"{n} ({processes[n].get('state')})" for n in down))
    if status.ready is False:
        reasons.append("graph not ready" + (f": {'; '.join(status.reasons)}" if status.reasons else ""))
    if serving is None:
        reasons.append(
            "no revision is recorded as serving"
            + (f" (last: {revisions[-1].number} {revisions[-1].status})" if revisions else "")
        )
    elif serving.smoke_passed is False:
        reasons.append(f"revision {serving.number} failed its smoke test")
    if (
        serving is not None
        and file_hash
        and serving.spec_hash
        and not file_hash.startswith(serving.spec_hash)
    ):
        rolled_back = "rollback" in str(serving.reason)
        warnings.append(
            f"the spec file differs from serving revision {serving.number}: `dynadeploy deploy` would "
            "roll the file out" + (", undoing the rollback that revision is" if rolled_back else "")
        )
    return {
        "verdict": "degraded" if reasons else "serving",
        "reasons": reasons,
        "serving_revision": serving.number if serving else None,
        "warnings": warnings,
    }
