"""The ``eks``, ``gke`` and ``aks`` targets: a cloud provider makes the cluster, the kube stages run on it.

    provision      provider.ensure_cluster; then, concurrently, the node pools (ensure_gpu_nodes) and the
                   model cache's cloud side (storage_class: EFS on EKS); the kubeconfig from kube_access
                   written into the deployment's state dir; the provider's StorageClass objects applied
                   in-cluster; then the kube preflight + namespace (KubeBackend.provision)
    detect_gpus .. status   KubeBackend's stages, on a KubeBackend pointed at that kubeconfig (GPU operator,
                   Dynamo platform, model cache, rollout, ledger, smoke record, status, reach)
    teardown       KubeBackend.teardown (the model cache too when the cluster is ours: it goes with the
                   cluster), dynadeploy's StorageClasses, then provider.delete_cluster
    inventory      the kube inventory while the cluster exists, plus the provider's inventory by tag

State dir: ``$DYNADEPLOY_HOME/deployments/<name>/<kind>/`` holds ``cluster.json`` (the ClusterRef, the
kubeconfig's context and expiry, the StorageClass manifests) and ``kubeconfig`` (0600; it holds a bearer
token). It is a cache: where it is missing (another worker machine) the cluster is looked up again, never
created, except by provision. The kubeconfig is rewritten before a stage when its token expires within
``REFRESH_MARGIN_S`` (EKS tokens last 14 minutes, GKE's about an hour; AKS's kubeconfig does not expire).

Every backend_for(spec) call builds a new CloudBackend (one per task); providers are cached per kind (and per
credentials, where the spec names a credentials block: runtime/targets/registry.py) so their SDK clients are built
once per process (runtime/providers/access.py, shared with the ECS target; tests replace its ``make_provider``).
The credentials live only in memory, in the provider's SDK clients: cluster.json holds none, and the kubeconfig
holds only a cluster token (EKS: the short-lived signed token, never the access key).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from runtime.domain import naming
from runtime.domain.revisions import Revision
from runtime.errors import DynadeployError, PermanentError
from runtime.host.home import home
from runtime.providers import access
from runtime.providers.base import ClusterRef, StorageClass
from runtime.spec.serving import Engine
from runtime.targets.base import (
    Accelerators,
    PlatformEndpoint,
    Provisioned,
    Rollout,
    Status,
    TeardownReport,
)
from runtime.targets.kube.backend import KubeBackend

log = logging.getLogger("dynadeploy.cloud")

CLOUD_KINDS = ("eks", "gke", "aks")
REFRESH_MARGIN_S = 300.0
SC_API, SC_KIND = "storage.k8s.io/v1", "StorageClass"


def state_dir(spec) -> Path:
    return home() / "deployments" / spec.name / spec.target.kind


def _timed(fn, *args) -> tuple[Any, float]:
    t0 = time.monotonic()
    return fn(*args), time.monotonic() - t0


def run_concurrently(jobs: dict[str, tuple]) -> tuple[dict[str, Any], dict[str, float], float]:
    """Run ``{name: (fn, *args)}`` on threads; (results, seconds per job, wall seconds). Every job runs to
    its end; the first failure (in ``jobs`` order) is raised afterwards."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, len(jobs)), thread_name_prefix="dynadeploy-provision") as pool:
        futures = {name: pool.submit(_timed, job[0], *job[1:]) for name, job in jobs.items()}
    results, seconds = {}, {}
    for name, fut in futures.items():
        exc = fut.exception()
        if exc is not None:
            raise exc
        results[name], seconds[name] = fut.result()
    return results, seconds, time.monotonic() - t0


