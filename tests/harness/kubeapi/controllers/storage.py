"""PersistentVolumeClaim binding: a PV controller plus a dynamic provisioner for every StorageClass.

- A PVC without ``storageClassName`` gets the default class (annotation
  ``storageclass.kubernetes.io/is-default-class: "true"``), as the admission plugin / retroactive
  assignment does. With a class, a matching Available PV (class, access modes, size) is bound, else one is
  provisioned: PV ``pvc-<uid>`` (capacity, access modes, reclaim policy, claimRef, csi driver = the class's
  provisioner), PVC ``spec.volumeName`` + bind annotations, both Bound; Provisioning /
  ProvisioningSucceeded Events.
- Access modes: a class may list what it supports in the annotation
  ``kubeapi-sim/access-modes: ReadWriteOnce,ReadWriteMany``; asking for another mode leaves the PVC Pending
  with a Warning ProvisioningFailed Event (as a block-storage CSI driver refuses ReadWriteMany). Without
  the annotation every mode is accepted.
- ``volumeBindingMode: WaitForFirstConsumer``: Pending (WaitForFirstConsumer Event) until a pod using the
  claim is scheduled; then ``volume.kubernetes.io/selected-node`` is set and it binds.
- No class and no default, or a class that does not exist: Pending with FailedBinding /
  ProvisioningFailed. Deleting a bound PVC deletes its PV (reclaimPolicy Delete) or leaves it Released.

Attach: a ReadWriteOnce claim attaches to one node; a pod on a second node stays Pending/ContainerCreating
with a FailedAttachVolume "Multi-Attach error" Event (``workloads.multi_attach``, run by the kubelet
stand-in).

Not simulated: volume contents, mount, capacity limits, expansion, pvc-protection finalizers,
topology (zonal disks, PV node affinity), volume snapshots, selectors on PVCs, ReadWriteOncePod.
"""

from __future__ import annotations

import copy
import re

from ..store import Event, Store
from . import base
from .base import annotations, terminating, write_status

MODES_ANNOTATION = "kubeapi-sim/access-modes"
DEFAULT_CLASS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}


def quantity(value: object) -> float:
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value or "0").strip())
    if not m or m.group(2) not in _UNITS:
        return 0.0
    return float(m.group(1)) * _UNITS[m.group(2)]


