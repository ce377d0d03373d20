"""The kube target's cache_model stage: the PVC, the HF token Secret (from the resolved token the task passes
in), the download Job (waited for, its log surfaced on failure); skipped when the PVC's marker annotation says
the revision is cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import render
from runtime.domain import naming
from runtime.domain.rollout import (
    assess_job,
    diagnose,
)
from runtime.errors import PermanentError
from runtime.gateways.kube import WaitTimeout, covered
from runtime.targets.kube.common import (
    CACHED_ANNOTATION,
    MARKER_MANAGER,
    KubeModel,
    _job_env,
    _timeout,
)

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def cache_model(kb: KubeBackend, engine: str, token: str | None = None) -> KubeModel:
    spec, model = kb.spec, kb.spec.model
    objs = render.render_model_cache(spec, kb.caps)
    pvc, job = objs[0], (objs[1] if len(objs) > 1 else None)
    pvc_name = pvc["metadata"]["name"]
    secret = render.render_token_secret_ref(spec)
    if secret and token:
        kb.kube.ensure_secret(secret, kb.ns, {render.HF_TOKEN_KEY: token}, labels=naming.labels(spec.name))
    elif secret:
        raise PermanentError(
            "model.token is set but no token value was resolved",
            hint="check the Prefect Secret block or environment variable model.token names",
        )
    live = kb.kube.get("v1", "PersistentVolumeClaim", pvc_name, kb.ns)
    if live is None or not covered(live, pvc):
        live = kb.kube.apply(pvc)
    path = render.model_path(spec)
    if job is None:  # the built-in model: nothing to download
        return KubeModel(model.id, model.revision, True, pvc_name, path)
    marker = f"{model.id}@{model.revision}"
    if ((live.get("metadata") or {}).get("annotations") or {}).get(CACHED_ANNOTATION) == marker:
        return KubeModel(model.id, model.revision, True, pvc_name, path)
    run_download(kb, job)
    kb.kube.patch_merge(
        "v1",
        "PersistentVolumeClaim",
        pvc_name,
        {"metadata": {"annotations": {CACHED_ANNOTATION: marker}}},
        kb.ns,
        field_manager=MARKER_MANAGER,
    )
    return KubeModel(model.id, model.revision, False, pvc_name, path)


def run_download(kb: KubeBackend, job: dict) -> None:
    name = job["metadata"]["name"]
    live = kb.kube.get("batch/v1", "Job", name, kb.ns)
    if live is not None and (_job_env(live) != _job_env(job) or assess_job(live).failed):
        # Jobs are immutable: a Job for another revision, or one that failed, is replaced.
        kb.kube.delete("batch/v1", "Job", name, kb.ns, propagation="Background", wait=True)
        live = None
    if live is None:
        kb.kube.apply(job)

    def finished(objs: list[dict]):
        verdict = assess_job(objs[0] if objs else None)
        return verdict if (verdict.done or verdict.failed) else None

    def stuck(objs: list[dict]) -> str:
        return "; ".join([str(assess_job(objs[0] if objs else None))] + job_pod_problems(kb, name))

    try:
        verdict = kb.kube.wait(
            "batch/v1",
            "Job",
            finished,
            name=name,
            namespace=kb.ns,
            timeout_s=_timeout("CACHE", 3500),
            tick_s=2,
            what=f"the model download Job {kb.ns}/{name}",
            describe_stuck=stuck,
        )
    except WaitTimeout as exc:
        raise PermanentError(
            str(exc) + job_logs(kb, name), hint=f"kubectl logs job/{name} -n {kb.ns}"
        ) from None
    if verdict.failed:
        raise PermanentError(
            f"the model download Job {kb.ns}/{name} failed: {'; '.join(verdict.reasons)}"
            + job_logs(kb, name),
            hint=f"check model.id, model.revision and model.token; then rerun (the failed Job is replaced); "
            f"kubectl logs job/{name} -n {kb.ns}",
        )


def job_pods(kb: KubeBackend, job_name: str) -> list[dict]:
    pods = kb.kube.list("v1", "Pod", kb.ns, labels={"job-name": job_name})
    return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


def job_pod_problems(kb: KubeBackend, job_name: str) -> list[str]:
    return diagnose(job_pods(kb, job_name), kb.kube.events_in(kb.ns))


def job_logs(kb: KubeBackend, job_name: str, lines: int = 40) -> str:
    from runtime.gateways.helm import redact

    pods = job_pods(kb, job_name)
    if not pods:
        return ""
    pod = pods[-1]["metadata"]["name"]
    text = kb.kube.pod_logs(pod, kb.ns, tail_lines=lines).strip()
    return f"\n--- last {lines} log lines of pod {pod} ---\n{redact(text)}" if text else ""
