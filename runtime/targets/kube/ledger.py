"""The kube target's revision ledger: one labelled ConfigMap per revision in the graph's namespace
(rendered by runtime/render), read oldest first; the smoke test's result recorded on its revision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import render
from runtime.domain import naming
from runtime.domain.revisions import Revision
from runtime.errors import PermanentError

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def versions(kb: KubeBackend, engine: str) -> dict:
    p = kb.spec.platform
    return {
        "dynamo": p.dynamo_version,
        "chart": p.chart(),
        "image": kb.spec.serving.image,
        "engine": engine,
        "gpu_operator": p.gpu_operator.version,
    }


def revisions(kb: KubeBackend) -> list[Revision]:
    """The ledger (labelled ConfigMaps in the graph's namespace), oldest first."""
    cms = kb.kube.list(
        "v1", "ConfigMap", kb.ns, labels={**naming.labels(kb.spec.name), naming.REVISION_KEY: None}
    )
    out = []
    for cm in cms:
        try:
            out.append(render.parse_revision_record(cm))
        except (PermanentError, ValueError, KeyError):
            continue
    return sorted(out, key=lambda r: r.number)


def put_revision(kb: KubeBackend, revision: Revision) -> None:
    kb.kube.apply(render.render_revision_record(revision, kb.ns), force=True)


def record_smoke(kb: KubeBackend, number: int, smoke: dict) -> None:
    rev = next((r for r in kb.revisions() if r.number == number), None)
    if rev is not None:
        rev.smoke = smoke
        put_revision(kb, rev)