class CloudBackend:
    """ServingBackend of a managed Kubernetes cloud (eks, gke, aks), by composition of its ClusterProvider
    (runtime/providers) and the kube stages (runtime/targets/kube/backend.KubeBackend)."""

    def __init__(self, spec, *, provider: Any = None, credentials: Any = None) -> None:
        if spec.target.kind not in CLOUD_KINDS:
            raise PermanentError(f"CloudBackend serves {', '.join(CLOUD_KINDS)}, not {spec.target.kind}")
        self.spec = spec
        self.kind: str = spec.target.kind
        self.provider = provider if provider is not None else access.provider_with(spec, credentials)
        self.dir = state_dir(spec)
        self._kb: KubeBackend | None = None

    # ------------------------------------------------------------------ state (a cache)
    @property
    def kubeconfig_path(self) -> Path:
        return self.dir / "kubeconfig"

    def _state(self) -> dict:
        try:
            return json.loads((self.dir / "cluster.json").read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, **changes: Any) -> None:
        state = {**self._state(), **changes}
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "cluster.json.tmp"
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True, default=str))
        tmp.replace(self.dir / "cluster.json")

    def _forget(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _saved_ref(self) -> ClusterRef | None:
        data = self._state().get("ref")
        return ClusterRef(**data) if data else None

    def cluster_exists(self) -> bool:
        """Whether the cloud has the cluster now (a read; never creates)."""
        t, p = self.spec.target, self.provider
        if self.kind == "eks":
            return p._describe(p.aws(t.region), t.cluster_name) is not None
        if self.kind == "gke":
            return p._cluster(t) is not None
        return p._cluster(p.azure(t.subscription_id), t) is not None

    def _ref(self, *, verify: bool = False) -> ClusterRef | None:
        """The cluster: from the state dir, else looked up (ensure_cluster on a cluster that exists is a
        get). ``verify``: confirm it still exists first (teardown, inventory). None when there is none."""
        if verify and not self.cluster_exists():
            return None
        ref = self._saved_ref()
        if ref is None:
            if not verify and not self.cluster_exists():
                return None
            ref = self.provider.ensure_cluster(self.spec)
            self._save(ref=asdict(ref))
        return ref

    def _write_access(self, ref: ClusterRef) -> str:
        access = self.provider.kube_access(ref)
        access.write_kubeconfig(self.kubeconfig_path)
        self._save(context=access.context, expires_at=access.expires_at, server=access.server)
        return access.context

    def kube(self) -> KubeBackend:
        """The kube stages for this cluster, with a kubeconfig fresh enough for a stage."""
        if self._kb is not None:
            return self._kb
        ref = self._ref()
        if ref is None:
            raise PermanentError(
                f"the {self.kind} cluster of {self.spec.name} does not exist",
                hint="run deploy: its provision stage creates the cluster",
            )
        state = self._state()
        expires = state.get("expires_at")
        context = state.get("context")
        if (
            not self.kubeconfig_path.is_file()
            or not context
            or (expires is not None and float(expires) - time.time() < REFRESH_MARGIN_S)
        ):
            context = self._write_access(ref)
        self._kb = KubeBackend(self.spec, kubeconfig=str(self.kubeconfig_path), context=context)
        return self._kb

    # ------------------------------------------------------------------ 1. provision
    def provision(self) -> Provisioned:
        spec, provider = self.spec, self.provider
        t0 = time.monotonic()
        ref = provider.ensure_cluster(spec)
        self._save(ref=asdict(ref))
        cluster_s = time.monotonic() - t0
        # Node pools and the cache's cloud storage (EFS) only need the cluster: run them side by side.
        results, seconds, wall = run_concurrently(
            {
                "node_pools": (provider.ensure_gpu_nodes, spec, ref),
                "storage": (provider.storage_class, spec, ref),
            }
        )
        storage: StorageClass = results["storage"]
        self._save(storage_manifests=list(storage.manifests))
        context = self._write_access(ref)
        self._kb = KubeBackend(spec, kubeconfig=str(self.kubeconfig_path), context=context)
        applied = self._apply_storage_classes()
        preflight = self._kb.provision()
        parallel = {
            "jobs": sorted(seconds),
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "wall_s": round(wall, 2),
            "sequential_s": round(sum(seconds.values()), 2),
        }
        log.info(
            "%s %s: cluster in %.1fs; %s ran concurrently in %.1fs (%.1fs one after the other)",
            self.kind,
            ref.name,
            cluster_s,
            " + ".join(sorted(seconds)),
            wall,
            parallel["sequential_s"],
        )
        cluster = (
            f"{self.kind} {ref.name} in {ref.location}; node pools || storage: {wall:.1f}s wall "
            f"({parallel['sequential_s']:.1f}s summed)"
        )
        return Provisioned(
            where=cluster,
            notes=list(storage.notes),
            details={
                "cluster": cluster,
                "endpoint": ref.endpoint,
                "kubeconfig": str(self.kubeconfig_path),
                "owned": ref.details.get("owned"),
                "cluster_s": round(cluster_s, 2),
                "node_pools": results["node_pools"],
                "parallel": parallel,
                "storage_class": storage.name,
                "storage_classes_applied": applied,
                "kube": preflight.as_dict(),
            },
        )

    def _apply_storage_classes(self) -> list[str]:
        """The provider's StorageClass objects (EKS: efs-sc with the file system id), in-cluster. A class's
        parameters are immutable: one of ours that differs (a new file system) is replaced."""
        kube = self.kube().kube
        out = []
        for want in self._state().get("storage_manifests") or []:
            name = want["metadata"]["name"]
            live = kube.get(SC_API, SC_KIND, name)
            if live is not None and all(live.get(k) == want.get(k) for k in ("provisioner", "parameters")):
                continue
            if live is not None:
                if not self._ours(live):
                    raise PermanentError(
                        f"StorageClass {name} exists with other parameters and is not dynadeploy's",
                        hint="delete it, or set model.cache.storage_class to another class",
                    )
                kube.delete(SC_API, SC_KIND, name, wait=True)
            kube.apply(want, force=True)
            out.append(name)
        return out

    def _ours(self, obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in naming.labels(self.spec.name).items())

    def _our_storage_classes(self, kb: KubeBackend) -> list[dict]:
        return kb.kube.list(SC_API, SC_KIND, labels=naming.labels(self.spec.name))

    # ------------------------------------------------------------------ 2-6. the kube stages
    def detect_gpus(self) -> Accelerators:
        return self.kube().detect_gpus()

    def install_platform(self) -> PlatformEndpoint:
        return self.kube().install_platform()

    def cache_model(self, engine: Engine, token: str | None = None) -> Any:
        self._apply_storage_classes()  # before the PVC (a no-op when provision applied them)
        return self.kube().cache_model(engine, token=token)

    def roll_out(
        self, engine: Engine, model: Any = None, *, reason: str = "deploy", started_by: str = "dynadeploy"
    ) -> Rollout:
        return self.kube().roll_out(engine, model, reason=reason, started_by=started_by)

    def endpoint(self) -> str:
        return self.kube().endpoint()

    def reach(self):
        return self.kube().reach()

    def record_smoke(self, number: int, smoke: dict) -> None:
        self.kube().record_smoke(number, smoke)

    def revisions(self) -> list[Revision]:
        return self.kube().revisions()

    def status(self) -> Status:
        out = self.kube().status()
        ref = self._saved_ref()
        cluster = (
            {"name": ref.name, "location": ref.location, "endpoint": ref.endpoint, "version": ref.version}
            if ref
            else None
        )
        return dataclasses.replace(out, target=self.kind, details={**out.details, "cluster": cluster})

    # ------------------------------------------------------------------ teardown / inventory
    def teardown(self, *, keep_model_cache: bool = True) -> TeardownReport:
        notes: list[str] = []
        kube_result: TeardownReport | None = None
        keep = keep_model_cache
        ref = self._ref(verify=True)
        if ref is not None:
            owned = bool(ref.details.get("owned", True))
            keep = keep_model_cache and not owned  # a cluster of ours goes, and its cache with it
            try:
                kb = self.kube()
                kube_result = kb.teardown(keep_model_cache=keep)
                for sc in self._our_storage_classes(kb):
                    kb.kube.delete(SC_API, SC_KIND, sc["metadata"]["name"], wait=True)
            except DynadeployError as exc:
                if not owned:
                    raise
                # The cluster goes next; the provider deletes what Kubernetes made in the cloud by tag.
                notes.append(f"in-cluster teardown failed ({exc.message}); deleting the cluster anyway")
                log.warning(notes[-1])
        else:
            notes.append("no cluster: nothing to remove in Kubernetes")
        self.provider.delete_cluster(self.spec)
        left = self.provider.inventory(self.spec)
        kept_cluster = ref is not None and not ref.details.get("owned", True)
        if not left and not kept_cluster:
            self._forget()
        kube_note = kube_result.note if kube_result is not None else ""
        leftovers = sorted(set(kube_result.leftovers if kube_result is not None else []) | set(left))
        note = (kube_note or "") + ("; " if kube_note else "")
        note += (
            "cluster kept (not created by dynadeploy; its node pools removed)"
            if kept_cluster
            else f"{self.kind} cluster {getattr(self.spec.target, 'cluster_name', '')} deleted"
        )
        return TeardownReport(
            leftovers=leftovers,
            model_cache_kept=keep,
            note=note + (f"; {'; '.join(notes)}" if notes else ""),
            details={
                **(kube_result.details if kube_result is not None else {}),
                "cloud_leftovers": left,
                "notes": notes,
            },
        )

    def inventory(self) -> list[str]:
        out: list[str] = []
        ref = self._ref(verify=True)
        if ref is not None:
            kb = self.kube()
            out += kb.inventory()
            out += [f"StorageClass {sc['metadata']['name']}" for sc in self._our_storage_classes(kb)]
        out += self.provider.inventory(self.spec)
        return sorted(set(out))


__all__ = ["CLOUD_KINDS", "CloudBackend", "run_concurrently", "state_dir"]