class Storage(base.Reconciler):
    name = "storage"
    manager = "kubeapi-sim-storage"

    def __init__(self, *, events: bool = True, enabled: bool = True) -> None:
        super().__init__(enabled=enabled)
        self.events.enabled = events

    def observe(self, store: Store, event: Event) -> None:
        if event.group == "" and event.kind == "PersistentVolumeClaim":
            if event.type == "DELETED":
                self.enqueue(
                    (
                        "Reclaim",
                        event.object["metadata"].get("uid", ""),
                        (event.object.get("spec") or {}).get("volumeName", ""),
                    )
                )
            else:
                self.enqueue(("PVC", event.namespace, event.name))
        elif event.kind in ("StorageClass", "PersistentVolume"):
            for pvc in store.list("v1", "PersistentVolumeClaim"):
                if (pvc.get("status") or {}).get("phase") != "Bound":
                    self.enqueue(("PVC", pvc["metadata"]["namespace"], pvc["metadata"]["name"]))
        elif event.group == "" and event.kind == "Pod" and event.object["spec"].get("nodeName"):
            for vol in event.object["spec"].get("volumes") or []:
                claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    self.enqueue(("PVC", event.namespace, claim))

    def reconcile(self, store: Store, key: tuple) -> float | None:
        if key[0] == "Reclaim":
            return self._reclaim(store, key[1], key[2])
        _, ns, name = key
        pvc = store.try_get("v1", "PersistentVolumeClaim", name, ns)
        if pvc is None or terminating(pvc) or (pvc.get("status") or {}).get("phase") == "Bound":
            return None
        spec = pvc.setdefault("spec", {})
        if "storageClassName" not in spec:
            default = next(
                (
                    sc
                    for sc in store.list("storage.k8s.io/v1", "StorageClass")
                    if any(annotations(sc).get(a) == "true" for a in DEFAULT_CLASS)
                ),
                None,
            )
            if default is not None:
                spec["storageClassName"] = default["metadata"]["name"]
                pvc = store.update(pvc, field_manager=self.manager)
                spec = pvc["spec"]
        cls_name = spec.get("storageClassName") or ""
        modes = spec.get("accessModes") or ["ReadWriteOnce"]
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        pv = self._static_match(store, pvc, cls_name, modes, size)
        if pv is not None:
            return self._bind(store, pvc, pv, None)
        if not cls_name:
            self.events.record(
                store,
                pvc,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
                "Warning",
                component="persistentvolume-controller",
            )
            return None
        sc = store.try_get("storage.k8s.io/v1", "StorageClass", cls_name)
        if sc is None:
            self.events.record(
                store,
                pvc,
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{cls_name}" not found',
                "Warning",
                component="persistentvolume-controller",
            )
            return None
        supported = [m.strip() for m in annotations(sc).get(MODES_ANNOTATION, "").split(",") if m.strip()]
        bad = [m for m in modes if supported and m not in supported]
        provisioner = sc.get("provisioner", "kubeapi-sim.io/provisioner")
        if bad:
            self.events.record(
                store,
                pvc,
                "ProvisioningFailed",
                f"failed to provision volume with StorageClass "
                f'"{cls_name}": rpc error: code = InvalidArgument desc = access mode '
                f"{','.join(bad)} is not supported by {provisioner} (supported: "
                f"{','.join(supported)})",
                "Warning",
                component=provisioner,
            )
            return None
        node = None
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer":
            node = self._consumer_node(store, pvc)
            if node is None:
                self.events.record(
                    store,
                    pvc,
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                    component="persistentvolume-controller",
                )
                return None
        self.events.record(
            store,
            pvc,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{ns}/{name}"',
            component=provisioner,
        )
        pv = store.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": f"pvc-{pvc['metadata']['uid']}",
                    "annotations": {"pv.kubernetes.io/provisioned-by": provisioner},
                },
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": list(modes),
                    "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                    "storageClassName": cls_name,
                    "volumeMode": spec.get("volumeMode", "Filesystem"),
                    "csi": {
                        "driver": provisioner,
                        "volumeHandle": f"pvc-{pvc['metadata']['uid']}",
                        "fsType": "ext4",
                    },
                },
            },
            field_manager=self.manager,
        )
        return self._bind(store, pvc, pv, node, provisioner)

    def _static_match(
        self, store: Store, pvc: dict, cls_name: str, modes: list[str], size: str
    ) -> dict | None:
        want = pvc["spec"].get("volumeName")
        for pv in store.list("v1", "PersistentVolume"):
            s = pv.get("spec") or {}
            ref = s.get("claimRef") or {}
            if want and pv["metadata"]["name"] != want:
                continue
            if ref and ref.get("uid") not in (None, pvc["metadata"]["uid"]):
                continue
            if (pv.get("status") or {}).get("phase") not in (None, "Available", "Pending") and not want:
                continue
            if not want and (
                (s.get("storageClassName") or "") != cls_name
                or not set(modes) <= set(s.get("accessModes") or [])
                or quantity((s.get("capacity") or {}).get("storage")) < quantity(size)
            ):
                continue
            return pv
        return None

    @staticmethod
    def _consumer_node(store: Store, pvc: dict) -> str | None:
        name = pvc["metadata"]["name"]
        for pod in store.list("v1", "Pod", pvc["metadata"]["namespace"]):
            if pod["spec"].get("nodeName") and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == name
                for v in pod["spec"].get("volumes") or []
            ):
                return pod["spec"]["nodeName"]
        return None

    def _bind(self, store: Store, pvc: dict, pv: dict, node: str | None, provisioner: str = "") -> None:
        m = pvc["metadata"]
        pv = copy.deepcopy(pv)
        pv["spec"]["claimRef"] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m.get("resourceVersion"),
        }
        pv = store.update(pv, field_manager=self.manager)
        write_status(store, pv, {"phase": "Bound"}, self.manager)
        pvc = copy.deepcopy(pvc)
        pvc["spec"]["volumeName"] = pv["metadata"]["name"]
        notes = pvc["metadata"].setdefault("annotations", {})
        notes.update(
            {"pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"}
        )
        if provisioner:
            notes["volume.beta.kubernetes.io/storage-provisioner"] = provisioner
            notes["volume.kubernetes.io/storage-provisioner"] = provisioner
        if node:
            notes["volume.kubernetes.io/selected-node"] = node
        pvc = store.update(pvc, field_manager=self.manager)
        write_status(
            store,
            pvc,
            {
                "phase": "Bound",
                "accessModes": list(pv["spec"].get("accessModes") or []),
                "capacity": dict(pv["spec"].get("capacity") or {}),
            },
            self.manager,
        )
        if provisioner:
            self.events.record(
                store,
                pvc,
                "ProvisioningSucceeded",
                f"Successfully provisioned volume {pv['metadata']['name']}",
                component=provisioner,
            )

    def _reclaim(self, store: Store, uid: str, pv_name: str) -> None:
        pv = store.try_get("v1", "PersistentVolume", pv_name) if pv_name else None
        if pv is None or ((pv.get("spec") or {}).get("claimRef") or {}).get("uid") != uid:
            return
        if pv["spec"].get("persistentVolumeReclaimPolicy", "Delete") == "Delete":
            store.delete("v1", "PersistentVolume", pv_name)
        else:
            write_status(store, pv, {"phase": "Released"}, self.manager)
        return
