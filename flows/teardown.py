"""teardown: stop and remove everything a deployment created, then prove it with an inventory."""

from __future__ import annotations

from prefect import flow

from flows._lock import target_lock
from flows._progress import stage
from flows._spec import load, redacted_parameters
from runtime.errors import PermanentError
from tasks import stages


@redacted_parameters  # stored run parameters never hold an inline secret (flows/_spec.py)
@flow(name="teardown", log_prints=False)
def teardown(spec: str | dict, delete_model_cache: bool = False) -> dict:
    """Remove everything the deployment created and prove it with an inventory.

    Args:
        spec: the deployment's spec: a path to its YAML file (relative to the worker's directory) or a dict.
        delete_model_cache: also delete the downloaded model files (kept by default).
    """
    s = load(spec)
    with target_lock(s):
        return _teardown(s, delete_model_cache)


def _teardown(s, delete_model_cache: bool) -> dict:
    keep = s.teardown.keep_model_cache and not delete_model_cache
    with stage("teardown") as st:
        result = stages.tear_down(s, keep_model_cache=keep)
        st.note(result.note or f"{len(result.stopped_strays or [])} stray process(es) stopped")
    with stage("inventory") as st:
        left = stages.take_inventory(s)
        st.note("nothing left" if not left else f"{len(left)} leftover(s)")
    if left:
        raise PermanentError(
            f"teardown left {len(left)} thing(s) behind: {'; '.join(left)}",
            hint="rerun teardown; if it persists, remove the listed processes or objects by hand",
        )
    return {"target": s.target.kind, "name": s.name, "leftovers": left, "model_cache_kept": keep}
